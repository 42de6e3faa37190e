"""G3 for refunds: a crash at any step of a submit resumes without a second bank call.

The submit task is killed at one step (tests/crash.py: patched at the service's seams), the broker
redelivers it (acks_late), then the beat's poll task runs tick after tick; the same step kills the
worker again each time it is reached, up to 3 times. Whatever the step, and for a bank that dedupes
request ids (0000) as for one that does not and answers too late (0005), the bank is called once
and executes once, the refund arrives, and the ledger holds exactly one in-flight posting and one
settlement. The in-process sandbox bank (tests/gateways/inproc_bank.py) counts the bank's side.
"""

from __future__ import annotations

from contextlib import suppress

import pytest

from apps.gateways.models import ChannelCall, SandboxSubmission, SandboxTransfer
from apps.ledger.models import LedgerAccount, LedgerTransaction
from apps.ledger.selectors import ledger_balance_get, ledger_unbalanced_transactions
from apps.refunds.models import Refund
from apps.refunds.services import refund_request
from apps.refunds.tasks import refund_poll_due_task, refund_submit_task
from tests.crash import MAX_TICKS, Killed, beat_until, crash_at
from tests.gateways.inproc_bank import inproc_sandbox  # noqa: F401 (fixture)
from tests.refunds.support import make_order

pytestmark = pytest.mark.django_db

S = Refund.Status

# step → (seam patched in apps.transfers.services, die before or after it, crashes there for 0000 and
# for 0005). A step the recovery path reaches again is crashed 3 times. The bank call is reached
# once, and that is the guarantee: recovery queries, it never sends blindly. Every answer written
# is crashed after: the submit's answer and the poll's that settles it (0000), or only the poll's
# (0005: its submit timed out, so it wrote `unknown`, not an answer).
STEPS = {
    "inside_the_submit_transaction": ("channel_for", "after", {"0000": 3, "0005": 3}),
    "after_submitted_commits": ("claim_call", "before", {"0000": 3, "0005": 3}),
    "after_the_call_is_claimed": ("claim_call", "after", {"0000": 3, "0005": 3}),
    "after_the_bank_call_returns": ("channel_submit", "after", {"0000": 1, "0005": 1}),
    "after_the_answer_is_written": ("_apply_and_follow_up", "after", {"0000": 2, "0005": 1}),
}


@pytest.mark.parametrize("suffix", ["0000", "0005"])
@pytest.mark.parametrize("step", list(STEPS))
def test_a_crash_at_each_submit_step_resumes_with_one_bank_call(
    merchant,
    inproc_sandbox,  # noqa: F811 (the imported fixture)
    refund_settings,
    clock,
    step,
    suffix,
):
    seam, when, expected_crashes = STEPS[step]
    order = make_order(merchant, amount=19900, last4=suffix)
    refund = refund_request(
        merchant=merchant, order_external_id=order.external_id, amount=19900, reason="mistake", actor="test"
    )
    assert refund.status == S.APPROVED  # its submit task is ours to run: on_commit never fires here

    with crash_at(f"apps.transfers.services.{seam}", when=when, times=3) as crash:
        with suppress(Killed):
            refund_submit_task.delay(refund.pk)
        with suppress(Killed):
            refund_submit_task.delay(refund.pk)  # acks_late: the dead worker's task is delivered again
        ticks = beat_until(refund_poll_due_task, refund, status=S.SUCCEEDED, clock=clock)

    assert crash.fired == expected_crashes[suffix], crash.reached
    assert ticks <= MAX_TICKS, (refund.status, list(refund.events.values_list("code", flat=True)))
    request_id = refund.request_id
    # The bank: one submit reached it, one execution.
    assert list(SandboxSubmission.objects.filter(request_id=request_id).values_list("outcome", flat=True)) == [
        "executed"
    ]
    assert SandboxTransfer.objects.get(request_id=request_id).executions == 1
    assert ChannelCall.objects.filter(reference=f"refund:{refund.pk}", action="submit").count() == 1
    # Our books: one in-flight posting, one settlement, nothing left in flight, every entry balanced.
    refs = LedgerTransaction.objects.filter(reference__startswith=f"refund:{refund.pk}:").order_by("id")
    assert list(refs.values_list("reference", flat=True)) == [
        f"refund:{refund.pk}:inflight:1",
        f"refund:{refund.pk}:settle",
    ]
    assert ledger_balance_get(owner="platform", kind=LedgerAccount.Kind.REFUNDS_IN_FLIGHT, currency="CNY") == 0
    assert list(ledger_unbalanced_transactions()) == []
    codes = list(refund.events.values_list("code", flat=True))
    assert codes.count("submitted") == 1
    assert codes.count("succeeded") == 1
    assert (refund.attempt, refund.send_seq) == (1, refund.sent_seq)
