"""G4 for every movement kind: an unknown outcome is queried, never blindly sent again.

The sandbox bank's 0005 account executes the transfer and answers too late (the adapter times
out); 0006 times out without executing. Either way the item is `unknown`, and the next poll asks
the bank under the same request id: when the bank has it, nothing is sent again; when it has not,
the item is sent again once, under the same request id. One execution either way. The seeded
fault simulator (tests/test_channel_faults.py) covers lost answers, outages and late webhooks.
"""

from __future__ import annotations

import pytest

from apps.gateways.models import ChannelCall
from apps.ledger.selectors import ledger_unbalanced_transactions
from tests.refunds.conftest import POLL_INTERVAL, UNKNOWN_QUERY_DELAY

pytestmark = pytest.mark.django_db

SETTLE_AFTER = 3  # SANDBOX_BANK_SETTLE_SECONDS is 2
AMOUNT = 19900


def since_submitted(movement, item) -> list[str]:
    codes = movement.codes(item)
    return codes[codes.index("submitted") :]


def test_a_timeout_after_execution_is_queried_not_resent_and_pays_once(movement, clock):
    item = movement.create(suffix="0005", amount=AMOUNT)
    movement.submit(item)
    item.refresh_from_db()
    assert item.status == "unknown"
    assert movement.executions(item) == 1

    clock.advance(SETTLE_AFTER)
    assert movement.poll_due() == 1

    item.refresh_from_db()
    assert item.status == movement.settled
    assert since_submitted(movement, item) == ["submitted", "unknown", movement.settled]
    assert (movement.calls(item, "submit"), movement.calls(item, "query")) == (1, 1)
    assert movement.executions(item) == 1
    assert movement.postings(item) == [movement.inflight_posting, movement.settle_posting]
    assert movement.in_flight() == 0
    assert list(ledger_unbalanced_transactions()) == []


def test_a_timeout_without_execution_is_queried_then_resent_once_with_the_same_request_id(movement, clock):
    item = movement.create(suffix="0006", amount=AMOUNT)
    movement.submit(item)
    item.refresh_from_db()
    assert item.status == "unknown"
    assert movement.executions(item) == 0

    clock.advance(UNKNOWN_QUERY_DELAY)
    assert movement.poll_due() == 1  # "not found": sent again, once
    item.refresh_from_db()
    assert item.status == "processing"
    clock.advance(SETTLE_AFTER + POLL_INTERVAL)
    assert movement.poll_due() == 1

    item.refresh_from_db()
    assert item.status == movement.settled
    assert since_submitted(movement, item) == ["submitted", "unknown", "resubmitted", "processing", movement.settled]
    assert (movement.calls(item, "submit"), movement.calls(item, "query")) == (2, 2)
    sends_and_queries = ChannelCall.objects.filter(reference=movement.reference(item), action__in=("submit", "query"))
    request_ids = sends_and_queries.values_list("request_id", flat=True)
    assert set(request_ids) == {item.request_id}
    assert movement.executions(item) == 1
    assert movement.postings(item) == [movement.inflight_posting, movement.settle_posting]
    assert movement.in_flight() == 0
    assert list(ledger_unbalanced_transactions()) == []
