from django.contrib import admin

from apps.common.admin import ReadOnlyAdmin
from apps.common.crypto import mask_account_number
from apps.gateways.models import (
    Channel,
    ChannelCall,
    ChannelHealth,
    ChannelHealthDay,
    InboundWebhook,
    SandboxEvent,
    SandboxOutage,
    SandboxSubmission,
    SandboxTransfer,
)

HEALTH_FIELDS = (
    "state",
    "reason",
    "score",
    "failure_rate",
    "calls",
    "failures",
    "is_failure_rate_rising",
    "last_call_at",
    "last_ok_at",
    "last_outage_at",
    "state_changed_at",
    "computed_at",
)


class ChannelHealthInline(admin.StackedInline):
    """Worked out by `channel_health_refresh` and outage errors; shown, never edited."""

    model = ChannelHealth
    fields = HEALTH_FIELDS
    readonly_fields = HEALTH_FIELDS
    can_delete = False
    extra = 0
    max_num = 0

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    list_display = (
        "code",
        "name",
        "adapter",
        "priority",
        "is_enabled",
        "health_state",
        "health_score",
        "timeout_seconds",
        "created_at",
    )
    list_filter = ("is_enabled", "adapter", "health__state")
    list_editable = ("priority", "is_enabled")
    list_select_related = ("health",)
    search_fields = ("code", "name")
    readonly_fields = ("created_at",)
    inlines = (ChannelHealthInline,)

    @admin.display(description="health", ordering="health__state")
    def health_state(self, obj):
        health = getattr(obj, "health", None)
        return health.state if health else "not measured"

    @admin.display(description="score", ordering="health__score")
    def health_score(self, obj):
        health = getattr(obj, "health", None)
        return health.score if health else None


@admin.register(ChannelHealth)
class ChannelHealthAdmin(ReadOnlyAdmin):
    list_display = ("channel", *HEALTH_FIELDS)
    list_filter = ("state", "is_failure_rate_rising")


@admin.register(ChannelHealthDay)
class ChannelHealthDayAdmin(ReadOnlyAdmin):
    list_display = ("date", "channel", "calls", "failures", "failure_rate", "computed_at")
    list_filter = ("channel",)
    date_hierarchy = "date"


@admin.register(ChannelCall)
class ChannelCallAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "channel",
        "action",
        "request_id",
        "outcome",
        "raw_code",
        "reason",
        "http_status",
        "latency_ms",
    )
    list_filter = ("channel", "action", "outcome", "reason")
    search_fields = ("reference", "request_id")
    date_hierarchy = "created_at"


@admin.register(InboundWebhook)
class InboundWebhookAdmin(ReadOnlyAdmin):
    list_display = ("received_at", "channel", "event_id", "request_id", "status", "outcome")
    list_filter = ("channel", "status", "outcome")
    search_fields = ("event_id", "request_id")
    date_hierarchy = "received_at"


@admin.register(SandboxTransfer)
class SandboxTransferAdmin(ReadOnlyAdmin):
    list_display = (
        "transfer_id",
        "request_id",
        "channel",
        "account",
        "amount",
        "currency",
        "current_status",
        "executions",
        "submitted_at",
    )
    list_filter = ("channel", "account_last4")
    search_fields = ("transfer_id", "request_id")
    exclude = ("account_fingerprint",)

    @admin.display(description="account")
    def account(self, obj):
        return mask_account_number(obj.account_last4)

    @admin.display(description="status (bank clock)")
    def current_status(self, obj):
        return obj.status


@admin.register(SandboxEvent)
class SandboxEventAdmin(ReadOnlyAdmin):
    list_display = ("event_id", "copy", "transfer", "status", "code", "due_at", "attempts", "delivered_at")
    list_filter = ("status", "delivered_at")
    search_fields = ("event_id", "transfer__request_id")


@admin.register(SandboxSubmission)
class SandboxSubmissionAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "request_id", "channel", "account_last4", "outcome", "code")
    list_filter = ("outcome", "channel")
    search_fields = ("request_id",)


@admin.register(SandboxOutage)
class SandboxOutageAdmin(admin.ModelAdmin):
    list_display = ("channel", "is_enabled", "changed_at")
    list_editable = ("is_enabled",)
