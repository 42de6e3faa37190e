"""Notifications API (merchant-scoped; DESIGN.md "API contract").

    GET  /api/v1/notifications                                  filter recipient, order, status, channel, subject_type
    GET  /api/v1/notifications/{id}
    GET  /api/v1/customers/{external_id}/inbox                  the customer's inbox, with unread_count
    POST /api/v1/customers/{external_id}/inbox/read             {"ids": [..]} or {"all": true}
    GET  /api/v1/customers/{external_id}/notification-preferences
    PUT  /api/v1/customers/{external_id}/notification-preferences

A merchant sees its own customers' and staff's messages only. Addresses are masked: the API shows
which number or mailbox a message went to, never the whole of it. The rendering context is never
returned (it exists to render fallbacks and digests).
"""

from __future__ import annotations

from functools import cache
from zoneinfo import available_timezones

import phonenumbers
from django.conf import settings
from django.http import Http404
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.settings import api_settings

from apps.accounts.models import Customer
from apps.common import filters
from apps.common.api import MerchantAPIView
from apps.common.errors import rule_violation
from apps.common.fields import SingleLineCharField, StrictSerializerMixin
from apps.notifications import selectors
from apps.notifications.models import Channel, Notification, Preference
from apps.notifications.services import inbox_mark_read, preference_set

# The inbox is the record a customer can always go back to: it cannot be turned off.
SWITCHABLE_CHANNELS = (Channel.SMS, Channel.VOICE, Channel.PUSH, Channel.EMAIL)
MAX_IDS = 500
MAX_ID = 2**63 - 1


def mask_address(address: str) -> str:
    """A phone keeps its country code and last four digits (`+86*******0000`); an email its first
    letter and domain (`a***@example.com`)."""
    if not address:
        return ""
    if "@" in address:
        local, _, domain = address.rpartition("@")
        return f"{local[:1]}***@{domain}"
    digits = "".join(ch for ch in address if ch.isdigit())
    if len(digits) <= 4:
        return "*" * len(digits)
    code = ""
    if address.startswith("+"):
        try:
            code = str(phonenumbers.parse(address, None).country_code)
        except phonenumbers.NumberParseException:
            code = ""
        if not digits.startswith(code):
            code = ""
    hidden = len(digits) - len(code) - 4
    return f"{'+' + code if code else ''}{'*' * max(hidden, 0)}{digits[-4:]}"


RECIPIENT_SCHEMA = {
    "type": "object",
    "properties": {
        "type": {"type": "string", "enum": list(Notification.RecipientType.values)},
        "customer": {"type": "string", "nullable": True, "description": "The customer's external_id."},
        "staff": {"type": "string", "nullable": True, "description": "The staff member's username."},
    },
}
SUBJECT_SCHEMA = {
    "type": "object",
    "properties": {"type": {"type": "string"}, "id": {"type": "integer", "nullable": True}},
}


class NotificationSerializer(serializers.ModelSerializer):
    recipient = serializers.SerializerMethodField()
    address = serializers.SerializerMethodField()
    subject = serializers.SerializerMethodField()

    class Meta:
        model = Notification
        fields = (
            "id",
            "recipient",
            "address",
            "channel",
            "priority",
            "template_key",
            "template_version",
            "locale",
            "title",
            "body",
            "link",
            "reference",
            "subject",
            "status",
            "provider",
            "provider_id",
            "attempts",
            "last_error",
            "fallback_of",
            "read_at",
            "created_at",
            "sent_at",
            "delivered_at",
            "failed_at",
        )
        read_only_fields = fields

    @extend_schema_field(RECIPIENT_SCHEMA)
    def get_recipient(self, n: Notification) -> dict:
        if n.customer_id:
            return {"type": n.recipient_type, "customer": n.customer.external_id, "staff": None}
        return {"type": n.recipient_type, "customer": None, "staff": n.user.get_username() if n.user_id else None}

    @extend_schema_field({"type": "string", "example": "+86*******0000"})
    def get_address(self, n: Notification) -> str:
        return mask_address(n.address)

    @extend_schema_field(SUBJECT_SCHEMA)
    def get_subject(self, n: Notification) -> dict:
        return {"type": n.subject_type, "id": n.subject_id}


class InboxItemSerializer(serializers.ModelSerializer):
    """What a customer sees of one inbox message."""

    class Meta:
        model = Notification
        fields = ("id", "priority", "template_key", "title", "body", "link", "reference", "read_at", "created_at")
        read_only_fields = fields


class InboxPageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    unread_count = serializers.IntegerField()
    results = InboxItemSerializer(many=True)


class MarkReadSerializer(StrictSerializerMixin, serializers.Serializer):
    """Exactly one of `ids` (messages to mark) or `all: true` (every unread message)."""

    ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_ID),
        allow_empty=False,
        max_length=MAX_IDS,
        required=False,
    )
    all = serializers.BooleanField(required=False)

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise ValidationError({"non_field_errors": [_('Send {"ids": [..]} or {"all": true}.')]})
        if "all" in data and not isinstance(data["all"], bool):
            raise ValidationError({"all": [_("Must be true.")]})
        return super().to_internal_value(data)

    def validate(self, attrs):
        has_ids, has_all = "ids" in attrs, "all" in attrs
        if has_ids == has_all:
            raise rule_violation(_('Send either {"ids": [..]} or {"all": true}, not both and not neither.'))
        if has_all and attrs["all"] is not True:
            raise rule_violation({"all": [_("Must be true.")]})
        return attrs

    def notification_ids(self) -> list[int] | None:
        """The ids to mark, or None for all."""
        ids = self.validated_data.get("ids")
        return sorted(set(ids)) if ids is not None else None


class MarkedSerializer(serializers.Serializer):
    marked = serializers.IntegerField()


@cache
def _time_zones() -> frozenset[str]:
    return frozenset(available_timezones())


@extend_schema_field({"type": "string", "enum": sorted(_time_zones()), "example": "Asia/Shanghai"})
class _TimeZoneField(SingleLineCharField):
    """An IANA time zone name (checked by `validate_time_zone`)."""


class PreferenceSerializer(StrictSerializerMixin, serializers.Serializer):
    """A customer's notification preferences. PUT replaces them whole: an omitted field takes its
    default (no channel off, no quiet hours, the platform's time zone)."""

    disabled_channels = serializers.ListField(
        child=serializers.ChoiceField(choices=list(SWITCHABLE_CHANNELS)),
        max_length=len(SWITCHABLE_CHANNELS),
        required=False,
    )
    quiet_start = serializers.TimeField(
        format="%H:%M", input_formats=["%H:%M"], allow_null=True, required=False, help_text='Local time, "22:00".'
    )
    quiet_end = serializers.TimeField(
        format="%H:%M", input_formats=["%H:%M"], allow_null=True, required=False, help_text='Local time, "08:00".'
    )
    time_zone = _TimeZoneField(max_length=64, required=False, help_text='An IANA name, e.g. "Asia/Shanghai".')

    def validate_disabled_channels(self, value: list[str]) -> list[str]:
        if Channel.INBOX in value:
            raise rule_violation(_("The inbox cannot be turned off."))
        unknown = sorted(set(value) - set(SWITCHABLE_CHANNELS))
        if unknown:
            raise rule_violation(
                format_lazy(
                    _("Unknown channels: {value}; use {other}."),
                    value=", ".join(unknown),
                    other=", ".join(SWITCHABLE_CHANNELS),
                )
            )
        return sorted(set(value))

    def validate_time_zone(self, value: str) -> str:
        if value not in _time_zones():
            raise ValidationError(_("Must be an IANA time zone name, e.g. Asia/Shanghai."))
        return value

    def validate(self, attrs):
        if (attrs.get("quiet_start") is None) != (attrs.get("quiet_end") is None):
            raise rule_violation({"quiet_end": [_("Give quiet_start and quiet_end together, or neither.")]})
        if attrs.get("quiet_start") is not None and attrs["quiet_start"] == attrs["quiet_end"]:
            raise rule_violation({"quiet_end": [_("Must differ from quiet_start.")]})
        return attrs


def preference_data(preference: Preference | None) -> dict:
    if preference is None:
        return {
            "disabled_channels": [],
            "quiet_start": None,
            "quiet_end": None,
            "time_zone": settings.NOTIFY_DEFAULT_TIME_ZONE,
        }
    return {
        "disabled_channels": sorted(preference.disabled_channels),
        "quiet_start": preference.quiet_start.strftime("%H:%M") if preference.quiet_start else None,
        "quiet_end": preference.quiet_end.strftime("%H:%M") if preference.quiet_end else None,
        "time_zone": preference.time_zone,
    }


class _NotificationsView(MerchantAPIView):
    pagination_class = api_settings.DEFAULT_PAGINATION_CLASS

    def get_customer(self, external_id: str) -> Customer:
        """The caller's customer, or a 404 (another merchant's customer does not exist for it).
        Looked up before the body is read, so a bad body on a foreign customer is a 404 too."""
        customer = selectors.customer_get_for_merchant(merchant=self.merchant, external_id=external_id)
        if customer is None:
            raise Http404
        return customer


class NotificationFilters(filters.QueryFilters):
    recipient = filters.text(help_text="A customer's external_id.")
    order = filters.text(help_text="The order or withdrawal number (reference).")
    status = filters.choice(Notification.Status.values)
    channel = filters.choice(Channel.values)
    subject_type = filters.choice(["refund", "withdrawal", "payout", "alert", "commission"])


class NotificationListView(_NotificationsView):
    @extend_schema(responses=NotificationSerializer(many=True), parameters=[NotificationFilters])
    def get(self, request):
        rows = selectors.notification_list_for_merchant(merchant=self.merchant, **NotificationFilters.parse(request))
        return self.paginated(rows, NotificationSerializer)


class NotificationDetailView(_NotificationsView):
    @extend_schema(responses=NotificationSerializer)
    def get(self, request, pk: int):
        notification = selectors.notification_get_for_merchant(merchant=self.merchant, pk=pk)
        if notification is None:
            raise Http404
        return Response(NotificationSerializer(notification).data)


class CustomerInboxView(_NotificationsView):
    @extend_schema(responses=InboxPageSerializer)
    def get(self, request, external_id: str):
        customer = self.get_customer(external_id)
        response = self.paginated(selectors.inbox_list_for_customer(customer=customer), InboxItemSerializer)
        response.data["unread_count"] = selectors.inbox_unread_count(customer=customer)
        return response


class CustomerInboxReadView(_NotificationsView):
    @extend_schema(request=MarkReadSerializer, responses=MarkedSerializer)
    def post(self, request, external_id: str):
        customer = self.get_customer(external_id)
        data = MarkReadSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        marked = inbox_mark_read(customer=customer, notification_ids=data.notification_ids())
        return Response({"marked": marked})


class CustomerPreferenceView(_NotificationsView):
    @extend_schema(responses=PreferenceSerializer)
    def get(self, request, external_id: str):
        customer = self.get_customer(external_id)
        return Response(preference_data(selectors.preference_get_for_customer(customer=customer)))

    @extend_schema(request=PreferenceSerializer, responses=PreferenceSerializer)
    def put(self, request, external_id: str):
        customer = self.get_customer(external_id)
        data = PreferenceSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        preference = preference_set(
            customer=customer,
            disabled_channels=fields.get("disabled_channels", []),
            quiet_start=fields.get("quiet_start"),
            quiet_end=fields.get("quiet_end"),
            time_zone=fields.get("time_zone") or settings.NOTIFY_DEFAULT_TIME_ZONE,
        )
        return Response(preference_data(preference))
