"""The kernel's listeners to facts announced by lower apps (connected in TransfersConfig.ready)."""

from __future__ import annotations

import logging

from django.dispatch import receiver

from apps.accounts.selectors import freeze_subjects_q
from apps.accounts.signals import account_unfrozen
from apps.transfers.policy import policies
from apps.transfers.services import transfer_release_freeze_hold

logger = logging.getLogger(__name__)


@receiver(account_unfrozen, dispatch_uid="transfers.account_unfrozen")
def transfer_release_on_unfreeze(
    sender, *, merchant_id: int, customer_id: int | None, account_fingerprint: str, **kwargs
) -> int:
    """A freeze was lifted (sent after commit): release the transfers of every kind it may have
    held; each is re-checked against the other freezes under its lock (transfer_release_freeze_hold).
    A failure is logged, not raised into the lift: the poller's sweep releases what this missed.
    Returns how many moved."""
    released = 0
    for policy in policies():
        rows = policy.model.objects.filter(
            freeze_subjects_q(customer_id=customer_id, account_fingerprint=account_fingerprint),
            merchant_id=merchant_id,
        )
        for pk in list(policy.freeze_held(rows).values_list("pk", flat=True)):
            try:
                released += not policy.is_freeze_held(transfer_release_freeze_hold(policy, pk))
            except Exception:
                logger.exception("release of held %s=%s failed; the poller releases it later", policy.label, pk)
    return released
