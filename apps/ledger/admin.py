from django.contrib import admin

from apps.common.admin import ReadOnlyAdmin, ReadOnlyInline
from apps.ledger.models import (
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    Reconciliation,
    ReconciliationItem,
    StatementLine,
)


class LedgerEntryInline(ReadOnlyInline):
    model = LedgerEntry
    readonly_fields = ("account", "amount", "currency")


@admin.register(LedgerAccount)
class LedgerAccountAdmin(ReadOnlyAdmin):
    list_display = ("owner", "kind", "currency", "balance")
    list_filter = ("kind", "currency")
    search_fields = ("owner",)


@admin.register(LedgerTransaction)
class LedgerTransactionAdmin(ReadOnlyAdmin):
    list_display = ("reference", "kind", "created_at")
    list_filter = ("kind",)
    search_fields = ("reference",)
    inlines = [LedgerEntryInline]


class ReconciliationItemInline(ReadOnlyInline):
    model = ReconciliationItem
    verbose_name_plural = "Mismatches"
    fields = (
        "kind",
        "severity",
        "reference",
        "direction",
        "currency",
        "statement_amount",
        "platform_amount",
        "statement_date",
        "platform_date",
        "detail",
    )

    def get_queryset(self, request):
        # The mismatches only: a day's matched items can run to thousands (the API lists them all).
        return super().get_queryset(request).exclude(kind=ReconciliationItem.Kind.MATCHED)


@admin.register(Reconciliation)
class ReconciliationAdmin(ReadOnlyAdmin):
    """Runs are written by `reconciliation_run` only (daily task, `manage.py reconcile`, the API)."""

    list_display = (
        "date",
        "source",
        "version",
        "is_current",
        "status",
        "severity",
        "matched_count",
        "missing_on_platform_count",
        "missing_on_channel_count",
        "amount_mismatch_count",
        "duplicate_count",
        "finished_at",
    )
    list_filter = ("status", "severity", "source", "is_current")
    date_hierarchy = "date"
    inlines = [ReconciliationItemInline]


@admin.register(StatementLine)
class StatementLineAdmin(ReadOnlyAdmin):
    list_display = ("source", "line_id", "value_date", "reference", "direction", "amount", "currency")
    list_filter = ("source", "direction", "currency")
    search_fields = ("reference", "line_id")
    date_hierarchy = "value_date"
