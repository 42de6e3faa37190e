"""Benchmark (not a test): latency of POST /api/v1/refunds — the automatic refund decision — through
the full stack under a steady open-loop load.

Setup (not timed): a dedicated PostgreSQL database is dropped, recreated and migrated; one merchant
with a handful of products (one per virtual kind) gets --customers customers with payer accounts,
--orders orders spread over half a year, --earlier-refunds earlier refunds in mixed final states
with the risk observations their requests left, and some usage events; every channel is disabled
(Channel.is_enabled=False) so an approved refund waits for a channel instead of calling a bank — the
figure is the decision, not the bank. The app is served by gunicorn sync workers (the production
arrangement, DESIGN.md "Serving") on a free port.

Timed: --rate requests per second for --duration seconds, open loop (each request is sent at its
scheduled instant from a thread pool, whether or not earlier ones have answered; latency is counted
from that instant, so a stall is not hidden), each for a different order paid inside the 15-minute
or the 24-hour window, with a mix of reasons (no text, usage over the limit, tech-support phrases,
text that only looks like one). Reports p50/p95/p99/max and errors, plus the decision's own
`latency_ms`, and EXPLAINs the decision's queries to show which indexes they use. Before the
timed part, 25 requests per worker of the same mix (on orders of their own) warm the server, as
one that has been serving for a while is.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/9 \\
        .venv/bin/python bench/decision_latency.py --orders 100000 --earlier-refunds 10000 --rate 50 --duration 60

The database named by --db-name is DROPPED and recreated; the script refuses SQLite and refuses to
reuse DATABASE_URL's own database. Use a Redis database of its own: the Celery queue there (the
submissions approved refunds schedule) is purged at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from common import django_setup, explain_selects, free_port, gunicorn, payer_accounts_create, percentile

KINDS = ("course", "course", "license_key", "file", "template", "membership")
WARM_PER_WORKER = 25  # real requests per web worker before the measurement
BATCH = 5000


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=100_000, help="orders in the database (default 100000)")
    parser.add_argument("--customers", type=int, default=20_000, help="customers they belong to (default 20000)")
    parser.add_argument("--earlier-refunds", type=int, default=10_000, help="refunds already there (default 10000)")
    parser.add_argument("--rate", type=float, default=50.0, help="requests per second (default 50)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (default 60)")
    parser.add_argument("--web-workers", type=int, default=4, help="gunicorn sync workers (default 4)")
    parser.add_argument("--client-threads", type=int, default=64, help="sender threads (default 64)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--db-name", default="refundguard_bench_decision", help="dedicated database (dropped)")
    return parser.parse_args()


def _setup(args: argparse.Namespace, rng: random.Random) -> tuple[str, list[dict], list[dict]]:
    """Fill the database; returns the API key, the planned requests (one per target order) and the
    warm-up requests (the same mix, on orders of their own)."""
    from django.utils import timezone

    from apps.accounts.models import BankAccount, Customer, Merchant
    from apps.accounts.services import api_key_create
    from apps.orders.models import Order, UsageEvent
    from apps.orders.services import product_create
    from apps.refunds.models import Refund
    from apps.risk.models import Observation

    now = timezone.now()
    merchant = Merchant.objects.create(name="Bench merchant")
    _, raw_key = api_key_create(merchant=merchant)
    products = [
        product_create(merchant=merchant, sku=f"sku-{i}", name=f"Product {i}", kind=kind, price=19900, currency="CNY")
        for i, kind in enumerate(KINDS)
    ]

    customers = Customer.objects.bulk_create(
        (
            Customer(
                merchant=merchant,
                external_id=f"c-{i}",
                name=f"客户{i}",
                locale="zh-hans" if i % 3 else "en",
                registered_at=now - timedelta(days=rng.randint(0, 720)),
                chargeback_count=1 if i % 200 == 0 else 0,
            )
            for i in range(args.customers)
        ),
        batch_size=BATCH,
    )
    accounts = payer_accounts_create(merchant=merchant, customers=customers, batch_size=BATCH)

    targets = int(args.rate * args.duration) + WARM_PER_WORKER * args.web_workers
    history = args.orders - targets
    if history < args.earlier_refunds:
        sys.exit("--orders must exceed --earlier-refunds plus the requests sent")

    def order(i: int, paid_at) -> Order:
        c = rng.randrange(len(customers))
        product = products[i % len(products)]
        return Order(
            merchant=merchant,
            external_id=f"o-{i}",
            customer=customers[c],
            product=product,
            amount=19900,
            currency="CNY",
            paid_at=paid_at,
            payment_method="card",
            device_id=f"d-{c}",
            # One address per customer, as home connections are; a shared address for everyone
            # would (rightly) link all customers into one cluster and trip the gang rules.
            ip=f"198.18.{(c // 250) % 256}.{c % 250 + 1}",
            payer_account=accounts[c],
        )

    old = Order.objects.bulk_create(
        (order(i, now - timedelta(days=2, seconds=rng.randint(0, 180 * 86400))) for i in range(history)),
        batch_size=BATCH,
    )
    finals = [
        (Refund.Status.SUCCEEDED, "approved"),
        (Refund.Status.SUCCEEDED, "approved"),
        (Refund.Status.REJECTED, "rejected"),
        (Refund.Status.REJECTED, "manual_review"),
        (Refund.Status.TECH_SUPPORT, "tech_support"),
        (Refund.Status.CANCELLED, "approved"),
    ]
    earlier = Refund.objects.bulk_create(
        (
            Refund(
                merchant=merchant,
                order=o,
                customer_id=o.customer_id,
                amount=o.amount,
                currency="CNY",
                reason=rng.choice(Refund.Reason.values),
                status=status,
                decision={"outcome": outcome},
                destination_account_id=o.payer_account_id,
                created_at=o.paid_at + timedelta(minutes=10),
            )
            for o in rng.sample(old, args.earlier_refunds)
            for status, outcome in [rng.choice(finals)]
        ),
        batch_size=BATCH,
    )
    # Every refund request the service took was judged by the risk engine, which logged an
    # observation; the velocity features and cluster links count those. Without them the table
    # would start empty (and its planner statistics with it), unlike any running system.
    fingerprints = dict(BankAccount.objects.filter(merchant=merchant).values_list("pk", "fingerprint"))
    by_id = {o.pk: o for o in old}
    Observation.objects.bulk_create(
        (
            Observation(
                merchant=merchant,
                scope="refund",
                subject_id=r.pk,
                customer_id=r.customer_id,
                device_id=by_id[r.order_id].device_id,
                ip=by_id[r.order_id].ip,
                account_fingerprint=fingerprints[r.destination_account_id],
                product_id=by_id[r.order_id].product_id,
                amount=r.amount,
                currency=r.currency,
                action="allow",
                created_at=r.created_at,
            )
            for r in earlier
        ),
        batch_size=BATCH,
    )

    # The orders the load asks about, paid just now: 40 % inside 15 minutes, the rest within 20 h.
    fresh_now = timezone.now()
    recent = Order.objects.bulk_create(
        (
            order(
                history + i,
                fresh_now - timedelta(seconds=rng.randint(60, 600) if i % 5 < 2 else rng.randint(1800, 72000)),
            )
            for i in range(targets)
        ),
        batch_size=BATCH,
    )
    usage = []
    plans = []
    for i, o in enumerate(recent):
        body = {"order": o.external_id, "amount": o.amount, "reason": "mistake", "reason_text": ""}
        pick = i % 10
        if pick in (0, 1, 2):
            body["reason_text"] = "买错了" if pick else "bought it twice"
        elif pick in (3, 4):
            body.update(reason="not_as_described", reason_text="和描述不符")
            usage.append(UsageEvent(order=o, kind="progress", value=30 if pick == 3 else 5, occurred_at=o.paid_at))
        elif pick == 5:
            body.update(reason="cannot_use", reason_text="视频无法播放")
        elif pick == 6:
            body.update(reason="other", reason_text="The app keeps crashing on start")
        elif pick == 7:
            body.update(reason="other", reason_text="我汇报错了数据，其实不需要了")
        elif pick == 8:
            body.update(reason="duplicate")
            usage.append(UsageEvent(order=o, kind="download", occurred_at=o.paid_at))
        else:
            body.update(reason="cannot_use")
        plans.append(body)
    UsageEvent.objects.bulk_create(usage, batch_size=BATCH)
    rng.shuffle(plans)
    warm = WARM_PER_WORKER * args.web_workers
    return raw_key, plans[warm:], plans[:warm]


def _explain() -> list[tuple[str, str]]:
    """EXPLAIN every SELECT a decision runs (on a conditional-window order with usage)."""
    from apps.orders.models import Order, UsageEvent
    from apps.refunds.decision import decide_refund
    from apps.refunds.services import refundable_remaining

    order_id = UsageEvent.objects.order_by("-id").values_list("order_id", flat=True).first()
    order = Order.objects.select_related("customer", "product__refund_policy", "merchant").get(pk=order_id)

    def decision() -> None:
        decide_refund(order=order, amount=order.amount, reason="not_as_described", reason_text="和描述不符")
        refundable_remaining(order=order)

    return [(sql, " / ".join(line.strip() for line in plan)) for sql, plan in explain_selects(decision)]


def _load(url: str, key: str, plans: list[dict], rate: float, threads: int, prefix: str = "bench") -> list[dict]:
    """Send plans[i] at start + i / rate; latency counts from the scheduled instant."""
    import requests

    local = threading.local()
    results: list[dict] = [{} for _ in plans]

    def send(i: int, scheduled: float) -> None:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        sent = time.perf_counter()
        try:
            response = session.post(
                url,
                data=json.dumps(plans[i]),
                headers={
                    "Authorization": f"Bearer {key}",
                    "Content-Type": "application/json",
                    "Idempotency-Key": f"{prefix}-{i}",
                },
                timeout=30,
            )
            done = time.perf_counter()
            ok = response.status_code == 201
            data = response.json() if ok else {}
            results[i] = {
                "ok": ok,
                "code": response.status_code,
                "latency": (done - scheduled) * 1000,
                "service": (done - sent) * 1000,
                "outcome": data.get("decision", {}).get("outcome"),
                "decision_ms": data.get("decision", {}).get("latency_ms"),
                "error": "" if ok else response.text[:200],
            }
        except requests.RequestException as exc:
            results[i] = {
                "ok": False,
                "code": 0,
                "latency": (time.perf_counter() - scheduled) * 1000,
                "error": type(exc).__name__,
            }

    with ThreadPoolExecutor(max_workers=threads) as pool:
        start = time.perf_counter() + 0.5
        for i in range(len(plans)):
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            pool.submit(send, i, scheduled)
    return results


def main() -> None:
    args = _parse()
    rng = random.Random(args.seed)
    if not os.environ.get("REDIS_URL"):
        sys.exit("Set REDIS_URL (a Redis database of its own): production serves with Redis as cache and broker.")
    # The load comes from one API key on one address at --rate/s: the request rate limits (600 and
    # 1 200 a minute by default) would answer most of it 429. This measures the decision path, so
    # they are lifted for the run, as for a merchant whose limit was raised.
    unlimited = f"{max(60_000, int(args.rate * 120))}/min"
    env = django_setup(args.db_name, RATE_LIMIT_API_KEY=unlimited, RATE_LIMIT_API_IP=unlimited)
    from django.db import connection, connections
    from django.db.models import Count

    from apps.gateways.models import Channel
    from apps.orders.models import Order
    from apps.refunds.models import Refund

    # Whatever channels exist (none are created here) are off: no bank is called.
    Channel.objects.update(is_enabled=False)
    started = time.monotonic()
    key, plans, warm = _setup(args, rng)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print(
        f"created {Order.objects.count()} orders, {Refund.objects.count()} refunds, "
        f"{len(plans)} planned requests in {time.monotonic() - started:.1f}s",
        flush=True,
    )
    print("query plans of one decision:")
    for sql, plan in _explain():
        print(f"  {sql[:150]}\n    → {plan[:300]}")
    connections.close_all()

    port = free_port()
    with gunicorn(env, workers=args.web_workers, port=port, ready_path="/healthz"):
        # Outside the measurement, as a server that has been up for a while: real requests reach
        # every worker (the configuration caches, the phrase table, the message templates, psycopg's
        # prepared statements after five runs each). Each worker has already warmed its imports and
        # connections at start (gunicorn.conf.py).
        _load(f"http://127.0.0.1:{port}/api/v1/refunds", key, warm, 20, 8, prefix="warm")
        before = Refund.objects.count()
        connections.close_all()
        print(f"sending {len(plans)} requests at {args.rate:g}/s for {args.duration:g}s …", flush=True)
        results = _load(f"http://127.0.0.1:{port}/api/v1/refunds", key, plans, args.rate, args.client_threads)

    from refundguard.celery import app

    purged = app.control.purge()
    ok = [r for r in results if r.get("ok")]
    errors = [r for r in results if not r.get("ok")]
    latencies = [r["latency"] for r in results if "latency" in r]
    decision_ms = [r["decision_ms"] for r in ok if r.get("decision_ms") is not None]
    service = [r["service"] for r in ok]
    outcomes: dict[str, int] = {}
    for r in ok:
        outcomes[r["outcome"]] = outcomes.get(r["outcome"], 0) + 1
    created = Refund.objects.count() - before
    statuses = dict(Refund.objects.filter(pk__gt=0).values_list("status").annotate(n=Count("id")))
    print(f"outcomes {outcomes}; refunds created {created}; statuses now {statuses}; celery tasks purged {purged}")
    if errors:
        print(f"first errors: {[(e.get('code'), e.get('error')) for e in errors[:5]]}")
    print(
        f"RESULT requests={len(results)} rate={args.rate:g}/s duration={args.duration:g}s "
        f"orders={args.orders} earlier_refunds={args.earlier_refunds} web_workers={args.web_workers} "
        f"p50={percentile(latencies, 50):.1f}ms p95={percentile(latencies, 95):.1f}ms "
        f"p99={percentile(latencies, 99):.1f}ms "
        f"max={max(latencies):.1f}ms mean={statistics.fmean(latencies):.1f}ms errors={len(errors)} "
        f"service_p50={percentile(service, 50):.1f}ms service_p99={percentile(service, 99):.1f}ms "
        f"decision_p50={percentile(decision_ms, 50):.1f}ms decision_p99={percentile(decision_ms, 99):.1f}ms"
    )
    if errors or created != len(results):
        sys.exit("some requests failed")


if __name__ == "__main__":
    main()
