from django.db import models
from django.utils import timezone

from apps.common.dbguards import append_only


class Channel(models.Model):
    """A bank or payment channel money can leave through, tried in `priority` order (lower first)."""

    code = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=100)
    adapter = models.CharField(max_length=32, help_text='Adapter key in apps.gateways.adapters, e.g. "sandbox".')
    base_url = models.URLField(blank=True, help_text="Empty for the sandbox bank mounted in this process.")
    priority = models.PositiveSmallIntegerField(default=100)
    is_enabled = models.BooleanField(default=True)
    webhook_secret = models.CharField(max_length=128)
    timeout_seconds = models.FloatField(default=5.0)
    # Which money movements the channel can carry: {"refund": true, "payout": true, "withdrawal": true, "verify": true}
    capabilities = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("priority", "code")

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"

    def supports(self, capability: str) -> bool:
        return bool(self.capabilities.get(capability, False))


class ChannelCall(models.Model):
    """Every outbound call to a channel, for audit and for counting (tests assert on these)."""

    class Action(models.TextChoices):
        VERIFY = "verify", "Verify account"
        SUBMIT = "submit", "Submit"
        QUERY = "query", "Query"
        STATEMENT = "statement", "Statement"

    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="calls")
    action = models.CharField(max_length=16, choices=Action.choices)
    reference = models.CharField(max_length=64, db_index=True)
    request_id = models.CharField(max_length=128, db_index=True)
    outcome = models.CharField(max_length=32)
    raw_code = models.CharField(max_length=64, blank=True)
    # The normalised reason (reasons.py) the adapter gave, if any: what channel health counts.
    reason = models.CharField(max_length=32, blank=True)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        triggers = [append_only("channel_call")]

    def __str__(self) -> str:
        return f"{self.action} {self.request_id} → {self.outcome}"


class ChannelHealth(models.Model):
    """How a channel is doing lately, which `channel_for` routes by. Written by services only:
    `channel_health_refresh` (beat) recomputes it from the recent `ChannelCall`s, and an outage
    error on any call marks the channel down at once (`channel_health_mark_down`).

    No row means never measured: routed as healthy.
    """

    class State(models.TextChoices):
        HEALTHY = "healthy", "Healthy"
        DEGRADED = "degraded", "Degraded"  # failing too often: the backup is preferred (P1)
        DOWN = "down", "Down"  # in outage or failing (nearly) every call: the backup is used (P0)

    channel = models.OneToOneField(Channel, on_delete=models.CASCADE, primary_key=True, related_name="health")
    state = models.CharField(max_length=16, choices=State.choices, default=State.HEALTHY)
    reason = models.CharField(max_length=32, blank=True, help_text='Why: "outage", "failure_rate" or empty.')
    score = models.PositiveSmallIntegerField(default=100, help_text="0 (down) to 100 (no failures in the window).")
    failure_rate = models.FloatField(default=0.0, help_text="Failures ÷ calls in the window, 0 to 1.")
    calls = models.PositiveIntegerField(default=0, help_text="Sample size: calls in the window.")
    failures = models.PositiveIntegerField(default=0)
    is_failure_rate_rising = models.BooleanField(
        default=False, help_text="The daily failure rate rose CHANNEL_RISING_DAYS days in a row."
    )
    last_call_at = models.DateTimeField(null=True, blank=True)
    last_ok_at = models.DateTimeField(null=True, blank=True)
    last_outage_at = models.DateTimeField(null=True, blank=True)
    state_changed_at = models.DateTimeField(default=timezone.now)
    computed_at = models.DateTimeField(null=True, blank=True, help_text="When the state was last worked out.")

    class Meta:
        verbose_name_plural = "channel health"

    def __str__(self) -> str:
        return f"{self.channel_id}: {self.state} ({self.score})"


class ChannelHealthDay(models.Model):
    """One channel's calls and failures on one complete UTC day, for "failure rate rising N days in a
    row". Written once by `channel_health_refresh`, after the day ended, so the totals are final.
    """

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="health_days")
    date = models.DateField()
    calls = models.PositiveIntegerField(default=0)
    failures = models.PositiveIntegerField(default=0)
    failure_rate = models.FloatField(default=0.0)
    computed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("channel", "-date")
        constraints = [models.UniqueConstraint(fields=["channel", "date"], name="channel_health_day_once")]

    def __str__(self) -> str:
        return f"{self.channel_id} {self.date}: {self.failures}/{self.calls}"


class InboundWebhook(models.Model):
    """A webhook event accepted once: (channel, event_id) is unique, so a redelivery is a no-op."""

    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="webhooks")
    event_id = models.CharField(max_length=128)
    request_id = models.CharField(max_length=128, db_index=True)
    status = models.CharField(max_length=32)
    payload = models.JSONField()
    received_at = models.DateTimeField(default=timezone.now)
    outcome = models.CharField(max_length=32, blank=True, help_text="applied / ignored_stale / unknown_reference")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["channel", "event_id"], name="webhook_event_once")]

    def __str__(self) -> str:
        return f"{self.channel.code}:{self.event_id}"


# The sandbox bank's tables belong to this app (label "gateways") but live in their own module.
from apps.gateways.sandbox.models import (  # noqa: E402
    SandboxEvent,
    SandboxOutage,
    SandboxSubmission,
    SandboxTransfer,
)

__all__ = [
    "Channel",
    "ChannelCall",
    "ChannelHealth",
    "ChannelHealthDay",
    "InboundWebhook",
    "SandboxEvent",
    "SandboxOutage",
    "SandboxSubmission",
    "SandboxTransfer",
]
