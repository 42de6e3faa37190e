"""Benchmark (not a test): how fast the poller drains in-flight refunds against the sandbox bank.

Setup (not timed): a dedicated PostgreSQL database is recreated and migrated; N refunds in
`processing` are bulk-created, each with a sandbox transfer the bank knows (already settled, so the
query answers `succeeded` and the refund moves on); the sandbox bank is served by gunicorn (the
production arrangement, sync workers) in its own processes on a free port, and the "sandbox"
channel's base_url points at it.

Timed: K worker processes (standing in for Celery workers) each loop `transfer_claim_due(REFUNDS)`
and poll the claimed batch until nothing is due: `transfer_poll_batch(REFUNDS)` per chunk of
--poll-chunk ids (as `refund_poll_due_task` sends them), or `transfer_poll(REFUNDS)` per id with
--poll-chunk 0. Every poll is a real HTTP query to the bank, a `ChannelCall` row, a locked state
change, a timeline event and a ledger posting.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python bench/poll_throughput.py --refunds 10000 --workers 2 --bank-workers 2

The database named by --db-name (default refundguard_bench) is DROPPED and recreated; the script
refuses SQLite and refuses to reuse the database name of DATABASE_URL itself.
"""

from __future__ import annotations

import argparse
import multiprocessing
import secrets
import sys
import time
from datetime import timedelta

from common import django_setup, free_port, gunicorn


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--refunds", type=int, default=10_000, help="in-flight refunds to drain (default 10000)")
    parser.add_argument("--workers", type=int, default=4, help="poller processes, like Celery workers (default 4)")
    parser.add_argument("--batch", type=int, default=100, help="refunds claimed per transfer_claim_due call")
    parser.add_argument("--bank-workers", type=int, default=3, help="gunicorn workers serving the bank")
    parser.add_argument(
        "--poll-chunk",
        type=int,
        default=50,
        help="ids per refund_poll_batch call, as refund_poll_due_task sends them (0: refund_poll per id)",
    )
    parser.add_argument("--poll-threads", type=int, default=8, help="REFUND_POLL_CONCURRENCY (bank queries in flight)")
    parser.add_argument("--profile", action="store_true", help="cProfile each worker; print the top entries")
    parser.add_argument("--db-name", default="refundguard_bench", help="dedicated database (dropped, recreated)")
    return parser.parse_args()


def _setup(n: int) -> int:
    """Create N processing refunds with settled bank transfers; returns the order's amount."""
    from django.utils import timezone

    from apps.accounts.models import BankAccount, Customer, Merchant
    from apps.common.crypto import encrypt, fingerprint
    from apps.gateways.models import Channel
    from apps.gateways.sandbox.models import SandboxTransfer
    from apps.orders.models import Order, Product
    from apps.refunds.models import Refund

    now = timezone.now()
    number = "6222020000000000"
    merchant = Merchant.objects.create(name="Bench merchant")
    customer = Customer.objects.create(merchant=merchant, external_id="c-bench", name="王小明", locale="en")
    account = BankAccount.objects.create(
        merchant=merchant,
        customer=customer,
        holder_name="王小明",
        bank="ICBC",
        number_encrypted=encrypt(number),
        last4=number[-4:],
        fingerprint=fingerprint(number),
    )
    product = Product.objects.create(merchant=merchant, sku="bench", name="Bench", kind="course", price=100)
    order = Order.objects.create(
        merchant=merchant,
        external_id="o-bench",
        customer=customer,
        product=product,
        amount=100 * n,
        currency="CNY",
        paid_at=now - timedelta(minutes=5),
        payment_method="card",
        payer_account=account,
    )
    channel = Channel.objects.get(code="sandbox")
    due = now - timedelta(seconds=1)
    refunds = Refund.objects.bulk_create(
        (
            Refund(
                merchant=merchant,
                order=order,
                customer=customer,
                amount=100,
                currency="CNY",
                reason=Refund.Reason.MISTAKE,
                status=Refund.Status.PROCESSING,
                destination_account=account,
                channel=channel,
                attempt=1,
                submitted_at=due,
                next_poll_at=due,
            )
            for _ in range(n)
        ),
        batch_size=2000,
    )
    SandboxTransfer.objects.bulk_create(
        (
            SandboxTransfer(
                transfer_id=f"sbx_bench_{refund.pk}",
                request_id=refund.request_id,
                channel=channel.code,
                kind="refund",
                amount=100,
                currency="CNY",
                account_last4=number[-4:],
                account_fingerprint=fingerprint(number),
                executions=1,
                submitted_at=due,
                settles_at=due,
            )
            for refund in refunds
        ),
        batch_size=2000,
    )
    return order.amount


def _drain(batch: int, lease_seconds: int, chunk: int, profile: bool = False) -> tuple[int, int]:
    """One worker: claim and poll until nothing is due. Returns (claimed, polls that moved)."""
    if profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        result = profiler.runcall(_drain, batch, lease_seconds, chunk)
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(35)
        return result
    from django.db import connections

    from apps.refunds.models import Refund
    from apps.refunds.services import REFUNDS
    from apps.transfers.poller import transfer_claim_due, transfer_poll, transfer_poll_batch

    connections.close_all()
    claimed = moved = 0
    try:
        while ids := transfer_claim_due(REFUNDS, limit=batch, lease=timedelta(seconds=lease_seconds)):
            claimed += len(ids)
            if chunk:
                for start in range(0, len(ids), chunk):
                    polled = transfer_poll_batch(REFUNDS, ids[start : start + chunk])
                    moved += sum(refund.status == Refund.Status.SUCCEEDED for refund in polled)
                continue
            for refund_id in ids:
                if transfer_poll(REFUNDS, refund_id).status == Refund.Status.SUCCEEDED:
                    moved += 1
    finally:
        connections.close_all()
    return claimed, moved


def main() -> None:
    args = _parse()
    env = django_setup(
        args.db_name,
        SANDBOX_BANK_ENABLED="true",
        SANDBOX_WEBHOOK_SECRET=f"whsec_{secrets.token_hex(24)}",
        # A settled refund's first check for a late return comes after this; keep it out of the drain.
        REFUND_VERIFY_CHECKS_MINUTES="1440",
        REFUND_POLL_CONCURRENCY=str(args.poll_threads),
    )
    from django.db import connections
    from django.db.models import Count

    from apps.gateways.models import Channel, ChannelCall
    from apps.gateways.services import ensure_sandbox_channel
    from apps.refunds.models import Refund

    port = free_port()
    ensure_sandbox_channel()
    Channel.objects.filter(code="sandbox").update(base_url=f"http://127.0.0.1:{port}/sandbox/bank", timeout_seconds=10)
    Channel.objects.exclude(code="sandbox").update(is_enabled=False)

    started = time.monotonic()
    _setup(args.refunds)
    print(f"created {args.refunds} processing refunds in {time.monotonic() - started:.1f}s", flush=True)
    connections.close_all()

    with gunicorn(
        env,
        workers=args.bank_workers,
        port=port,
        ready_path="/sandbox/bank/transfers/warmup",  # unknown transfer: 404 once the bank is up
        ready_statuses=(200, 404),
        what="the sandbox bank",
    ):
        context = multiprocessing.get_context("fork")
        lease = 300
        print(f"draining with {args.workers} workers, batch {args.batch} …", flush=True)
        started = time.monotonic()
        with context.Pool(args.workers) as pool:
            results = pool.starmap(_drain, [(args.batch, lease, args.poll_chunk, args.profile)] * args.workers)
        elapsed = time.monotonic() - started

    claimed = sum(c for c, _ in results)
    moved = sum(m for _, m in results)
    statuses = dict(Refund.objects.values_list("status").annotate(n=Count("id")))
    queries = ChannelCall.objects.filter(action=ChannelCall.Action.QUERY).count()
    print(f"claimed {claimed}, succeeded {moved}, bank queries {queries}, statuses {statuses}")
    print(f"per worker (claimed, succeeded): {results}")
    print(
        f"RESULT refunds={args.refunds} workers={args.workers} bank_workers={args.bank_workers} "
        f"poll_chunk={args.poll_chunk} poll_threads={args.poll_threads} "
        f"seconds={elapsed:.2f} polled_per_second={claimed / elapsed:.0f}"
    )
    if claimed != args.refunds or moved != args.refunds:
        sys.exit("not every refund was polled exactly once and settled")


if __name__ == "__main__":
    main()
