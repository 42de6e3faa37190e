"""G8 for every movement kind: the poller's effect happens once per period, however many ticks.

Two beats (or a beat and its duplicate) fire the kind's poll-due task at the same moment, each in
its own thread on its own connection: they claim disjoint sets (FOR UPDATE SKIP LOCKED and a lease
of one poll interval), so every item the bank keeps processing (the sandbox's 0001 account) is
queried once per poll interval, counted at the bank. The same guarantee with real `celery beat`
processes, and for the other periodic jobs, is tests/test_beat_duplicates.py.
"""

from __future__ import annotations

import pytest

from tests.refunds.conftest import POLL_INTERVAL
from tests.support import run_at_once

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

ITEMS = 6
AMOUNT = 2000


def two_ticks_at_once(movement) -> list[int]:
    claimed = run_at_once(2, lambda _: movement.poll_due())
    assert all(isinstance(count, int) for count in claimed), claimed
    return claimed


def test_two_poll_ticks_at_once_query_each_processing_item_once_per_interval(movement, clock, bank_queries):
    items = []
    for _ in range(ITEMS):
        item = movement.create(suffix="0001", amount=AMOUNT)
        movement.submit(item)
        items.append(item)
    assert {movement.status(item) for item in items} == {"processing"}
    request_ids = [item.request_id for item in items]

    clock.advance(POLL_INTERVAL + 1)
    assert sum(two_ticks_at_once(movement)) == ITEMS
    assert [bank_queries[rid] for rid in request_ids] == [1] * ITEMS

    assert two_ticks_at_once(movement) == [0, 0]  # within the interval: nothing is due
    assert [bank_queries[rid] for rid in request_ids] == [1] * ITEMS

    clock.advance(POLL_INTERVAL + 1)
    assert sum(two_ticks_at_once(movement)) == ITEMS
    assert [bank_queries[rid] for rid in request_ids] == [2] * ITEMS
    assert [movement.calls(item, "query") for item in items] == [2] * ITEMS
    assert {movement.status(item) for item in items} == {"processing"}
    assert [movement.calls(item, "submit") for item in items] == [1] * ITEMS
