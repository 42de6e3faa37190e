from django.contrib import admin

from apps.commissions.models import Commission, CommissionDebt, CommissionEvent, CommissionPlan
from apps.common.admin import ReadOnlyAdmin, ReadOnlyInline


@admin.register(CommissionPlan)
class CommissionPlanAdmin(admin.ModelAdmin):
    """Editable: plans are configuration (changes apply to orders captured from then on)."""

    list_display = ("id", "merchant", "product", "mode", "levels", "depth", "currency", "is_active", "updated_at")
    list_filter = ("mode", "is_active", "merchant")
    raw_id_fields = ("merchant", "product")


class _ReadOnly(ReadOnlyAdmin):
    """Read-only: commissions move only through services (receivers, beat tasks)."""

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]


class CommissionEventInline(ReadOnlyInline):
    model = CommissionEvent
    fields = (
        "code",
        "from_status",
        "to_status",
        "amount",
        "reason",
        "refund_id",
        "cause",
        "actor",
        "created_at",
    )


@admin.register(Commission)
class CommissionAdmin(_ReadOnly):
    list_display = (
        "id",
        "merchant",
        "order",
        "beneficiary",
        "level",
        "amount",
        "clawed_back_amount",
        "status",
        "created_at",
    )
    list_filter = ("status", "level", "merchant")
    search_fields = ("order__external_id", "beneficiary__external_id")
    inlines = [CommissionEventInline]


@admin.register(CommissionEvent)
class CommissionEventAdmin(_ReadOnly):
    list_display = ("id", "commission", "code", "from_status", "to_status", "amount", "refund_id", "created_at")
    list_filter = ("code",)


@admin.register(CommissionDebt)
class CommissionDebtAdmin(_ReadOnly):
    list_display = (
        "id",
        "merchant",
        "beneficiary",
        "amount",
        "recovered_amount",
        "currency",
        "created_at",
        "settled_at",
    )
