from django.contrib import admin

from apps.refunds.models import Refund, RefundEvent


class RefundEventInline(admin.TabularInline):
    model = RefundEvent
    extra = 0
    can_delete = False
    readonly_fields = ("code", "from_status", "to_status", "message_key", "responsible_party", "actor", "created_at")
    fields = readonly_fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Refund)
class RefundAdmin(admin.ModelAdmin):
    """Read-only: refunds move only through services (API, console, workers)."""

    list_display = ("id", "merchant", "order", "amount", "currency", "status", "channel", "failure_code", "created_at")
    list_filter = ("status", "merchant", "channel", "reason")
    search_fields = ("order__external_id", "customer__external_id", "channel_reference")
    inlines = [RefundEventInline]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Refund._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
