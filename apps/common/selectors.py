"""Reads of the platform's own tables that more than one caller needs."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.common.models import AuditEntry


def audit_entry_list(*, merchant_id: int | None, action: str = "", actor: str = "", target: str = "") -> QuerySet:
    """Audit entries newest first: one merchant's (`merchant_id`), or every merchant's and the
    platform's own when `merchant_id` is None (platform operators only: the caller decides that).
    `target` is a type ("refund") or a type and id ("refund:42")."""
    rows = AuditEntry.objects.all()
    if merchant_id is not None:
        rows = rows.filter(merchant_id=merchant_id)
    if action:
        rows = rows.filter(action=action)
    if actor:
        rows = rows.filter(actor__icontains=actor)
    if target:
        target_type, _, target_id = target.partition(":")
        rows = rows.filter(target_type=target_type.strip())
        if target_id.strip():
            rows = rows.filter(target_id=target_id.strip())
    return rows.order_by("-created_at", "-id")


def audit_action_list(*, merchant_id: int | None) -> list[str]:
    """The action codes present in the entries `audit_entry_list` would show (for a filter menu)."""
    rows = AuditEntry.objects.all() if merchant_id is None else AuditEntry.objects.filter(merchant_id=merchant_id)
    return sorted(rows.values_list("action", flat=True).distinct())
