"""G1 and the poller's claim on PostgreSQL, with real threads and their own connections.

G1: refunded + in-flight never exceeds captured, per order, however many requests race.
Claiming: concurrent pollers get disjoint sets of due refunds (FOR UPDATE SKIP LOCKED).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import Sum
from django.utils import timezone
from rest_framework.test import APIClient

from apps.gateways.models import ChannelCall
from apps.refunds.models import Refund
from apps.refunds.services import refund_claim_due
from tests.refunds.support import body, make_order, post_refund

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True), pytest.mark.timeout(240)]


def _run_threads(count: int, target: Callable[[int], None]) -> list[BaseException]:
    """Start `count` threads together; each closes its own database connection when done."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait()
            target(index)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def _race(api, order, amounts: list[int], threads: int) -> list[tuple[int, int, str]]:
    """Send one refund request per amount, spread over `threads` threads; (amount, status, code)."""
    results: list[tuple[int, int, str]] = []
    lock = threading.Lock()
    shares = [amounts[i::threads] for i in range(threads)]

    def work(index: int) -> None:
        client = APIClient()
        client._credentials = dict(api._credentials)
        for amount in shares[index]:
            response = post_refund(client, body(order, amount=amount))
            code = response.json().get("error", {}).get("code", "") if response.status_code != 201 else ""
            with lock:
                results.append((amount, response.status_code, code))

    errors = _run_threads(threads, work)
    assert errors == []
    assert len(results) == len(amounts)
    return results


def _reserved(order) -> int:
    return Refund.objects.filter(order=order, status__in=Refund.RESERVING).aggregate(t=Sum("amount"))["t"] or 0


def test_fifty_concurrent_refunds_of_30_against_100_exactly_three_succeed(api, merchant, bank):
    order = make_order(merchant, amount=10000)

    results = _race(api, order, [3000] * 50, threads=10)

    statuses = [status for _, status, _ in results]
    assert statuses.count(201) == 3
    assert statuses.count(422) == 47
    assert {code for _, status, code in results if status == 422} == {"amount_exceeds_refundable"}
    assert Refund.objects.filter(order=order).count() == 3
    assert _reserved(order) == 9000
    assert ChannelCall.objects.filter(action=ChannelCall.Action.SUBMIT).count() == 3


def test_randomized_rounds_never_exceed_captured(api, merchant):
    rng = random.Random(20261127)
    violations = []
    for round_no in range(20):
        captured = rng.randint(1, 50) * 1000
        threads = rng.randint(2, 12)
        amounts = [rng.choice([1, 999, 1000, 2500, 3000, 7000, captured]) for _ in range(rng.randint(10, 40))]
        order = make_order(merchant, amount=captured)

        results = _race(api, order, amounts, threads=threads)

        reserved = _reserved(order)
        remaining = captured - reserved
        accepted = sum(amount for amount, status, _ in results if status == 201)
        refused = [amount for amount, status, _ in results if status != 201]
        if reserved > captured or accepted != reserved:
            violations.append((round_no, captured, reserved, accepted))
        # Remaining only shrinks, so every refusal was for more than what is left now: none was spurious.
        if any(amount <= remaining for amount in refused):
            violations.append((round_no, "spurious refusal", remaining, refused))
        assert {status for _, status, _ in results} <= {201, 422}
    assert violations == []


def test_four_pollers_claim_disjoint_sets_covering_all_due_refunds(merchant):
    order = make_order(merchant, amount=10**9)
    due = timezone.now() - timedelta(seconds=1)
    Refund.objects.bulk_create(
        Refund(
            merchant=merchant,
            order=order,
            customer=order.customer,
            amount=100,
            currency="CNY",
            reason=Refund.Reason.MISTAKE,
            status=Refund.Status.PROCESSING,
            destination_account=order.payer_account,
            next_poll_at=due - timedelta(milliseconds=i),
        )
        for i in range(200)
    )
    all_ids = set(Refund.objects.values_list("id", flat=True))
    claimed: list[list[int]] = [[] for _ in range(4)]

    def poller(index: int) -> None:
        while ids := refund_claim_due(limit=7, lease=timedelta(hours=1)):
            claimed[index].extend(ids)
            time.sleep(0.001)  # let the others in, as separate workers would be

    errors = _run_threads(4, poller)

    assert errors == []
    flat = [pk for batch in claimed for pk in batch]
    assert len(flat) == len(set(flat)) == 200
    assert set(flat) == all_ids
    assert sum(1 for batch in claimed if batch) >= 2, "the pollers did not actually run concurrently"
