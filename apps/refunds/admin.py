from django.contrib import admin

from apps.common.admin import ReadOnlyAdmin, ReadOnlyInline, ServiceActionsAdmin
from apps.refunds.models import ReasonPhrase, Refund, RefundEvent, SupportTicket


class RefundEventInline(ReadOnlyInline):
    model = RefundEvent
    fields = ("code", "from_status", "to_status", "message_key", "responsible_party", "actor", "created_at")


@admin.register(Refund)
class RefundAdmin(ServiceActionsAdmin):
    """Read-only: refunds move only through services (API, console, workers)."""

    list_display = ("id", "merchant", "order", "amount", "currency", "status", "channel", "failure_code", "created_at")
    list_filter = ("status", "merchant", "channel", "reason")
    search_fields = ("order__external_id", "customer__external_id", "channel_reference")
    inlines = [RefundEventInline]


@admin.register(ReasonPhrase)
class ReasonPhraseAdmin(admin.ModelAdmin):
    """The phrases that route a refund's free text (e.g. to tech support); an edit reaches every
    process within seconds (apps.refunds.routing bumps the table's version after commit)."""

    list_display = ("phrase", "language", "route", "category", "is_active")
    list_filter = ("language", "route", "category", "is_active")
    search_fields = ("phrase", "category")
    list_editable = ("is_active",)


@admin.register(SupportTicket)
class SupportTicketAdmin(ReadOnlyAdmin):
    list_display = ("id", "merchant", "refund", "category", "status", "created_at")
    list_filter = ("status", "category", "merchant")
    search_fields = ("refund__order__external_id", "refund__customer__external_id")
