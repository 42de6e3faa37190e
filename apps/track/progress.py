"""What a progress page shows, computed from the timeline: the parcel-tracker stages, the current
step, and — when late or failed — the reason, who must act, the new expected time and the action.
Read-only; strings come out in the active language (the view activates the customer's)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.utils import timezone, translation
from django.utils.translation import gettext as _

from apps.notifications import triggers
from apps.track.messages import (
    PARTIES,
    REFUND_STAGE_OF,
    REFUND_STAGES,
    RESPONSIBILITY,
    STEPS,
    WITHDRAWAL_STAGE_OF,
    reason_text,
)

# Codes after which the bank leg starts again (a new account or an automatic retry).
_RESTART = {"failed", "needs_action", "account_updated", "retrying", "held_frozen"}
_REFUND_STOPPED = {"rejected", "cancelled", "failed", "needs_action", "reversed", "tech_support"}


@dataclass
class Stage:
    key: str
    label: str
    at: datetime | None = None
    state: str = "todo"  # done | current | problem | todo


@dataclass
class Problem:
    reason: str
    party: str  # platform | bank | customer | merchant
    responsibility: str
    new_eta: datetime | None = None
    action: str = "support"  # change_account | appeal | support


@dataclass
class Progress:
    stages: list[Stage]
    events: list[dict]
    status_text: str
    current: int
    is_done: bool = False
    problem: Problem | None = None
    notes: list[str] = field(default_factory=list)


def _stages(events, stage_of: dict[str, int]) -> tuple[list[Stage], int]:
    reached: dict[int, datetime] = {}
    for event in events:
        if event.code in _RESTART:
            reached = {i: at for i, at in reached.items() if i < 2}
        index = stage_of.get(event.code)
        if index is not None:
            reached.setdefault(index, event.created_at)
            # A later stage implies the earlier ones even when the timeline skipped them.
            for earlier in range(index):
                reached.setdefault(earlier, event.created_at)
    stages = [Stage(key=key, label=str(label)) for key, label in REFUND_STAGES]
    current = max(reached) if reached else 0
    for index, stage in enumerate(stages):
        stage.at = reached.get(index)
        stage.state = "done" if index < current else "current" if index == current else "todo"
    return stages, current


def _event_rows(events) -> list[dict]:
    return [
        {
            "code": e.code,
            "text": str(STEPS.get(e.code, e.code)),
            "party": str(PARTIES.get(e.responsible_party, e.responsible_party)),
            "at": e.created_at,
        }
        for e in events
    ]


def _problem(*, reason: str, party: str, eta: datetime | None = None, action: str = "support") -> Problem:
    party = party or "platform"
    return Problem(
        reason=reason,
        party=party,
        responsibility=str(RESPONSIBILITY.get(party, RESPONSIBILITY["platform"])),
        new_eta=eta,
        action=action,
    )


def _held_by(events) -> str:
    """Who answers for a freeze hold: the party its `held_frozen` event names."""
    held = next((e for e in reversed(events) if e.code == "held_frozen"), None)
    return held.responsible_party if held is not None else "platform"


def refund_progress(refund, *, now: datetime | None = None) -> Progress:
    now = now or timezone.now()
    events = list(refund.events.order_by("created_at", "id"))
    stages, current = _stages(events, REFUND_STAGE_OF)
    last = events[-1].code if events else "requested"
    status = refund.status
    progress = Progress(
        stages=stages,
        events=_event_rows(events),
        status_text=str(STEPS.get(last, last)),
        current=current,
        is_done=status == "succeeded",
    )
    if status == "succeeded":
        stages[-1].state = "done"
    if status == "needs_action":
        progress.problem = _problem(reason=reason_text(refund.failure_code), party="customer", action="change_account")
    elif status == "failed":
        progress.problem = _problem(
            reason=reason_text(refund.failure_code), party=refund.responsible_party, eta=refund.expected_arrival_at
        )
    elif status == "reversed":
        progress.problem = _problem(reason=reason_text(refund.failure_code or "account_closed"), party="customer")
    elif status == "held":  # a freeze: not a failure, nothing left
        progress.problem = _problem(reason=str(STEPS["held_frozen"]), party=_held_by(events))
    elif status == "rejected":
        explanation = (refund.decision or {}).get("explanation") or _("The refund policy does not cover this order.")
        progress.problem = _problem(reason=explanation, party="merchant", action="appeal")
    elif last == "held_by_bank" and status in ("submitted", "processing", "unknown"):
        progress.problem = _problem(reason=reason_text("risk_hold"), party="bank", eta=refund.expected_arrival_at)
    elif (
        status in ("approved", "submitted", "processing", "unknown")
        and refund.expected_arrival_at is not None
        and refund.expected_arrival_at < now
    ):
        progress.problem = _problem(reason=reason_text("late"), party="platform")
    if progress.problem is not None or status in _REFUND_STOPPED:
        stages[current].state = "problem"
    return progress


def _withdrawal_reason(withdrawal, events: list) -> str:
    """Why a withdrawal failed, in the active language. A refusal by the pre-checks never reached a
    bank: it is told as the customer's message tells it (apps.notifications.triggers), what the
    check found and what to do; a bank's failure by its normalised reason."""
    code = withdrawal.failure_code
    refused = next((e for e in reversed(events) if e.code == "precheck_failed"), None)
    if not code.startswith("precheck_") or refused is None:
        return reason_text(code)
    locale = translation.get_language()
    stop = "。" if locale == "zh-hans" else ". "
    if code == "precheck_account_verification":
        text = triggers.reason_text(code, locale)
    else:
        why, steps = triggers.withdrawal_refusal(withdrawal, refused, locale)
        text = f"{why}{stop}{steps}"
    return f"{text[:1].upper()}{text[1:]}{stop.strip()}"


def withdrawal_progress(withdrawal) -> Progress:
    events = list(withdrawal.events.order_by("created_at", "id"))
    stages, current = _stages(events, WITHDRAWAL_STAGE_OF)
    last = events[-1].code if events else "created"
    status = withdrawal.status
    progress = Progress(
        stages=stages,
        events=_event_rows(events),
        status_text=str(STEPS.get(last, last)),
        current=current,
        is_done=status == "paid",
    )
    if status == "paid":
        stages[-1].state = "done"
    if status in ("failed", "returned"):
        party = withdrawal.responsible_party or "bank"
        progress.problem = _problem(reason=_withdrawal_reason(withdrawal, events), party=party)
    elif status == "held" and last == "held_frozen":
        progress.problem = _problem(reason=str(STEPS["held_frozen"]), party=_held_by(events))
    elif status == "held":
        progress.problem = _problem(reason=str(STEPS["held"]), party="platform")
    elif last == "held_by_bank" and status in ("submitted", "processing", "unknown"):
        progress.problem = _problem(reason=reason_text("risk_hold"), party="bank")
    if progress.problem is not None or status == "cancelled":
        stages[current].state = "problem"
    return progress
