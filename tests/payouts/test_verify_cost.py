"""G19: a paid payout or withdrawal is queried for a late return on a bounded schedule
(PAYOUT_VERIFY_CHECKS), not every minute for three days, and the sandbox 0003 return is still caught.

The in-process sandbox bank (`inproc_bank`: the real adapter, HTTP intercepted at the transport)
counts the queries it received; the clock runs the whole window and an hour beyond with a real
beat tick of the poller every two minutes, so every check is reached and a per-interval rule would
show as thousands of queries."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from apps.gateways.models import ChannelCall, InboundWebhook
from apps.payouts import services
from apps.payouts.models import Disbursement
from apps.payouts.tasks import payout_poll_due_task
from tests.gateways.inproc_bank import bank_queries  # noqa: F401 (fixture)
from tests.payouts.conftest import POLL_INTERVAL, SETTLE_AFTER, account_body, customer_with_wallet, fund_merchant

pytestmark = pytest.mark.django_db

S = Disbursement.Status
TICK = 120  # seconds between beat ticks: less than any gap between two checks
# The default schedule (refundguard/settings.py): 1 min, 15 min, 2 h, 24 h, 72 h after payment.
CHECKS = tuple(timedelta(minutes=minutes) for minutes in (1, 15, 120, 1440, 4320))


def _payout(merchant, amount: int, *, suffix: str, reference: str) -> Disbursement:
    return services.payout_create(
        merchant=merchant,
        reference=reference,
        amount=amount,
        currency="CNY",
        destination_account=account_body(suffix),
        settlement_lines=[{"reference": reference, "amount": amount}],
        actor="api-key:x",
    )


@pytest.mark.usefixtures("inproc_bank")
def test_a_paid_movement_costs_one_query_per_configured_check_and_the_late_return_is_caught(
    merchant,
    payout_settings,
    clock,
    bank_queries,  # noqa: F811
    django_capture_on_commit_callbacks,
):
    payout_settings.PAYOUT_REVIEW_NEW_DESTINATION = False
    payout_settings.PAYOUT_VERIFY_CHECKS = CHECKS
    fund_merchant(merchant, 20000)
    customer = customer_with_wallet(merchant, 10000)
    with django_capture_on_commit_callbacks(execute=True):
        rows = [
            _payout(merchant, 10000, suffix="0000", reference="settle-1"),
            services.withdrawal_create(
                merchant=merchant,
                customer_external_id=customer.external_id,
                amount=10000,
                currency="CNY",
                destination_account=account_body("0000"),
                actor="api-key:x",
            ),
            _payout(merchant, 10000, suffix="0003", reference="settle-2"),
        ]
    clock.advance(SETTLE_AFTER + POLL_INTERVAL)
    assert payout_poll_due_task.apply().result == 3  # no webhooks: the poller learns every payment
    paid = Disbursement.objects.in_bulk([d.pk for d in rows])
    assert {d.status for d in paid.values()} == {S.PAID}
    settled = Counter(bank_queries)
    assert sorted(settled.values()) == [1, 1, 1]

    for _ in range(int((CHECKS[-1] + timedelta(hours=1)).total_seconds()) // TICK):  # the window and an hour
        clock.advance(TICK)
        payout_poll_due_task.apply()

    verification = {pk: bank_queries[d.request_id] - settled[d.request_id] for pk, d in paid.items()}
    returned = rows[2].pk
    # 5 each; a query every PAYOUT_VERIFY_INTERVAL (60 s) made one per tick here, ~2 200 each.
    assert [verification[d.pk] for d in rows[:2]] == [len(CHECKS), len(CHECKS)]
    assert verification[returned] == 1  # the first check (1 min) already sees the return
    assert sum(bank_queries.values()) == 3 + 2 * len(CHECKS) + 1
    assert ChannelCall.objects.filter(action="query").count() == sum(bank_queries.values())
    assert InboundWebhook.objects.count() == 0
    for pk, d in Disbursement.objects.in_bulk(list(paid)).items():
        assert d.next_poll_at is None
        assert d.status == (S.RETURNED if pk == returned else S.PAID)
