"""Commissions' listeners to facts announced by lower apps (connected in CommissionsConfig.ready).

Both run inside the transaction that recorded the fact, so a commission changes exactly when its
cause commits (no loss on a crash, nothing twice: see the `cause` keys in services). Each runs in
a savepoint: a bug here is logged and undoes only the commission change, never the order or the
refund; a database error propagates (the transaction is unusable anyway).
"""

from __future__ import annotations

import logging

from django.db import DatabaseError, transaction
from django.dispatch import receiver

from apps.commissions.services import commission_accrue, commission_on_refund_event
from apps.orders.signals import order_captured
from apps.refunds.signals import refund_event_recorded

logger = logging.getLogger(__name__)


@receiver(order_captured, dispatch_uid="commissions.order_captured")
def on_order_captured(sender, *, order, **kwargs) -> None:
    try:
        with transaction.atomic():
            commission_accrue(order=order)
    except DatabaseError:
        raise
    except Exception:
        logger.exception("commissions: accrual failed for order %s", order.pk)


@receiver(refund_event_recorded, dispatch_uid="commissions.refund_event")
def on_refund_event(sender, *, refund, event, **kwargs) -> None:
    try:
        with transaction.atomic():
            commission_on_refund_event(refund=refund, event=event)
    except DatabaseError:
        raise
    except Exception:
        logger.exception("commissions: refund %s event %s not applied", refund.pk, event.code)
