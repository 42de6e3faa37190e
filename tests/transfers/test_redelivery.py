"""G7 for every movement kind: a task the broker delivers twice has its effect once.

Tasks are acks_late: a worker that dies before acknowledging gets its message delivered again, and
two workers may hold copies. The submit task run twice calls the bank once. The resend task (an
item committed `submitted` whose call has not been made, as after a worker died between the commit
and the call) run twice calls it once too: each submit or resubmit owes one call, claimed first.
"""

from __future__ import annotations

from contextlib import suppress

import pytest

from apps.ledger.selectors import ledger_unbalanced_transactions
from tests.crash import Killed, crash_at

pytestmark = pytest.mark.django_db

AMOUNT = 19900


def test_the_submit_task_delivered_twice_calls_the_bank_once(movement):
    item = movement.create(amount=AMOUNT)

    movement.submit(item)
    movement.submit(item)

    item.refresh_from_db()
    assert item.status == "processing"
    assert movement.calls(item, "submit") == 1
    assert movement.executions(item) == 1
    assert movement.codes(item).count("submitted") == 1
    assert movement.postings(item) == [movement.inflight_posting]
    assert movement.in_flight() == AMOUNT
    assert (item.attempt, item.send_seq, item.sent_seq) == (1, 1, 1)


def test_the_resend_task_delivered_twice_calls_the_bank_once(movement):
    item = movement.create(amount=AMOUNT)
    with crash_at(f"{movement.seams}.claim_call", when="before", times=1) as crash, suppress(Killed):
        movement.submit(item)  # the worker dies after `submitted` commits, before it claims the call
    assert crash.fired == 1
    item.refresh_from_db()
    assert item.status == "submitted"
    assert movement.calls(item, "submit") == 0

    movement.resend(item)
    movement.resend(item)

    item.refresh_from_db()
    assert item.status == "processing"
    assert movement.calls(item, "submit") == 1
    assert movement.executions(item) == 1
    assert movement.codes(item).count("submitted") == 1
    assert movement.postings(item) == [movement.inflight_posting]
    assert (item.send_seq, item.sent_seq) == (1, 1)
    assert list(ledger_unbalanced_transactions()) == []
