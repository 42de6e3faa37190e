"""End to end: the embedded system `make run` starts, as real processes, on a throwaway var dir.

Not the test database: the subprocesses get an environment without DATABASE_URL, REDIS_URL and
CELERY_BROKER_URL, so they run on their embedded defaults (SQLite in WAL mode, the kombu filesystem
broker, the in-memory channel layer) inside `tmp_path`. Migrate, seed twice (the second run adds
nothing), then start daphne, a Celery worker and Celery beat, wait until a beat-scheduled heartbeat
has gone through the broker to the worker and into the database, and drive the surfaces a person
would use first: admin, API docs and schema, console login, the API with the demo key, and
`celery inspect ping` over the filesystem broker.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
DEMO_API_KEY = "rg_demo_local_only_key_0000000000000000"
DEMO_USER, DEMO_PASSWORD = "demo", "refundguard-demo"
DEMO_MERCHANT = "链动小铺 Demo Shop"
HEARTBEAT_DEADLINE_S = 60
WORKER_NAME = "rg-e2e@localhost"  # a fixed node name lets `inspect ping -d` return on the first pong
# Variables that would switch the subprocesses to production parts or away from the embedded setup.
STRIPPED = (
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "CELERY_TASK_ALWAYS_EAGER",
    "ALLOWED_HOSTS",
    "SECRET_KEY",
    "FIELD_ENCRYPTION_KEY",
    "SECURE_SSL_REDIRECT",
    "LOG_LEVEL",  # the worker log must show "heartbeat delivered" (INFO)
)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path, lines: int = 80) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def served_env(settings, tmp_path: Path, *, base: str, webhook_secret: str) -> dict[str, str]:
    """The environment of RefundGuard processes a test starts on its own committed test database
    (`transactional_db`) and Redis, with the sandbox bank served at `base`; tests add their timings."""
    from django.db import connection

    db = connection.settings_dict
    settings.SANDBOX_WEBHOOK_SECRET = webhook_secret
    env = {key: value for key, value in os.environ.items() if key not in ("CELERY_BROKER_URL", "LOG_LEVEL")}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "refundguard.settings",
            "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
            "REDIS_URL": settings.REDIS_URL,
            "REFUNDGUARD_VAR_DIR": str(tmp_path),
            "DEBUG": "true",
            "SECRET_KEY": settings.SECRET_KEY,
            "FIELD_ENCRYPTION_KEY": settings.FIELD_ENCRYPTION_KEY,
            "SANDBOX_WEBHOOK_SECRET": webhook_secret,
            "SANDBOX_BANK_ENABLED": "true",
            "PUBLIC_BASE_URL": base,
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }
    )
    return env


class Stack:
    """The started processes, each in its own process group with stdout+stderr in one log file."""

    def __init__(self, env: dict[str, str], workdir: Path):
        self.env = env
        self.workdir = workdir
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}

    def run(self, name: str, *args: str, timeout: float = 60) -> str:
        """Run a one-shot command to completion; fail with its output if it does not succeed."""
        try:
            done = subprocess.run(
                [PYTHON, *args],
                cwd=self.workdir,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"{name} did not finish in {timeout}s\n{exc.stdout}\n{exc.stderr}")
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"{name} exited {done.returncode}:\n{output}"
        return output

    def start(self, name: str, *args: str) -> subprocess.Popen:
        log_path = self.workdir / f"{name}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [PYTHON, *args],
                cwd=self.workdir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: stop it and whatever it forked at once
            )
        self.procs[name] = proc
        self.logs[name] = log_path
        return proc

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                pytest.fail(f"{name} exited early with {proc.returncode}")

    def log(self, name: str) -> str:
        return self.logs[name].read_text(errors="replace")

    def dump(self) -> str:
        return "\n".join(f"===== {name} log (tail) =====\n{_tail(path)}" for name, path in self.logs.items())

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            # SIGKILL the whole group: also catches children that outlived a leader that exited.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)


@pytest.fixture
def stack(tmp_path):
    env = {key: value for key, value in os.environ.items() if key not in STRIPPED}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "refundguard.settings",
            "REFUNDGUARD_VAR_DIR": str(tmp_path),
            "HEARTBEAT_SECONDS": "2",
            "DEBUG": "true",
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }
    )
    processes = Stack(env, tmp_path)
    try:
        yield processes
    finally:
        processes.stop()


def _wait_for_heartbeat(stack: Stack, base: str, http: requests.Session) -> dict:
    deadline = time.monotonic() + HEARTBEAT_DEADLINE_S
    last: object = None
    while time.monotonic() < deadline:
        stack.check_alive()
        try:
            response = http.get(f"{base}/healthz", timeout=5)
            last = response.status_code
            if response.status_code == 200:
                last = body = response.json()
                if body.get("heartbeats", 0) >= 1:
                    return body
        except requests.RequestException as exc:
            last = exc
        time.sleep(0.5)
    pytest.fail(f"no heartbeat within {HEARTBEAT_DEADLINE_S}s (last /healthz: {last!r})")


def test_embedded_system_runs_end_to_end(stack):
    manage = str(ROOT / "manage.py")
    stack.run("migrate", manage, "migrate", "--noinput", timeout=120)
    first = stack.run("seed_demo", manage, "seed_demo")
    assert "10 new orders" in first, first
    second = stack.run("seed_demo (again)", manage, "seed_demo")
    assert "0 new orders" in second, second

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    stack.start("web", "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "refundguard.asgi:application")
    stack.start(
        "worker",
        *("-m", "celery", "-A", "refundguard", "worker", "--loglevel=INFO", "--concurrency=2", "--pool=threads"),
        *("--hostname", WORKER_NAME),
    )
    stack.start("beat", "-m", "celery", "-A", "refundguard", "beat", "--loglevel=INFO")  # CELERY_BEAT_SCHEDULER

    http = requests.Session()
    http.trust_env = False  # never route 127.0.0.1 through a proxy from the environment
    try:
        health = _wait_for_heartbeat(stack, base, http)
        assert health["status"] == "ok"
        assert health["database"] == "sqlite"
        assert "heartbeat delivered" in stack.log("worker")
        # The default broker URL names a host, so kombu has nothing to warn about.
        assert "No hostname was supplied" not in stack.log("worker") + stack.log("beat")

        response = http.get(f"{base}/admin/login/", timeout=10)
        assert response.status_code == 200

        response = http.get(f"{base}/api/docs/", timeout=10)
        assert response.status_code == 200
        assert "swagger" in response.text.lower()

        response = http.get(f"{base}/api/schema/", timeout=10)
        assert response.status_code == 200
        assert "/api/v1/orders" in response.text

        response = http.get(f"{base}/console/", timeout=10, allow_redirects=False)
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/accounts/login/")

        login_page = http.get(f"{base}/accounts/login/", timeout=10)
        assert login_page.status_code == 200
        match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login_page.text)
        assert match, login_page.text
        response = http.post(
            f"{base}/accounts/login/",
            data={
                "csrfmiddlewaretoken": match.group(1),
                "username": DEMO_USER,
                "password": DEMO_PASSWORD,
                "next": "/console/",
            },
            headers={"Referer": f"{base}/accounts/login/"},
            timeout=10,
        )
        assert [r.status_code for r in response.history] == [302], response.text
        assert response.url == f"{base}/console/"
        assert response.status_code == 200, response.text
        assert DEMO_MERCHANT in response.text

        api = requests.Session()
        api.trust_env = False
        response = api.get(f"{base}/api/v1/orders", headers={"Authorization": f"Bearer {DEMO_API_KEY}"}, timeout=10)
        assert response.status_code == 200, response.text
        assert response.json()["count"] == 10

        pong = stack.run(
            "celery inspect ping",
            *("-m", "celery", "-A", "refundguard", "inspect", "ping", "--timeout", "10"),
            *("--destination", WORKER_NAME),
            timeout=60,
        )
        assert "pong" in pong, pong
        assert WORKER_NAME in pong, pong

        stack.check_alive()
    except BaseException:
        print(stack.dump())
        raise
