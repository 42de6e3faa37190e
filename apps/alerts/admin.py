"""Admin: alerts are read-only; ack, resolve and silence expiry are actions calling the services."""

from django.contrib import admin

from apps.alerts.models import Alert, AlertDelivery, AlertEvent, Silence
from apps.alerts.services import alert_ack, alert_resolve, silence_expire
from apps.common.admin import ReadOnlyAdmin, ReadOnlyInline, act_on_each


class EventInline(ReadOnlyInline):
    model = AlertEvent
    fields = ("at", "code", "from_status", "to_status", "actor", "detail")


class DeliveryInline(ReadOnlyInline):
    model = AlertDelivery
    fields = ("created_at", "channel", "target", "status", "escalation_level")


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "tier",
        "kind",
        "status",
        "merchant",
        "subject_type",
        "subject_id",
        "occurrence_count",
        "escalation_level",
        "last_seen_at",
    )
    list_filter = ("tier", "status", "kind", "is_group")
    search_fields = ("dedup_key", "group_key", "subject_id", "summary")
    readonly_fields = [f.name for f in Alert._meta.fields]
    inlines = [EventInline, DeliveryInline]
    actions = ("ack", "resolve")

    @admin.action(description="Acknowledge")
    def ack(self, request, queryset):
        act_on_each(
            self,
            request,
            queryset,
            lambda a: alert_ack(alert_id=a.pk, actor=f"admin:{request.user.username}", user=request.user),
            "acknowledged",
        )

    @admin.action(description="Resolve")
    def resolve(self, request, queryset):
        act_on_each(
            self,
            request,
            queryset,
            lambda a: alert_resolve(alert_id=a.pk, actor=f"admin:{request.user.username}"),
            "resolved",
        )


@admin.register(Silence)
class SilenceAdmin(admin.ModelAdmin):
    list_display = ("id", "merchant", "matchers", "starts_at", "ends_at", "actor", "comment")
    readonly_fields = ("actor", "created_by", "created_at")
    actions = ("expire",)

    def save_model(self, request, obj, form, change):
        if not change:
            obj.actor = f"admin:{request.user.username}"
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    @admin.action(description="Expire now")
    def expire(self, request, queryset):
        act_on_each(
            self,
            request,
            queryset,
            lambda s: silence_expire(silence_id=s.pk, actor=f"admin:{request.user.username}"),
            "expired",
        )


@admin.register(AlertDelivery)
class AlertDeliveryAdmin(ReadOnlyAdmin):
    list_display = ("id", "alert", "channel", "target", "status", "escalation_level", "created_at")
    list_filter = ("channel", "status")
    readonly_fields = [f.name for f in AlertDelivery._meta.fields]
