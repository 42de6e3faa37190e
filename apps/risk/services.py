"""The risk engine's interface to the apps that move money, and the review queue.

`risk_evaluate` is called on every refund decision. Until rules exist it allows everything; the
rules engine fills it in without changing callers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.accounts.models import Merchant
from apps.risk.models import Case

# How long a review may wait before it is overdue (the alerts issue watches this).
CASE_SLA = timedelta(hours=4)


@dataclass(frozen=True)
class RiskVerdict:
    action: str = "allow"  # allow | review | block | block_and_freeze
    matches: list[dict] = field(default_factory=list)
    score: float = 0.0


def risk_evaluate(*, scope: str, merchant: Merchant, context: dict) -> RiskVerdict:
    """Judge one money movement (`scope` refund/payout/withdrawal) from its feature context."""
    return RiskVerdict()


def case_open(
    *, merchant: Merchant, subject_type: str, subject_id: int, reason: str, detail: dict | None = None
) -> Case:
    """Put a subject in the review queue, once (a second call returns the existing case)."""
    try:
        with transaction.atomic():
            return Case.objects.create(
                merchant=merchant,
                subject_type=subject_type,
                subject_id=subject_id,
                reason=reason,
                detail=detail or {},
                sla_due_at=timezone.now() + CASE_SLA,
            )
    except IntegrityError:
        return Case.objects.get(subject_type=subject_type, subject_id=subject_id)


def case_close(*, subject_type: str, subject_id: int, decision: str, actor: str) -> Case | None:
    """Record the reviewer's verdict on the subject's case (no-op when there is none or it is closed)."""
    case = Case.objects.select_for_update().filter(subject_type=subject_type, subject_id=subject_id).first()
    if case is None or case.status == Case.Status.DECIDED:
        return case
    case.status = Case.Status.DECIDED
    case.decision = decision
    case.decided_by = actor
    case.decided_at = timezone.now()
    case.save(update_fields=["status", "decision", "decided_by", "decided_at"])
    return case
