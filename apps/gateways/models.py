from django.db import models
from django.utils import timezone


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

    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="calls")
    action = models.CharField(max_length=16, choices=Action.choices)
    reference = models.CharField(max_length=64, db_index=True)
    request_id = models.CharField(max_length=128, db_index=True)
    outcome = models.CharField(max_length=32)
    raw_code = models.CharField(max_length=64, blank=True)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return f"{self.action} {self.request_id} → {self.outcome}"


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
    "InboundWebhook",
    "SandboxEvent",
    "SandboxOutage",
    "SandboxSubmission",
    "SandboxTransfer",
]
