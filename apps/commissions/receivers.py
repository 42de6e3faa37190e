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
    if order.referrer_id is None:
        return
    try:
        with transaction.atomic():
            commission_accrue(order=order)
    except DatabaseError:
        raise
    except Exception:
        logger.exception("commissions: accrual failed for order %s", order.pk)


# The refund events commission_on_refund_event acts on; the others pass without a query.
_RELEVANT = frozenset({"approved", "manual_review", "succeeded", "rejected", "cancelled", "retry_refused", "failed"})


@receiver(refund_event_recorded, dispatch_uid="commissions.refund_event")
def on_refund_event(sender, *, refund, event, **kwargs) -> None:
    if event.code not in _RELEVANT or refund.order.referrer_id is None:
        return  # commissions accrue only up an order's referrer: an order without one has none
    try:
        with transaction.atomic():
            commission_on_refund_event(refund=refund, event=event)
    except DatabaseError:
        raise
    except Exception:
        logger.exception("commissions: refund %s event %s not applied", refund.pk, event.code)
