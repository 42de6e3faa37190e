"""Reads of commissions shared by the API, the statement page and the admin."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

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
