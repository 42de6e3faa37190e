"""Setup shared by the benchmarks in bench/ (not a benchmark itself).

Each benchmark runs against a dedicated PostgreSQL database that is DROPPED and recreated: SQLite is
refused, and so is DATABASE_URL's own database name. Imported by the scripts as `common` (they run
as `python bench/<name>.py`, so bench/ is first on sys.path).
"""

from __future__ import annotations

import base64
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent


def database_urls(db_name: str) -> tuple[str, str]:
    """(URL of the dedicated database db_name, URL of the `postgres` admin database), both built from
    DATABASE_URL; exits unless that is PostgreSQL and names another database than db_name."""
    parts = urlsplit(os.environ.get("DATABASE_URL", ""))
    if parts.scheme not in ("postgres", "postgresql", "pgsql"):
        sys.exit(
            "DATABASE_URL must point at PostgreSQL (SQLite is refused: it is not what production runs, "
            "and its locks are no-ops)."
        )
    if parts.path.lstrip("/") == db_name:
        sys.exit(f"--db-name {db_name!r} is DATABASE_URL's own database; pick a dedicated one.")
    return urlunsplit(parts._replace(path=f"/{db_name}")), urlunsplit(parts._replace(path="/postgres"))


def recreate_database(admin_url: str, db_name: str) -> None:
    """DROP db_name (disconnecting its sessions: WITH (FORCE)) and CREATE it empty."""
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{db_name}"')


def django_setup(db_name: str, **extra_env: str) -> dict[str, str]:
    """Recreate db_name, point this process at it with production-like settings, django.setup() and
    migrate. Returns the environment (os.environ plus the settings) for subprocesses like gunicorn.

    Settings: DEBUG off (no per-query logging), throwaway SECRET_KEY and FIELD_ENCRYPTION_KEY for this
    run only (settings refuse the dev defaults with DEBUG off), plain HTTP on 127.0.0.1, the sandbox
    bank off and WARNING logs; extra_env adds to or overrides them.
    """
    bench_url, admin_url = database_urls(db_name)
    env = {
        **os.environ,
        "DATABASE_URL": bench_url,
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "FIELD_ENCRYPTION_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        "SECURE_SSL_REDIRECT": "false",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SANDBOX_BANK_ENABLED": "false",
        "LOG_LEVEL": "WARNING",
        **extra_env,
    }
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "refundguard.settings")
    sys.path.insert(0, str(ROOT))

    print(f"recreating database {db_name} …", flush=True)
    recreate_database(admin_url, db_name)

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return env


def payer_accounts_create(*, merchant, customers, batch_size: int) -> list:
    """One bank account per customer (holder: the customer's name), bulk-inserted; returns them in
    the customers' order. One Fernet token is reused for every number (encrypting thousands adds
    setup time and nothing to a figure); last4 and fingerprint differ per customer."""
    from apps.accounts.models import BankAccount
    from apps.common.crypto import encrypt, fingerprint

    token = encrypt("6222020000000000")
    return BankAccount.objects.bulk_create(
        (
            BankAccount(
                merchant=merchant,
                customer=customer,
                holder_name=customer.name,
                bank="ICBC",
                number_encrypted=token,
                last4=f"{i % 10000:04d}",
                fingerprint=fingerprint(f"62220200{i:08d}"),
            )
            for i, customer in enumerate(customers)
        ),
        batch_size=batch_size,
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, deadline: float, statuses: tuple[int, ...] = (200,), what: str = "gunicorn") -> None:
    """Poll GET url until it answers with one of statuses; exits if that has not happened by deadline
    (a time.monotonic() value)."""
    import requests

    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=1, headers={"Connection": "close"}).status_code in statuses:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    sys.exit(f"{what} did not come up at {url}")


@contextmanager
def gunicorn(
    env: dict[str, str],
    *,
    workers: int,
    port: int,
    ready_path: str,
    ready_statuses: tuple[int, ...] = (200,),
    what: str = "gunicorn",
) -> Iterator[subprocess.Popen]:
    """Serve refundguard.wsgi with gunicorn sync workers on 127.0.0.1:port in a session of its own;
    the block runs once GET ready_path answers (within 30 s), and the server is stopped after it."""
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "refundguard.wsgi",
            "--workers",
            str(workers),
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    try:
        wait_for(f"http://127.0.0.1:{port}{ready_path}", time.monotonic() + 30, ready_statuses, what)
        yield server
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (0–100) of values: the smallest sample with more than p % of the samples
    at or below it (never interpolated, never below the nearest-rank value; p=100 gives the max)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def explain_selects(run: Callable[[], object], explain: str = "EXPLAIN") -> list[tuple[str, list[str]]]:
    """Call run() capturing its queries, then run `{explain} <sql>` for each SELECT among them.
    Returns (sql, plan lines) per SELECT, in order."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        run()
    plans = []
    with connection.cursor() as cursor:
        for query in captured.captured_queries:
            sql = query["sql"]
            if not sql.lstrip().upper().startswith("SELECT"):
                continue
            cursor.execute(f"{explain} {sql}")
            plans.append((sql, [row[0] for row in cursor.fetchall()]))
    return plans


def others_running(me: str = "") -> list[str]:
    """Other benchmarks or gunicorn servers on this machine (they share the 2 cores): `ps` lines with
    bench/ or gunicorn, except this process and lines naming me (default: this script's name)."""
    me = me or Path(sys.argv[0]).stem
    lines = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=False).stdout
    mine = str(os.getpid())
    return [
        line.strip()
        for line in lines.splitlines()[1:]
        if ("bench/" in line or "gunicorn" in line) and line.split(None, 1)[0] != mine and not (me and me in line)
    ]


def wait_quiet(limit: float, me: str = "") -> bool:
    """Wait up to limit seconds until others_running(me) is empty; True if it was (quiet), else False."""
    deadline = time.monotonic() + limit
    while others_running(me):
        if time.monotonic() >= deadline:
            return False
        time.sleep(5)
    return True
