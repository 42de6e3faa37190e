"""G3 for payouts and withdrawals: a crash at any step of a submit resumes without a second bank call.

As for refunds (tests/refunds/test_crash_recovery.py): the submit task is killed at one step (patched
at the seams of apps.payouts.services), redelivered, then the beat's poll task runs tick after
tick, killed again at the same step up to 3 times. The bank is called once and executes once, the
money is paid, and the ledger holds one in-flight posting and one payment.
"""

from __future__ import annotations

from contextlib import suppress

import pytest

from apps.gateways.models import ChannelCall, SandboxSubmission, SandboxTransfer
from apps.ledger.models import LedgerAccount, LedgerTransaction
from apps.ledger.selectors import ledger_balance_get, ledger_unbalanced_transactions
from apps.payouts.models import Disbursement
from apps.payouts.services import payout_create, withdrawal_create
from apps.payouts.tasks import payout_poll_due_task, payout_submit_task
from tests.crash import MAX_TICKS, Killed, beat_until, crash_at
from tests.payouts.conftest import account_body, customer_with_wallet, fund_merchant

pytestmark = pytest.mark.django_db

S = Disbursement.Status
AMOUNT = 5000

# step → (seam patched in apps.transfers.services, die before or after it, crashes there for 0000 and
# 0005); see the refund module for why each step is reached as often as it is.
STEPS = {
    "inside_the_submit_transaction": ("channel_for", "after", {"0000": 3, "0005": 3}),
    "after_submitted_commits": ("claim_call", "before", {"0000": 3, "0005": 3}),
    "after_the_call_is_claimed": ("claim_call", "after", {"0000": 3, "0005": 3}),
    "after_the_bank_call_returns": ("channel_submit", "after", {"0000": 1, "0005": 1}),
    "after_the_answer_is_written": ("_apply_and_follow_up", "after", {"0000": 2, "0005": 1}),
}


@pytest.fixture
def auto(payout_settings):
    payout_settings.PAYOUT_REVIEW_NEW_DESTINATION = False
    return payout_settings


def create(merchant, kind: str, suffix: str) -> Disbursement:
    destination = account_body(suffix)
    if kind == "payout":
        fund_merchant(merchant, AMOUNT)
        return payout_create(
            merchant=merchant,
            reference=f"crash-{suffix}",
            amount=AMOUNT,
            currency="CNY",
            destination_account=destination,
            settlement_lines=[{"reference": f"crash-{suffix}", "amount": AMOUNT}],
            actor="api-key:x",
        )
    customer = customer_with_wallet(merchant, AMOUNT)
    return withdrawal_create(
        merchant=merchant,
        customer_external_id=customer.external_id,
        amount=AMOUNT,
        currency="CNY",
        destination_account=destination,
        actor="api-key:x",
    )


@pytest.mark.parametrize("kind", ["payout", "withdrawal"])
@pytest.mark.parametrize("suffix", ["0000", "0005"])
@pytest.mark.parametrize("step", list(STEPS))
def test_a_crash_at_each_submit_step_resumes_with_one_bank_call(merchant, inproc_bank, auto, clock, step, suffix, kind):
    seam, when, expected_crashes = STEPS[step]
    d = create(merchant, kind, suffix)
    assert d.status == S.APPROVED  # its submit task is ours to run: on_commit never fires here

    with crash_at(f"apps.transfers.services.{seam}", when=when, times=3) as crash:
        with suppress(Killed):
            payout_submit_task.delay(d.pk)
        with suppress(Killed):
            payout_submit_task.delay(d.pk)  # acks_late: the dead worker's task is delivered again
        ticks = beat_until(payout_poll_due_task, d, status=S.PAID, clock=clock)

    assert crash.fired == expected_crashes[suffix], crash.reached
    assert ticks <= MAX_TICKS, (d.status, list(d.events.values_list("code", flat=True)))
    # The bank: one submit reached it, one execution.
    outcomes = SandboxSubmission.objects.filter(request_id=d.request_id).values_list("outcome", flat=True)
    assert list(outcomes) == ["executed"]
    assert SandboxTransfer.objects.get(request_id=d.request_id).executions == 1
    assert ChannelCall.objects.filter(reference=d.owner_reference, action="submit").count() == 1
    # Our books: one in-flight posting, one payment, nothing left in flight, every entry balanced.
    refs = LedgerTransaction.objects.filter(reference__startswith=f"{d.owner_reference}:").order_by("id")
    assert list(refs.values_list("reference", flat=True)) == [
        f"{d.owner_reference}:inflight",
        f"{d.owner_reference}:paid",
    ]
    in_flight_kind = LedgerAccount.Kind.PAYOUTS_IN_FLIGHT
    assert ledger_balance_get(owner="platform", kind=in_flight_kind, currency="CNY") == 0
    assert list(ledger_unbalanced_transactions()) == []
    codes = list(d.events.values_list("code", flat=True))
    assert codes.count("submitted") == 1
    assert codes.count("paid") == 1
    assert (d.attempt, d.send_seq) == (1, d.sent_seq)
