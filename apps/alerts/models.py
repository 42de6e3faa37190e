"""Tiered alerts (DESIGN.md, "Tiered alerts — contract"): one live alert per dedup key, grouped,
silenced or inhibited, acked, resolved and escalated only through `apps.alerts.services`."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django_fsm import FSMField, FSMModelMixin, transition

from apps.accounts.models import Merchant
from apps.common.dbguards import append_only


class Tier(models.TextChoices):
    # Same values and labels as risk rule severities: one "severity" enum in the API schema.
    P0 = "P0", "P0 — page a human"
    P1 = "P1", "P1 — handled, watched"
    P2 = "P2", "P2 — recorded"


class Alert(FSMModelMixin, models.Model):
    class Status(models.TextChoices):
        OPEN = "open", "Open"
        ACKED = "acked", "Acknowledged"
        RESOLVED = "resolved", "Resolved"
        SUPPRESSED = "suppressed", "Suppressed (silenced or inhibited)"

    LIVE = (Status.OPEN, Status.ACKED, Status.SUPPRESSED)

    tier = models.CharField(max_length=2, choices=Tier.choices, db_index=True)
    kind = models.CharField(max_length=64, db_index=True)
    status = FSMField(default=Status.OPEN, choices=Status.choices, protected=True, db_index=True)
    merchant = models.ForeignKey(
        Merchant,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="alerts",
        help_text="Empty: platform-wide.",
    )
    subject_type = models.CharField(max_length=32)
    subject_id = models.CharField(max_length=64)
    subject_label = models.CharField(max_length=200, blank=True)
    # The bank channel the alert is about or caused by: silences match it, a channel-down inhibits it.
    channel = models.CharField(max_length=32, blank=True, db_index=True)
    dedup_key = models.CharField(max_length=200)
    group_key = models.CharField(max_length=200, blank=True, db_index=True)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children")
    is_group = models.BooleanField(default=False)
    summary = models.CharField(max_length=500)
    detail = models.JSONField(default=dict, blank=True)
    suppressed_reason = models.CharField(max_length=200, blank=True)
    occurrence_count = models.PositiveIntegerField(default=1)
    escalation_level = models.PositiveIntegerField(default=0)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts"
    )
    first_seen_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    last_paged_at = models.DateTimeField(null=True, blank=True)
    acked_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-last_seen_at", "-id")
        constraints = [
            # One live alert per key: raising again counts a repeat; after resolve a new alert opens.
            models.UniqueConstraint(
                fields=["dedup_key"], condition=~Q(status="resolved"), name="alert_one_live_per_dedup_key"
            ),
            models.CheckConstraint(name="alert_tier_valid", condition=Q(tier__in=["P0", "P1", "P2"])),
        ]
        indexes = [
            models.Index(fields=["merchant", "status", "last_seen_at"], name="alert_merchant_idx"),
            models.Index(fields=["status", "tier", "last_paged_at"], name="alert_escalation_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.tier} {self.kind} {self.subject_type}:{self.subject_id} ({self.status})"

    @transition(field=status, source=Status.OPEN, target=Status.ACKED)
    def ack(self) -> None:
        """A person has seen it: re-paging stops."""

    @transition(field=status, source=[Status.OPEN, Status.ACKED, Status.SUPPRESSED], target=Status.RESOLVED)
    def resolve(self) -> None:
        """The condition is over (by a person or automatically)."""


class AlertEvent(models.Model):
    """Every change of an alert, append-only."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="events")
    code = models.CharField(max_length=32)
    actor = models.CharField(max_length=100)
    from_status = models.CharField(max_length=16, blank=True)
    to_status = models.CharField(max_length=16, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("at", "id")
        indexes = [models.Index(fields=["alert", "at"])]
        triggers = [append_only("alert_event")]

    def __str__(self) -> str:
        return f"{self.code} {self.from_status}→{self.to_status}"


class Silence(models.Model):
    """While active, alerts whose fields equal every matcher are stored as suppressed, never routed."""

    MATCHER_KEYS = ("kind", "tier", "channel", "subject_type", "merchant_id")

    merchant = models.ForeignKey(
        Merchant,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="silences",
        help_text="Set: only this merchant's alerts. Empty: a platform silence.",
    )
    matchers = models.JSONField(default=dict)
    starts_at = models.DateTimeField(default=timezone.now)
    ends_at = models.DateTimeField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    actor = models.CharField(max_length=100)
    comment = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("-created_at", "-id")
        constraints = [
            models.CheckConstraint(name="silence_ends_after_start", condition=Q(ends_at__gte=models.F("starts_at")))
        ]

    def __str__(self) -> str:
        return f"silence {self.matchers} until {self.ends_at:%Y-%m-%d %H:%M}"


class AlertDelivery(models.Model):
    """A notification the alert asked for ("would notify"): the notifications app will send these."""

    class Channel(models.TextChoices):
        SMS = "sms", "SMS"
        VOICE = "voice", "Voice call"
        EMAIL = "email", "Email digest"
        IN_APP = "in_app", "In-app inbox"
        CONSOLE = "console", "Console"

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.CharField(max_length=16, choices=Channel.choices)
    target = models.CharField(max_length=100)
    status = models.CharField(max_length=16, default="recorded")
    escalation_level = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("created_at", "id")

    def __str__(self) -> str:
        return f"{self.channel} → {self.target}"
