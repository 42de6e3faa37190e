"""Batch polling: a claimed chunk is queried concurrently and applied one by one, each refund once."""

from __future__ import annotations

import pytest

from apps.gateways.models import ChannelCall
from apps.ledger.models import LedgerTransaction
from apps.refunds.models import Refund
from apps.refunds.services import REFUNDS
from apps.refunds.tasks import refund_poll_due_task
from apps.transfers.poller import transfer_claim_due, transfer_poll_batch
from tests.refunds.conftest import AMOUNT, POLL_INTERVAL
from tests.refunds.test_sandbox_suffixes import SETTLE_AFTER, calls, codes, in_flight, payable, start

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(90)]


def test_a_concurrent_batch_poll_moves_every_refund_once_with_one_query_each(
    api, bank, refund_settings, clock, anomalies
):
    refund_settings.REFUND_POLL_CONCURRENCY = 4
    started = [start(api, suffix) for suffix in ("0000", "0000", "0002", "0000")]
    clock.advance(SETTLE_AFTER + POLL_INTERVAL)

    ids = transfer_claim_due(REFUNDS, limit=100)
    assert sorted(ids) == sorted(refund.pk for refund, _ in started)
    polled = transfer_poll_batch(REFUNDS, ids)

    assert sorted(refund.pk for refund in polled) == sorted(ids)
    assert transfer_claim_due(REFUNDS, limit=100) == []  # still leased: nobody polls them twice
    for refund, _ in started:
        refund.refresh_from_db()
        assert calls(refund.pk, "submit") == 1
        assert calls(refund.pk, "query") == 1
        if refund.status == Refund.Status.SUCCEEDED:
            assert codes(refund.pk)[-1] == "succeeded"
            assert refund.channel_reference
            assert refund.next_poll_at is not None
            settles = LedgerTransaction.objects.filter(reference=f"refund:{refund.pk}:settle").count()
            assert settles == 1
        else:
            assert refund.status == Refund.Status.NEEDS_ACTION
    assert Refund.objects.filter(status=Refund.Status.SUCCEEDED).count() == 3
    assert in_flight() == 0
    # One merchant, four paid orders: it still owes what the three settled refunds did not pay out.
    assert payable(started[0][0]) == 4 * AMOUNT - 3 * AMOUNT
    assert anomalies.seen == []


def test_the_beat_tick_sends_claimed_ids_in_chunks_and_each_is_polled_once(api, bank, refund_settings, clock):
    refund_settings.REFUND_POLL_CHUNK = 2
    started = [start(api, "0000")[0] for _ in range(3)]
    clock.advance(SETTLE_AFTER + POLL_INTERVAL)

    assert refund_poll_due_task.apply().result == 3

    assert ChannelCall.objects.filter(action=ChannelCall.Action.QUERY).count() == 3
    for refund in started:
        refund.refresh_from_db()
        assert refund.status == Refund.Status.SUCCEEDED
        assert calls(refund.pk, "query") == 1
    assert in_flight() == 0
