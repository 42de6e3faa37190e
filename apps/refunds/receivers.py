"""Refunds' listeners to facts announced by lower apps (connected in RefundsConfig.ready). A lifted
freeze releases held refunds through the transfer kernel's receiver."""

from __future__ import annotations

from django.dispatch import receiver

from apps.refunds.services import refund_review
from apps.risk.signals import case_decided


@receiver(case_decided, dispatch_uid="refunds.case_decided")
def refund_case_decided(
    sender, *, subject_type: str, subject_id: int, decision: str, actor: str, note: str = "", **kwargs
) -> bool:
    """A reviewer decided a refund's case in the review queue: move the refund the same way.

    Runs inside the deciding transaction; refund_review locks the refund, moves it and closes the
    case itself with case_close, which sends nothing — so there is no loop and one verdict row.
    """
    if subject_type != "refund":
        return False
    refund_review(refund_id=subject_id, approve=decision == "approve", actor=actor, note=note)
    return True
