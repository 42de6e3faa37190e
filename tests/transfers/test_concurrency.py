"""G1 for every movement kind, on PostgreSQL with real threads, each on its own connection.

One approved item whose submit reaches several workers at once (a redelivered message, a poll
racing the first send) goes to the bank once: the row lock and the send claim let one through.
And however many items are opened against one owner at once, they never draw more than it holds:
an order's captured amount (refunds), the merchant's payable (payouts), a customer's wallet
(withdrawals). The refund limit under heavier, randomized races is tests/refunds/test_concurrency.py.
"""

from __future__ import annotations

import pytest

from apps.common.errors import ServiceError
from apps.gateways.models import ChannelCall, SandboxTransfer
from apps.ledger.selectors import ledger_unbalanced_transactions
from tests.support import run_at_once

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

THREADS = 6
AMOUNT = 3000


def test_one_item_submitted_from_six_threads_at_once_is_executed_once(movement):
    item = movement.create(amount=AMOUNT)

    results = run_at_once(THREADS, lambda _: movement.submit(item))

    assert results == [None] * THREADS
    item.refresh_from_db()
    assert item.status == "processing"
    assert movement.calls(item, "submit") == 1
    assert list(SandboxTransfer.objects.values_list("request_id", "executions")) == [(item.request_id, 1)]
    assert movement.postings(item) == [movement.inflight_posting]
    assert movement.in_flight() == AMOUNT
    assert movement.codes(item).count("submitted") == 1
    assert (item.attempt, item.send_seq, item.sent_seq) == (1, 1, 1)
    assert list(ledger_unbalanced_transactions()) == []


def test_six_parallel_items_of_30_against_an_owner_holding_100_let_exactly_three_through(movement):
    owner = movement.limited_owner(10000)

    results = run_at_once(THREADS, lambda _: movement.create_against(owner, amount=AMOUNT))

    refusals = [r.code for r in results if isinstance(r, ServiceError)]
    refusals += [r.failure_code for r in results if not isinstance(r, BaseException) and r.status == "failed"]
    assert not [r for r in results if isinstance(r, BaseException) and not isinstance(r, ServiceError)], results
    accepted = movement.accepted(owner)
    assert accepted.count() == 3
    assert refusals == [movement.over_limit] * 3
    assert movement.left(owner) == 1000
    # Each accepted item went to the bank once, as one execution, and nothing else did.
    references = [movement.reference(item) for item in accepted]
    assert ChannelCall.objects.filter(action="submit").count() == 3
    assert ChannelCall.objects.filter(action="submit", reference__in=references).count() == 3
    assert sorted(SandboxTransfer.objects.values_list("executions", flat=True)) == [1, 1, 1]
    assert movement.in_flight() == 3 * AMOUNT
    assert list(ledger_unbalanced_transactions()) == []
