"""Signal receivers: facts announced by refunds and payouts, turned into messages (triggers.py).

They run inside the transaction that recorded the fact, so a message exists exactly when its
cause was committed. A bug in building a message must not undo a refund: anything but a database
error is logged and the change goes on without the message; a database error propagates (the
transaction is unusable anyway).
"""

from __future__ import annotations

import logging

from django.db import DatabaseError
from django.dispatch import receiver

from apps.notifications import triggers
from apps.payouts.models import Kind
from apps.payouts.signals import payout_event_recorded
from apps.refunds.signals import refund_event_recorded

logger = logging.getLogger(__name__)


@receiver(refund_event_recorded, dispatch_uid="notifications.refund_event")
def on_refund_event(sender, *, refund, event, **kwargs) -> None:
    try:
        triggers.refund_event(refund, event)
    except DatabaseError:
        raise
    except Exception:
        logger.exception("notifications: no message for refund %s event %s", refund.pk, event.code)


@receiver(payout_event_recorded, dispatch_uid="notifications.payout_event")
def on_payout_event(sender, *, disbursement, event, **kwargs) -> None:
    try:
        if disbursement.kind == Kind.WITHDRAWAL:
            triggers.withdrawal_event(disbursement, event)
        else:
            triggers.payout_event(disbursement, event)
    except DatabaseError:
        raise
    except Exception:
        logger.exception("notifications: no message for %s %s event %s", disbursement.kind, disbursement.pk, event.code)
