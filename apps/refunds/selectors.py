from django.db.models import Count, Sum

from apps.accounts.models import Merchant
from apps.orders.models import Product
from apps.refunds.models import Refund, SupportTicket


def refund_list_for_merchant(*, merchant: Merchant):
    return (
        Refund.objects.filter(merchant=merchant)
        .select_related("order", "customer", "destination_account", "support_ticket")
        .order_by("-id")
    )


def refund_reason_stats_for_product(*, product: Product) -> dict:
    """How often each reason is given for a product and how it was decided (merchant reports)."""
    rows = (
        Refund.objects.filter(order__product=product)
        .values("reason", "decision__outcome")
        .annotate(count=Count("id"), amount=Sum("amount"))
        .order_by("reason", "decision__outcome")
    )
    by_reason: dict[str, dict] = {}
    for row in rows:
        entry = by_reason.setdefault(row["reason"], {"reason": row["reason"], "count": 0, "amount": 0, "outcomes": {}})
        entry["count"] += row["count"]
        entry["amount"] += row["amount"] or 0
        entry["outcomes"][row["decision__outcome"] or "none"] = row["count"]
    tickets = (
        SupportTicket.objects.filter(refund__order__product=product)
        .values("category")
        .annotate(count=Count("id"))
        .order_by("category")
    )
    return {
        "product": product.sku,
        "currency": product.currency,
        "reasons": list(by_reason.values()),
        "support_categories": {row["category"]: row["count"] for row in tickets},
    }
