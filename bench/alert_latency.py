"""Benchmark (not a test): alert latency — from a channel webhook reporting a refund failure to the P0
alert row and its notification rows (AlertDelivery, the outbox) — through the full stack under a
steady open-loop load, with a Celery worker running.

Setup (not timed): a dedicated PostgreSQL database is dropped, recreated and migrated; the "sandbox"
channel is created (webhook secret for this run only); one merchant with --customers customers (a
payer account each) gets --failures orders, each with one refund of ≥ 100 000.00 (above
ALERT_LARGE_FAILURE_AMOUNT, so its failure is a P0 `refund_large_failed`) already in `submitted` on
"sandbox" — bulk-inserted as `refund_submit` leaves it (attempt 1, send_seq = sent_seq = 1,
submitted_at, next_poll_at, a `submitted` timeline event) plus its real in-flight ledger posting
(`refund:<id>:inflight:1`, which the failure's release posting balances). The app is served by
gunicorn sync workers (the production arrangement, DESIGN.md "Serving") and a real Celery worker
(`celery -A refundguard worker`) runs against the same Redis database. Nothing on the webhook →
alert path waits for Celery: the refund's state change is announced after commit inside the
webhook request, and `apps.alerts.receivers` raises the alert and writes its AlertDelivery rows and
the on-call page's notifications there, synchronously; the worker then sends the notifications
(the customer's "fix your account" message and the page), which the script counts.

Timed: one signed webhook per refund (`transfer.failed`, code ACCOUNT_FROZEN: not retryable, the
customer's account — the sandbox bank's own body format and `X-RefundGuard-Signature`), POSTed to
/webhooks/channels/sandbox/ at --rate per second, open loop from a thread pool (each at its scheduled
instant, whether or not earlier ones have answered). For each refund, from that instant (wall clock,
same machine as the server) to:
  alert     — its Alert row's `first_seen_at` (set in the webhook's on-commit handler, just before
              the insert; committed in the same request, before the response),
  delivery  — the latest `created_at` of its AlertDelivery rows (SMS + voice + console for a P0),
  page      — the latest `created_at` of the on-call page's Notification rows (SMS + voice + inbox,
              written in the same transaction as the alert; the worker sends them afterwards),
  response  — the webhook's HTTP answer (an upper bound for both rows being committed and visible).
Reports p50/p95/p99/max of each and errors: non-2xx answers, refunds not failed, refunds without
exactly one P0 alert, its three deliveries or its three page notifications.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/14 \\
        .venv/bin/python bench/alert_latency.py --failures 1000 --rate 50 --db-name rg_bench_alerts

The database named by --db-name is DROPPED and recreated; the script refuses SQLite and refuses to
reuse DATABASE_URL's own database. Use a Redis database of its own (REDIS_URL's db is the cache,
the channel layer and the Celery broker): the Celery queue there is purged at the start and the end.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

from common import ROOT, django_setup, free_port, gunicorn, others_running, payer_accounts_create, percentile

BATCH = 2000
AMOUNT = 12_000_000  # 120 000.00 CNY: above ALERT_LARGE_FAILURE_AMOUNT (10 000 000)
FAIL_CODE = "ACCOUNT_FROZEN"


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--failures", type=int, default=1000, help="failure webhooks sent (default 1000)")
    parser.add_argument("--customers", type=int, default=200, help="customers the refunds belong to (default 200)")
    parser.add_argument("--rate", type=float, default=50.0, help="webhooks per second (default 50)")
    parser.add_argument("--web-workers", type=int, default=4, help="gunicorn sync workers (default 4)")
    parser.add_argument("--celery-concurrency", type=int, default=2, help="Celery worker processes (default 2)")
    parser.add_argument("--client-threads", type=int, default=64, help="sender threads (default 64)")
    parser.add_argument("--db-name", default="rg_bench_alerts", help="dedicated database (dropped)")
    return parser.parse_args()


def _setup(args: argparse.Namespace) -> list[dict]:
    """Fill the database; returns one planned webhook per refund (request id, amount, event id)."""
    from django.conf import settings
    from django.db import transaction
    from django.utils import timezone

    from apps.accounts.models import Customer, Merchant, User
    from apps.gateways.services import ensure_sandbox_channel
    from apps.orders.models import Order, Product
    from apps.refunds.models import Party, Refund, RefundEvent
    from apps.refunds.services import _IN_FLIGHT, _MERCHANT, _merchant_owner, _post

    channel = ensure_sandbox_channel()
    now = timezone.now()
    merchant = Merchant.objects.create(name="Bench merchant")
    # The on-call engineer the P0s page (SMS + voice + inbox, recorded by the sandbox provider).
    User.objects.create(username=settings.ALERT_ONCALL_ROTA[0], phone="+8613900000000", is_staff=True)
    product = Product.objects.create(merchant=merchant, sku="bench", name="Bench", kind="course", price=AMOUNT)
    customers = Customer.objects.bulk_create(
        (
            Customer(merchant=merchant, external_id=f"c-{i}", name=f"客户{i}", locale="zh-hans")
            for i in range(args.customers)
        ),
        batch_size=BATCH,
    )
    accounts = payer_accounts_create(merchant=merchant, customers=customers, batch_size=BATCH)
    orders = Order.objects.bulk_create(
        (
            Order(
                merchant=merchant,
                external_id=f"o-{i}",
                customer=customers[i % len(customers)],
                product=product,
                amount=AMOUNT,
                currency="CNY",
                paid_at=now - timedelta(hours=2),
                payment_method="card",
                payer_account=accounts[i % len(accounts)],
            )
            for i in range(args.failures)
        ),
        batch_size=BATCH,
    )
    submitted = now - timedelta(minutes=1)
    refunds = Refund.objects.bulk_create(
        (
            Refund(
                merchant=merchant,
                order=o,
                customer_id=o.customer_id,
                amount=AMOUNT,
                currency="CNY",
                reason=Refund.Reason.MISTAKE,
                status=Refund.Status.SUBMITTED,
                decision={"outcome": "approved"},
                destination_account_id=o.payer_account_id,
                channel=channel,
                attempt=1,
                send_seq=1,
                sent_seq=1,
                submitted_at=submitted,
                next_poll_at=submitted + timedelta(hours=1),  # no poller runs; keep it out of "due"
                created_at=submitted - timedelta(seconds=5),
            )
            for o in orders
        ),
        batch_size=BATCH,
    )
    RefundEvent.objects.bulk_create(
        (
            RefundEvent(
                refund=r,
                code="submitted",
                from_status=Refund.Status.APPROVED,
                to_status=Refund.Status.SUBMITTED,
                message_key="refund.submitted",
                responsible_party=Party.PLATFORM,
                actor="system",
                detail={"channel": channel.code, "request_id": r.request_id},
                created_at=submitted,
            )
            for r in refunds
        ),
        batch_size=BATCH,
    )
    # The in-flight posting refund_submit makes; the failure's release posting reverses it.
    with transaction.atomic():
        for r in refunds:
            _post(
                r,
                f"inflight:{r.attempt}",
                debit=(_merchant_owner(r), _MERCHANT),
                credit=("platform", _IN_FLIGHT),
                description=f"refund {r.pk} sent to {channel.code}",
            )
    plans = [
        {"refund_id": r.pk, "request_id": r.request_id, "event_id": f"evt_bench_{r.pk}", "amount": r.amount}
        for r in refunds
    ]
    return plans


def _body(plan: dict, status: str = "failed", code: str = FAIL_CODE) -> bytes:
    """The sandbox bank's event body (apps.gateways.sandbox.bank.event_body): compact, keys sorted."""
    from django.utils import timezone

    at = timezone.now().isoformat()
    payload = {
        "id": plan["event_id"],
        "type": f"transfer.{status}",
        "created_at": at,
        "data": {
            "transfer_id": f"sbx_{plan['event_id']}",
            "request_id": plan["request_id"],
            "status": status,
            "code": code,
            "amount": plan["amount"],
            "currency": "CNY",
            "kind": "refund",
            "occurred_at": at,
        },
    }
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


def _load(url: str, secret: str, plans: list[dict], rate: float, threads: int) -> list[dict]:
    """Send plans[i] at start + i / rate; every time is wall-clock (time.time(), the server's clock)."""
    import requests

    from apps.gateways.signing import SIGNATURE_HEADER, signature_header

    local = threading.local()
    results: list[dict] = [{} for _ in plans]
    bodies = [_body(plan) for plan in plans]

    def send(i: int, scheduled: float) -> None:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        sent = time.time()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature_header(secret=secret, timestamp=int(sent), body=bodies[i]),
            "User-Agent": "RefundGuard-SandboxBank/1",
        }
        try:
            response = session.post(url, data=bodies[i], headers=headers, timeout=30)
            ok = 200 <= response.status_code < 300
            results[i] = {
                "ok": ok,
                "code": response.status_code,
                "scheduled": scheduled,
                "lag": (sent - scheduled) * 1000,
                "response": (time.time() - scheduled) * 1000,
                "service": (time.time() - sent) * 1000,
                "error": "" if ok else response.text[:200],
            }
        except requests.RequestException as exc:
            results[i] = {"ok": False, "code": 0, "scheduled": scheduled, "error": type(exc).__name__}

    with ThreadPoolExecutor(max_workers=threads) as pool:
        start = time.time() + 0.5
        for i in range(len(plans)):
            scheduled = start + i / rate
            delay = scheduled - time.time()
            if delay > 0:
                time.sleep(delay)
            pool.submit(send, i, scheduled)
    return results


def _celery_worker(env: dict[str, str], concurrency: int) -> subprocess.Popen:
    """Start `celery -A refundguard worker` (as the Procfile does) and wait until it answers a ping."""
    from refundguard.celery import app

    worker = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "celery"),
            "-A",
            "refundguard",
            "worker",
            "--loglevel=WARNING",
            f"--concurrency={concurrency}",
            f"--hostname=bench-alerts-{os.getpid()}@%h",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            sys.exit("the Celery worker exited during start-up")
        if app.control.ping(timeout=1.0):
            return worker
    os.killpg(worker.pid, signal.SIGTERM)
    sys.exit("the Celery worker did not answer a ping within 60 s")


def _stop(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def _summary(name: str, values: list[float]) -> str:
    if not values:
        return f"{name}: no samples"
    return (
        f"{name}_p50={percentile(values, 50):.1f}ms {name}_p95={percentile(values, 95):.1f}ms "
        f"{name}_p99={percentile(values, 99):.1f}ms {name}_max={max(values):.1f}ms "
        f"{name}_mean={statistics.fmean(values):.1f}ms"
    )


def main() -> None:
    args = _parse()
    if not os.environ.get("REDIS_URL"):
        sys.exit("Set REDIS_URL (a Redis database of its own): it is the Celery broker the worker listens on.")
    if others := others_running():
        print(f"note: other benchmarks/servers running (figures are shared-machine): {others}", flush=True)
    env = django_setup(args.db_name, SANDBOX_WEBHOOK_SECRET=f"whsec_{secrets.token_hex(24)}")
    from django.conf import settings
    from django.db import connections
    from django.db.models import Count, Max

    from apps.alerts.models import Alert, AlertDelivery
    from apps.gateways.models import Channel
    from apps.notifications.models import Notification
    from apps.refunds.models import Refund
    from refundguard.celery import app

    if args.rate <= 0 or args.failures <= 0:
        sys.exit("--rate and --failures must be positive")
    if AMOUNT < settings.ALERT_LARGE_FAILURE_AMOUNT:
        sys.exit(f"ALERT_LARGE_FAILURE_AMOUNT is {settings.ALERT_LARGE_FAILURE_AMOUNT}: the failures would not be P0")
    started = time.monotonic()
    plans = _setup(args)
    secret = Channel.objects.get(code="sandbox").webhook_secret
    print(f"created {len(plans)} submitted refunds in {time.monotonic() - started:.1f}s", flush=True)
    connections.close_all()
    app.control.purge()

    port = free_port()
    url = f"http://127.0.0.1:{port}/webhooks/channels/sandbox/"
    worker = _celery_worker(env, args.celery_concurrency)
    try:
        with gunicorn(env, workers=args.web_workers, port=port, ready_path="/healthz"):
            # Warm every worker (imports, connections) outside the measurement: events for a
            # reference nobody owns are recorded and answered 200 "unknown_reference".
            warm = [
                {"refund_id": 0, "request_id": f"refund:{10**9 + i}:1", "event_id": f"evt_warm_{i}", "amount": AMOUNT}
                for i in range(4 * args.web_workers)
            ]
            _load(url, secret, warm, 20, 8)
            stats_before = app.control.inspect(timeout=2.0).stats() or {}
            print(f"sending {len(plans)} failure webhooks at {args.rate:g}/s …", flush=True)
            load_started = time.monotonic()
            results = _load(url, secret, plans, args.rate, args.client_threads)
            load_seconds = time.monotonic() - load_started
            time.sleep(2)  # let anything asynchronous (there should be nothing) land before reading
            stats_after = app.control.inspect(timeout=2.0).stats() or {}
    finally:
        _stop(worker)
    queued = int(app.connection_for_write().default_channel.client.llen("celery") or 0)
    purged = app.control.purge()

    def tasks_run(stats: dict) -> int:
        return sum(sum((s.get("total") or {}).values()) for s in stats.values())

    # Server-side timestamps of what each refund's failure produced.
    alerts = {
        int(subject_id): (pk, first_seen)
        for pk, subject_id, first_seen in Alert.objects.filter(
            kind="refund_large_failed", tier="P0", subject_type="refund"
        ).values_list("pk", "subject_id", "first_seen_at")
    }
    deliveries = {
        alert_id: (n, last)
        for alert_id, n, last in AlertDelivery.objects.values("alert_id")
        .annotate(n=Count("id"), last=Max("created_at"))
        .values_list("alert_id", "n", "last")
    }
    pages = {
        alert_id: (n, last)
        for alert_id, n, last in Notification.objects.filter(subject_type="alert")
        .values("subject_id")
        .annotate(n=Count("id"), last=Max("created_at"))
        .values_list("subject_id", "n", "last")
    }
    failed = set(
        Refund.objects.filter(
            pk__in=[p["refund_id"] for p in plans], status__in=(Refund.Status.FAILED, Refund.Status.NEEDS_ACTION)
        ).values_list("pk", flat=True)
    )

    alert_ms, delivery_ms, page_ms, response_ms, lag_ms, service_ms = [], [], [], [], [], []
    problems: dict[str, int] = {}
    first_errors = []
    for plan, result in zip(plans, results, strict=True):
        refund_id = plan["refund_id"]
        if not result.get("ok"):
            problems["http"] = problems.get("http", 0) + 1
            first_errors.append((refund_id, result.get("code"), result.get("error")))
            continue
        response_ms.append(result["response"])
        lag_ms.append(result["lag"])
        service_ms.append(result["service"])
        if refund_id not in failed:
            problems["refund_not_failed"] = problems.get("refund_not_failed", 0) + 1
        if refund_id not in alerts:
            problems["no_alert"] = problems.get("no_alert", 0) + 1
            continue
        alert_id, first_seen = alerts[refund_id]
        alert_ms.append((first_seen.timestamp() - result["scheduled"]) * 1000)
        n, last = deliveries.get(alert_id, (0, None))
        if n != 3 or last is None:
            problems["deliveries_not_3"] = problems.get("deliveries_not_3", 0) + 1
            continue
        delivery_ms.append((last.timestamp() - result["scheduled"]) * 1000)
        n, last = pages.get(alert_id, (0, None))
        if n != 3 or last is None:
            problems["page_notifications_not_3"] = problems.get("page_notifications_not_3", 0) + 1
            continue
        page_ms.append((last.timestamp() - result["scheduled"]) * 1000)
    errors = sum(problems.values())

    print(
        f"load took {load_seconds:.1f}s; refunds failed {len(failed)}/{len(plans)}; P0 alerts {len(alerts)}; "
        f"celery tasks run by the worker during the load {tasks_run(stats_after) - tasks_run(stats_before)}, "
        f"left in the queue {queued} (purged {purged}); client send lag max {max(lag_ms, default=0):.1f}ms"
    )
    if problems:
        print(f"problems {problems}; first http errors: {first_errors[:5]}")
    print(
        f"RESULT failures={len(plans)} rate={args.rate:g}/s web_workers={args.web_workers} "
        f"celery_concurrency={args.celery_concurrency} {_summary('alert', alert_ms)} "
        f"{_summary('delivery', delivery_ms)} {_summary('page', page_ms)} {_summary('response', response_ms)} "
        f"errors={errors} "
        f"service_p50={percentile(service_ms, 50) if service_ms else 0:.1f}ms "
        f"service_p99={percentile(service_ms, 99) if service_ms else 0:.1f}ms"
    )
    if errors:
        sys.exit("some failures did not produce their alert and deliveries")


if __name__ == "__main__":
    main()
