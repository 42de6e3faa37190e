from __future__ import annotations

from django.db.models import Max

from apps.accounts.models import Merchant
from apps.orders.models import Order, Product, UsageEvent


def product_list_for_merchant(*, merchant: Merchant):
    return Product.objects.filter(merchant=merchant).select_related("refund_policy").order_by("-id")


def order_list_for_merchant(*, merchant: Merchant):
    return (
        Order.objects.filter(merchant=merchant)
        .select_related("customer", "product", "referrer", "payer_account")
        .order_by("-id")
    )


def usage_list_for_order(*, order: Order):
    return UsageEvent.objects.filter(order=order).order_by("occurred_at", "id")


def usage_summary(*, order: Order) -> dict:
    """What the order's usage evidence says, for decisions and the progress page."""
    events = UsageEvent.objects.filter(order=order)
    kinds = set(events.values_list("kind", flat=True).distinct())
    progress = events.filter(kind=UsageEvent.Kind.PROGRESS).aggregate(m=Max("value"))["m"] or 0
    return {
        "max_progress_pct": progress,
        "key_revealed": UsageEvent.Kind.KEY_REVEALED in kinds,
        "key_activated": UsageEvent.Kind.KEY_ACTIVATED in kinds,
        "downloaded": UsageEvent.Kind.DOWNLOAD in kinds,
    }
