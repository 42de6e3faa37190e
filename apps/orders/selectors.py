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
    # One statement: the kinds seen, each with its highest value (progress is the only valued kind).
    highest = dict(UsageEvent.objects.filter(order=order).order_by().values_list("kind").annotate(m=Max("value")))
    kinds = set(highest)
    return {
        "max_progress_pct": highest.get(UsageEvent.Kind.PROGRESS) or 0,
        "key_revealed": UsageEvent.Kind.KEY_REVEALED in kinds,
        "key_activated": UsageEvent.Kind.KEY_ACTIVATED in kinds,
        "downloaded": UsageEvent.Kind.DOWNLOAD in kinds,
    }
