"""Reads of payouts, withdrawals and incidents shared by the API, the admin and the console."""

from __future__ import annotations

from django.db.models import Prefetch, Q

from apps.accounts.models import Merchant
from apps.payouts.models import Approval, Disbursement, Incident, Kind


def disbursement_list_for_merchant(*, merchant: Merchant, kind: str):
    return (
        Disbursement.objects.filter(merchant=merchant, kind=kind)
        .select_related("destination_account", "customer", "channel")
        .order_by("-id")
    )


def disbursement_get_for_merchant(*, merchant: Merchant, kind: str, pk: int) -> Disbursement | None:
    """One payout or withdrawal with its timeline, pre-check results and approvals; None if not the merchant's."""
    return (
        disbursement_list_for_merchant(merchant=merchant, kind=kind)
        .prefetch_related(
            "events",
            "prechecks",
            Prefetch("approvals", queryset=Approval.objects.select_related("approver")),
        )
        .filter(pk=pk)
        .first()
    )


def payout_list_for_merchant(*, merchant: Merchant):
    return disbursement_list_for_merchant(merchant=merchant, kind=Kind.PAYOUT)


def withdrawal_list_for_merchant(*, merchant: Merchant):
    return disbursement_list_for_merchant(merchant=merchant, kind=Kind.WITHDRAWAL)


def incident_list_for_merchant(
    *, merchant: Merchant, q: str | None = None, status: str | None = None, category: str | None = None
):
    """The merchant's incidents, newest first; `q` searches summary, root cause, category and step notes
    (the case library), case-insensitively."""
    rows = Incident.objects.filter(merchant=merchant).select_related("disbursement")
    if status:
        rows = rows.filter(status=status)
    if category:
        rows = rows.filter(category=category)
    if q:
        matching = Incident.objects.filter(
            Q(summary__icontains=q)
            | Q(root_cause__icontains=q)
            | Q(category__icontains=q)
            | Q(steps__notes__icontains=q)
        ).values("pk")
        rows = rows.filter(pk__in=matching)
    return rows.order_by("-created_at", "-id")
