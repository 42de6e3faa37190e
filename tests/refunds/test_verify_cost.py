"""G19: a succeeded refund is queried for a late return on a bounded schedule (REFUND_VERIFY_CHECKS),
not every few seconds for three days, and the sandbox 0003 return is still caught.

The bank is the sandbox bank in-process (tests/payouts/conftest.py `inproc_bank`: the real adapter,
HTTP intercepted at the transport); what is counted is the queries the bank itself received. The
clock runs the whole window and an hour beyond with a real beat tick of the poller every two minutes,
so every check is reached and a per-interval rule would show as thousands of queries."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from apps.gateways.models import ChannelCall, InboundWebhook
from apps.ledger.models import LedgerTransaction
from apps.refunds.models import Refund
from apps.refunds.tasks import refund_poll_due_task
from tests.gateways.inproc_bank import bank_queries  # noqa: F401 (fixture)
from tests.payouts.conftest import inproc_bank, payout_settings  # noqa: F401 (fixtures)
from tests.refunds.conftest import POLL_INTERVAL, open_order, request_refund

pytestmark = pytest.mark.django_db

S = Refund.Status
SETTLE_AFTER = 3  # SANDBOX_BANK_SETTLE_SECONDS is 2
TICK = 120  # seconds between beat ticks: less than any gap between two checks
# The default schedule (refundguard/settings.py): 1 min, 15 min, 2 h, 24 h, 72 h after arrival.
CHECKS = tuple(timedelta(minutes=minutes) for minutes in (1, 15, 120, 1440, 4320))


@pytest.mark.usefixtures("inproc_bank")
def test_a_succeeded_refund_costs_one_query_per_configured_check_and_the_late_return_is_caught(
    api,
    refund_settings,
    clock,
    bank_queries,  # noqa: F811
    django_capture_on_commit_callbacks,
):
    refund_settings.REFUND_POLL_CONCURRENCY = 1  # in-process: the test's thread sees its own rows
    refund_settings.REFUND_VERIFY_CHECKS = CHECKS
    with django_capture_on_commit_callbacks(execute=True):
        ids = [request_refund(api, open_order(api, suffix))["id"] for suffix in ("0000", "0000", "0003")]
    clock.advance(SETTLE_AFTER + POLL_INTERVAL)
    refund_poll_due_task.apply()  # no webhooks: the poller learns every success
    refunds = Refund.objects.in_bulk(ids)
    assert {refund.status for refund in refunds.values()} == {S.SUCCEEDED}
    settled = Counter(bank_queries)
    assert sorted(settled.values()) == [1, 1, 1]

    for _ in range(int((CHECKS[-1] + timedelta(hours=1)).total_seconds()) // TICK):  # the window and an hour
        clock.advance(TICK)
        refund_poll_due_task.apply()

    verification = {pk: bank_queries[r.request_id] - settled[r.request_id] for pk, r in refunds.items()}
    returned = ids[2]
    # 5 each; a query every REFUND_VERIFY_INTERVAL (30 s) made one per tick here, ~2 200 each.
    assert [verification[pk] for pk in ids[:2]] == [len(CHECKS), len(CHECKS)]
    assert verification[returned] == 1  # the first check (1 min) already sees the return
    assert sum(bank_queries.values()) == 3 + 2 * len(CHECKS) + 1
    assert ChannelCall.objects.filter(action="query").count() == sum(bank_queries.values())
    assert InboundWebhook.objects.count() == 0
    for pk, refund in Refund.objects.in_bulk(ids).items():
        assert refund.next_poll_at is None
        assert refund.status == (S.REVERSED if pk == returned else S.SUCCEEDED)
    returns = LedgerTransaction.objects.filter(reference__endswith=":returned").values_list("reference", flat=True)
    assert list(returns) == [f"refund:{returned}:returned"]  # the returned money booked once
