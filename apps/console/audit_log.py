"""The audit log page: who did what, before/after, when and from where, newest first."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.shortcuts import render
from django.views.decorators.http import require_GET

from apps.common.selectors import audit_action_list, audit_entry_list
from apps.console.access import permissions_for, staff_or_operator_view

PAGE_SIZE = 50


def _changes(entry) -> list[tuple[str, object, object]]:
    """(field, before, after) for each field either side names; None where a side has no value."""
    fields = list(dict.fromkeys([*entry.before, *entry.after]))
    return [(name, entry.before.get(name), entry.after.get(name)) for name in fields]


@require_GET
@staff_or_operator_view
def audit_list(request):
    """The merchant's audit entries (a platform operator's: everyone's), filtered by action, actor
    (part of the name) and object ("refund" or "refund:42")."""
    merchant_id = request.merchant.pk if request.merchant else None
    filters = {name: request.GET.get(name, "").strip()[:100] for name in ("action", "actor", "target")}
    rows = audit_entry_list(merchant_id=merchant_id, **filters)
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    for entry in page:
        entry.changes = _changes(entry)
    context = {
        "merchant": request.merchant,
        "can": permissions_for(request.user),
        "page": page,
        "filters": filters,
        "actions": audit_action_list(merchant_id=merchant_id),
        "all_merchants": merchant_id is None,
    }
    return render(request, "console/audit_list.html", context)
