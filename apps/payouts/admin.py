"""Admin: everything read-only; actions call the services (so the state machine, maker-checker,
ledger and timeline rules hold for operators too)."""

from django.contrib import admin

from apps.common.admin import ReadOnlyInline, ServiceActionsAdmin, act_on_each
from apps.payouts.incidents import incident_escalate, incident_open, payout_recall_request
from apps.payouts.models import Approval, DisbursementEvent, Incident, IncidentStep, Payout, PrecheckResult, Withdrawal
from apps.payouts.services import payout_approve, payout_cancel, payout_release


class EventInline(ReadOnlyInline):
    model = DisbursementEvent
    fields = ("created_at", "code", "from_status", "to_status", "responsible_party", "actor", "detail")


class PrecheckInline(ReadOnlyInline):
    model = PrecheckResult
    fields = ("name", "result", "responsible_party", "detail")


class ApprovalInline(ReadOnlyInline):
    model = Approval
    fields = ("approver", "note", "created_at")


class _DisbursementAdmin(ServiceActionsAdmin):
    """Read-only: payouts and withdrawals move only through services (API, actions, workers)."""

    list_display = ("id", "merchant", "amount", "currency", "status", "channel", "failure_code", "created_at")
    list_filter = ("status", "merchant", "channel", "currency")
    search_fields = ("=id", "reference", "customer__external_id", "channel_reference", "destination_account__last4")
    inlines = [PrecheckInline, ApprovalInline, EventInline]
    actions = ["approve", "cancel", "release", "recall", "open_incident"]

    @admin.action(description="Approve (as me; maker-checker applies; a second approval needing a code: console)")
    def approve(self, request, queryset):
        act_on_each(
            self, request, queryset, lambda d: payout_approve(disbursement_id=d.pk, approver=request.user), "approved"
        )

    @admin.action(description="Cancel")
    def cancel(self, request, queryset):
        actor = request.user.get_username()
        act_on_each(
            self,
            request,
            queryset,
            lambda d: payout_cancel(disbursement_id=d.pk, actor=actor, party="platform"),
            "cancelled",
        )

    @admin.action(description="Release from hold (to approval)")
    def release(self, request, queryset):
        actor = request.user.get_username()
        act_on_each(self, request, queryset, lambda d: payout_release(disbursement_id=d.pk, actor=actor), "released")

    @admin.action(description="Request a recall from the channel")
    def recall(self, request, queryset):
        actor = request.user.get_username()
        act_on_each(
            self,
            request,
            queryset,
            lambda d: payout_recall_request(disbursement_id=d.pk, actor=actor),
            "recalls requested",
        )

    @admin.action(description="Open an incident")
    def open_incident(self, request, queryset):
        actor = request.user.get_username()
        act_on_each(
            self,
            request,
            queryset,
            lambda d: incident_open(disbursement_id=d.pk, summary=f"opened from the admin by {actor}", actor=actor),
            "incidents opened",
        )


@admin.register(Payout)
class PayoutAdmin(_DisbursementAdmin):
    list_display = (
        "id",
        "merchant",
        "reference",
        "amount",
        "currency",
        "status",
        "channel",
        "failure_code",
        "created_at",
    )


@admin.register(Withdrawal)
class WithdrawalAdmin(_DisbursementAdmin):
    list_display = (
        "id",
        "merchant",
        "customer",
        "amount",
        "currency",
        "status",
        "channel",
        "failure_code",
        "created_at",
    )


class IncidentStepInline(ReadOnlyInline):
    model = IncidentStep
    fields = ("created_at", "action", "actor", "amount", "notes", "detail")


@admin.register(Incident)
class IncidentAdmin(ServiceActionsAdmin):
    """The case library: search resolved incidents by what happened and why."""

    list_display = (
        "id",
        "merchant",
        "disbursement",
        "status",
        "category",
        "amount_at_risk",
        "amount_recovered",
        "created_at",
    )
    list_filter = ("status", "category", "merchant")
    search_fields = ("summary", "root_cause", "category", "steps__notes", "=disbursement__id")
    inlines = [IncidentStepInline]
    actions = ["escalate"]

    @admin.action(description="Escalate to legal")
    def escalate(self, request, queryset):
        actor = request.user.get_username()
        act_on_each(self, request, queryset, lambda i: incident_escalate(incident_id=i.pk, actor=actor), "escalated")
