"""Refunds' listeners to facts announced by lower apps (connected in RefundsConfig.ready)."""

from __future__ import annotations

import logging

from django.dispatch import receiver

from apps.accounts.selectors import freeze_subjects_q
from apps.accounts.signals import account_unfrozen
from apps.refunds.models import Refund
from apps.refunds.services import refund_release_hold, refund_review
from apps.risk.signals import case_decided

logger = logging.getLogger(__name__)


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


@receiver(account_unfrozen, dispatch_uid="refunds.account_unfrozen")
def refund_release_on_unfreeze(
    sender, *, merchant_id: int, customer_id: int | None, account_fingerprint: str, **kwargs
) -> int:
    """A freeze was lifted (sent after commit): release the held refunds it may have held; each is
    re-checked against the other freezes under its lock (refund_release_hold). A failure is logged,
    not raised into the lift: the poller's sweep releases what this missed. Returns how many moved."""
    held = Refund.objects.filter(
        freeze_subjects_q(customer_id=customer_id, account_fingerprint=account_fingerprint),
        merchant_id=merchant_id,
        status=Refund.Status.HELD,
    ).values_list("pk", flat=True)
    released = 0
    for refund_id in list(held):
        try:
            released += refund_release_hold(refund_id=refund_id).status != Refund.Status.HELD
        except Exception:
            logger.exception("release of held refund=%s failed; the poller releases it later", refund_id)
    return released
