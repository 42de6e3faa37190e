"""Reads of alerts and silences shared by the API, the admin and the console."""

from __future__ import annotations

from datetime import datetime

from apps.accounts.models import Merchant
from apps.alerts.models import Alert, Silence


def alert_list_for_owner(
    *,
    merchant: Merchant | None,
    tier: str | None = None,
    status: str | None = None,
    kind: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
):
    """A merchant's alerts, or every alert for a platform operator (`merchant=None`)."""
    rows = Alert.objects.select_related("assignee").order_by("-last_seen_at", "-id")
    if merchant is not None:
        rows = rows.filter(merchant=merchant)
    if tier:
        rows = rows.filter(tier=tier)
    if status:
        rows = rows.filter(status=status)
    if kind:
        rows = rows.filter(kind=kind)
    if since:
        rows = rows.filter(last_seen_at__gte=since)
    if until:
        rows = rows.filter(first_seen_at__lt=until)
    return rows


def alert_get_for_owner(*, merchant: Merchant | None, pk: int) -> Alert | None:
    rows = Alert.objects.select_related("assignee").prefetch_related("events")
    if merchant is not None:
        rows = rows.filter(merchant=merchant)
    return rows.filter(pk=pk).first()


def silence_list_for_owner(*, merchant: Merchant | None, active: bool | None = None, now: datetime | None = None):
    rows = Silence.objects.order_by("-created_at", "-id")
    if merchant is not None:
        rows = rows.filter(merchant=merchant)
    if active is not None and now is not None:
        rows = (
            rows.filter(starts_at__lte=now, ends_at__gt=now)
            if active
            else rows.exclude(starts_at__lte=now, ends_at__gt=now)
        )
    return rows
