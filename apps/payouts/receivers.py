"""Payouts' listeners to facts announced by lower apps (connected in PayoutsConfig.ready)."""

from __future__ import annotations

import logging

from django.dispatch import receiver

from apps.accounts.selectors import freeze_subjects_q
from apps.accounts.signals import account_unfrozen
from apps.payouts.models import Disbursement
from apps.payouts.services import payout_release_freeze_hold

logger = logging.getLogger(__name__)


@receiver(account_unfrozen, dispatch_uid="payouts.account_unfrozen")
def payout_release_on_unfreeze(
    sender, *, merchant_id: int, customer_id: int | None, account_fingerprint: str, **kwargs
) -> int:
    """A freeze was lifted (sent after commit): release the payouts and withdrawals it may have
    held; each is re-checked against the other freezes under its lock (payout_release_freeze_hold).
    A failure is logged, not raised into the lift: the poller's sweep releases what this missed.
    Returns how many moved."""
    held = Disbursement.objects.filter(
        freeze_subjects_q(customer_id=customer_id, account_fingerprint=account_fingerprint),
        merchant_id=merchant_id,
        status=Disbursement.Status.HELD,
        hold_kind=Disbursement.HoldKind.FREEZE,
    ).values_list("pk", flat=True)
    released = 0
    for pk in list(held):
        try:
            released += payout_release_freeze_hold(disbursement_id=pk).status != Disbursement.Status.HELD
        except Exception:
            logger.exception("release of held disbursement=%s failed; the poller releases it later", pk)
    return released
