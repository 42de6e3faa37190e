"""Reads of commissions shared by the API, the statement page and the admin."""

from __future__ import annotations

from datetime import date

from django.db.models import Count, Prefetch, QuerySet, Sum
from django.db.models.functions import TruncDate

from apps.accounts.models import Customer, Merchant
from apps.commissions.models import Commission, CommissionEvent, CommissionPlan


def _with_events(rows: QuerySet[Commission]) -> QuerySet[Commission]:
    return rows.select_related("order", "beneficiary").prefetch_related(
        Prefetch("events", queryset=CommissionEvent.objects.order_by("created_at", "id"))
    )


def commission_list_for_merchant(
    *,
    merchant: Merchant,
    beneficiary: str | None = None,
    order: str | None = None,
    status: str | None = None,
    level: int | None = None,
) -> QuerySet[Commission]:
    """A merchant's commissions, newest first, filtered by the merchant's own ids."""
    rows = Commission.objects.filter(merchant=merchant)
    if beneficiary is not None:
        rows = rows.filter(beneficiary__external_id=beneficiary)
    if order is not None:
        rows = rows.filter(order__external_id=order)
    if status is not None:
        rows = rows.filter(status=status)
    if level is not None:
        rows = rows.filter(level=level)
    return _with_events(rows).order_by("-created_at", "-id")


def commission_get_for_merchant(*, merchant: Merchant, pk: int) -> Commission | None:
    return _with_events(Commission.objects.filter(merchant=merchant, pk=pk)).first()


def commission_list_for_beneficiary(*, beneficiary: Customer) -> QuerySet[Commission]:
    return _with_events(
        Commission.objects.filter(merchant_id=beneficiary.merchant_id, beneficiary=beneficiary)
    ).order_by("-created_at", "-id")


def commission_plan_list_for_merchant(*, merchant: Merchant) -> QuerySet[CommissionPlan]:
    return CommissionPlan.objects.filter(merchant=merchant).select_related("product").order_by("id")


def commission_clawbacks_by_day_for_merchant(*, merchant: Merchant, since: date) -> list[dict]:
    """Per day (local date) and currency since `since`: minor units clawed back from this merchant's
    commissions and how many commissions lost money. Events that moved nothing (amount 0: the
    commission was already clawed back to the refunded share) are not clawbacks."""
    rows = (
        CommissionEvent.objects.filter(
            commission__merchant=merchant, code="clawed_back", amount__gt=0, created_at__date__gte=since
        )
        .annotate(day=TruncDate("created_at"))
        .values("day", "commission__currency")
        .annotate(amount=Sum("amount"), commissions=Count("commission", distinct=True))
        .order_by("day", "commission__currency")
    )
    return [
        {
            "day": r["day"].isoformat(),
            "currency": r["commission__currency"],
            "amount": r["amount"],
            "commissions": r["commissions"],
        }
        for r in rows
    ]
