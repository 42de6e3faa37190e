"""Alerts API (DESIGN.md, "Tiered alerts — contract").

    GET  /api/v1/alerts                  filter severity (P0/P1/P2), status, kind, since, until
    GET  /api/v1/alerts/{id}             the alert and its events
    POST /api/v1/alerts/{id}/ack         {"note"?}
    POST /api/v1/alerts/{id}/resolve     {"note"?}
    GET  /api/v1/silences                filter active=true|false
    POST /api/v1/silences                {"matchers": {...}, "ends_at", "starts_at"?, "comment"?}
    POST /api/v1/silences/{id}/expire

A merchant (API key or staff) sees and acts on its own alerts only; platform-wide alerts (no
merchant, e.g. a channel down) are visible to platform operators, who see everything.
"""

from __future__ import annotations

import datetime as dt

from django.http import Http404
from django.utils import timezone
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.settings import api_settings

from apps.accounts.permissions import IsMerchantMember, IsPlatformOperator
from apps.alerts.models import Alert, AlertEvent, Silence, Tier
from apps.alerts.selectors import alert_get_for_owner, alert_list_for_owner, silence_list_for_owner
from apps.alerts.services import alert_ack, alert_resolve, silence_create, silence_expire
from apps.common import filters
from apps.common.api import MerchantAPIView, ObjectActionView
from apps.common.errors import rule_violation
from apps.common.fields import MultiLineCharField, SingleLineCharField, StrictSerializerMixin, text_pattern

SUBJECT_SCHEMA = {
    "type": "object",
    "properties": {"type": {"type": "string"}, "id": {"type": "string"}, "label": {"type": "string"}},
}


def _actor(request) -> str:
    return f"api:{request.user.get_username()}"


class AlertSerializer(serializers.ModelSerializer):
    severity = serializers.ChoiceField(source="tier", choices=Tier.choices, read_only=True)
    subject = serializers.SerializerMethodField()
    group = serializers.IntegerField(source="parent_id", read_only=True, allow_null=True)
    assignee = serializers.CharField(source="assignee.username", read_only=True, allow_null=True, default=None)

    class Meta:
        model = Alert
        fields = (
            "id",
            "severity",
            "kind",
            "status",
            "subject",
            "merchant",
            "channel",
            "summary",
            "detail",
            "dedup_key",
            "group_key",
            "group",
            "is_group",
            "suppressed_reason",
            "occurrence_count",
            "escalation_level",
            "assignee",
            "first_seen_at",
            "last_seen_at",
            "acked_at",
            "resolved_at",
        )
        read_only_fields = fields

    @extend_schema_field(SUBJECT_SCHEMA)
    def get_subject(self, alert: Alert) -> dict:
        return {"type": alert.subject_type, "id": alert.subject_id, "label": alert.subject_label}


class AlertEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AlertEvent
        fields = ("code", "actor", "from_status", "to_status", "detail", "at")
        read_only_fields = fields


class AlertDetailSerializer(AlertSerializer):
    events = AlertEventSerializer(many=True, read_only=True)

    class Meta(AlertSerializer.Meta):
        fields = (*AlertSerializer.Meta.fields, "events")
        read_only_fields = fields


class AlertNoteSerializer(StrictSerializerMixin, serializers.Serializer):
    note = MultiLineCharField(required=False, allow_blank=True, max_length=2000)


class SilenceSerializer(serializers.ModelSerializer):
    is_active = serializers.SerializerMethodField()

    class Meta:
        model = Silence
        fields = ("id", "merchant", "matchers", "starts_at", "ends_at", "actor", "comment", "created_at", "is_active")
        read_only_fields = fields

    def get_is_active(self, silence: Silence) -> bool:
        return silence.starts_at <= timezone.now() < silence.ends_at


MATCHER_KEYS = ("channel", "kind", "subject_type", "tier")


@extend_schema_field(
    {
        "type": "object",
        "properties": {
            key: {"type": "string", "pattern": text_pattern(allow_blank=False, max_length=64)} for key in MATCHER_KEYS
        },
        "additionalProperties": False,
        "minProperties": 1,
    }
)
class _MatchersField(serializers.DictField):
    """Alert fields a silence matches on (`validate_matchers` holds the keys to MATCHER_KEYS)."""


class SilenceInSerializer(StrictSerializerMixin, serializers.Serializer):
    matchers = _MatchersField(
        child=SingleLineCharField(max_length=64),
        allow_empty=False,
        help_text='Fields every silenced alert equals, e.g. {"kind": "channel_degraded", "channel": "sandbox"}; '
        "keys: kind, tier, channel, subject_type.",
    )
    starts_at = serializers.DateTimeField(required=False)
    ends_at = serializers.DateTimeField()
    comment = SingleLineCharField(required=False, allow_blank=True, max_length=500)

    def validate_matchers(self, value: dict) -> dict:
        allowed = set(MATCHER_KEYS)
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise ValidationError(
                format_lazy(
                    _("Unknown matcher keys: {value}; use {other}."),
                    value=", ".join(unknown),
                    other=", ".join(sorted(allowed)),
                )
            )
        if len(value) > 8:
            raise ValidationError(_("Too many matchers."))
        return value

    def validate(self, attrs):
        start = attrs.get("starts_at") or timezone.now()
        if attrs["ends_at"] <= start:
            raise rule_violation({"ends_at": [_("Must be after starts_at (or now).")]})
        if attrs["ends_at"] - start > dt.timedelta(days=90):
            raise rule_violation({"ends_at": [_("A silence lasts at most 90 days.")]})
        return attrs


class _AlertsView(MerchantAPIView):
    """Merchants see their own; platform operators (no merchant) see all, including platform-wide."""

    permission_classes = [IsMerchantMember | IsPlatformOperator]
    pagination_class = api_settings.DEFAULT_PAGINATION_CLASS

    def get_alert(self, pk: int) -> Alert:
        alert = alert_get_for_owner(merchant=self.merchant, pk=pk)
        if alert is None:
            raise Http404
        return alert


class AlertFilters(filters.QueryFilters):
    severity = filters.choice(Tier.values, help_text="Tier: P0, P1 or P2.")
    status = filters.choice(Alert.Status.values)
    kind = filters.text(max_length=64)
    since = filters.datetime(help_text="Seen at or after.")
    until = filters.datetime(help_text="First seen before.")


class AlertListView(_AlertsView):
    @extend_schema(responses=AlertSerializer(many=True), parameters=[AlertFilters])
    def get(self, request):
        wanted = AlertFilters.parse(request)
        rows = alert_list_for_owner(
            merchant=self.merchant,
            tier=wanted.get("severity"),
            status=wanted.get("status"),
            kind=wanted.get("kind"),
            since=wanted.get("since"),
            until=wanted.get("until"),
        )
        return self.paginated(rows, AlertSerializer)


class AlertDetailView(_AlertsView):
    @extend_schema(responses=AlertDetailSerializer)
    def get(self, request, pk: int):
        return Response(AlertDetailSerializer(self.get_alert(pk)).data)


# Ack and resolve: an optional note, the alert with its events back.
class _AlertActionView(_AlertsView, ObjectActionView):
    request_serializer = AlertNoteSerializer
    response_serializer = AlertDetailSerializer

    def get_object(self, pk: int) -> Alert:
        return self.get_alert(pk)


class AlertAckView(_AlertActionView):
    action_name = "ack"

    def act(self, alert: Alert) -> None:
        user = self.request.user if getattr(self.request.user, "_meta", None) is not None else None
        alert_ack(alert_id=alert.pk, actor=_actor(self.request), user=user, merchant=self.merchant, **self.fields())


class AlertResolveView(_AlertActionView):
    action_name = "resolve"

    def act(self, alert: Alert) -> None:
        alert_resolve(alert_id=alert.pk, actor=_actor(self.request), merchant=self.merchant, **self.fields())


class SilenceFilters(filters.QueryFilters):
    active = filters.boolean(help_text="true: in force now; false: expired or not started.")


class SilenceListCreateView(_AlertsView):
    @extend_schema(responses=SilenceSerializer(many=True), parameters=[SilenceFilters])
    def get(self, request):
        active = SilenceFilters.parse(request).get("active")
        rows = silence_list_for_owner(merchant=self.merchant, active=active, now=timezone.now())
        return self.paginated(rows, SilenceSerializer)

    @extend_schema(request=SilenceInSerializer, responses={201: SilenceSerializer})
    def post(self, request):
        data = SilenceInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = request.user if getattr(request.user, "_meta", None) is not None else None
        silence = silence_create(
            matchers=data.validated_data["matchers"],
            starts_at=data.validated_data.get("starts_at"),
            ends_at=data.validated_data["ends_at"],
            merchant=self.merchant,
            created_by=user,
            actor=_actor(request),
            comment=data.validated_data.get("comment", ""),
        )
        return Response(SilenceSerializer(silence).data, status=status.HTTP_201_CREATED)


class SilenceExpireView(_AlertsView):
    action_name = "expire"

    @extend_schema(request=None, responses=SilenceSerializer)
    def post(self, request, pk: int):
        silence = silence_expire(silence_id=pk, actor=_actor(request), merchant=self.merchant)
        return Response(SilenceSerializer(silence).data)
