"""G3: a crash at any step of a submit resumes without a second bank call, for every movement kind.

The submit task is killed at one step (tests/crash.py: patched at the seams of the lifecycle's
module, `movement.seams`), the broker redelivers it (acks_late), then the beat's poll task runs
tick after tick; the same step kills the worker again each time it is reached, up to 3 times.
Whatever the step, and for a bank that dedupes request ids (0000) as for one that does not and
answers too late (0005), the bank is called once and executes once, the money arrives, and the
ledger holds exactly one in-flight posting and one settlement. The in-process sandbox bank
(tests/gateways/inproc_bank.py) counts the bank's side.
"""

from __future__ import annotations

from contextlib import suppress

import pytest

from apps.gateways.models import ChannelCall, SandboxSubmission, SandboxTransfer
from apps.ledger.selectors import ledger_unbalanced_transactions
from tests.crash import MAX_TICKS, Killed, beat_until, crash_at

pytestmark = pytest.mark.django_db

# step → (seam patched in the lifecycle's module, die before or after it, crashes there for 0000
# and for 0005). A step the recovery path reaches again is crashed 3 times. The bank call is
# reached once, and that is the guarantee: recovery queries, it never sends blindly. Every answer
# written is crashed after: the submit's answer and the poll's that settles it (0000), or only the
# poll's (0005: its submit timed out, so it wrote `unknown`, not an answer).
STEPS = {
    "inside_the_submit_transaction": ("channel_for", "after", {"0000": 3, "0005": 3}),
    "after_submitted_commits": ("claim_call", "before", {"0000": 3, "0005": 3}),
    "after_the_call_is_claimed": ("claim_call", "after", {"0000": 3, "0005": 3}),
    "after_the_bank_call_returns": ("channel_submit", "after", {"0000": 1, "0005": 1}),
    "after_the_answer_is_written": ("_apply_and_follow_up", "after", {"0000": 2, "0005": 1}),
}
AMOUNT = {"refund": 19900, "payout": 5000, "withdrawal": 5000}


@pytest.mark.parametrize("suffix", ["0000", "0005"])
@pytest.mark.parametrize("step", list(STEPS))
def test_a_crash_at_each_submit_step_resumes_with_one_bank_call(movement, clock, step, suffix):
    seam, when, expected_crashes = STEPS[step]
    item = movement.create(suffix=suffix, amount=AMOUNT[movement.kind])

    with crash_at(f"{movement.seams}.{seam}", when=when, times=3) as crash:
        with suppress(Killed):
            movement.submit(item)
        with suppress(Killed):
            movement.submit(item)  # acks_late: the dead worker's task is delivered again
        ticks = beat_until(movement.poll_due_task, item, status=movement.settled, clock=clock)

    assert crash.fired == expected_crashes[suffix], crash.reached
    assert ticks <= MAX_TICKS, (item.status, movement.codes(item))
    # The bank: one submit reached it, one execution.
    outcomes = SandboxSubmission.objects.filter(request_id=item.request_id).values_list("outcome", flat=True)
    assert list(outcomes) == ["executed"]
    assert SandboxTransfer.objects.get(request_id=item.request_id).executions == 1
    assert ChannelCall.objects.filter(reference=movement.reference(item), action="submit").count() == 1
    # Our books: one in-flight posting, one settlement, nothing left in flight, every entry balanced.
    assert movement.postings(item) == [movement.inflight_posting, movement.settle_posting]
    assert movement.in_flight() == 0
    assert list(ledger_unbalanced_transactions()) == []
    codes = movement.codes(item)
    assert codes.count("submitted") == 1
    assert codes.count(movement.settled) == 1
    assert (item.attempt, item.send_seq) == (1, item.sent_seq)
