"""Notifications: what RefundGuard tells customers and staff, over which channel, and whether it
arrived. `Notification` rows are the outbox — written in the transaction of the change that causes
them and dispatched by a worker (`apps.notifications.services.notification_dispatch`)."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django_fsm import FSMField, FSMModelMixin, transition

from apps.accounts.models import Customer, Locale, Merchant


class Channel(models.TextChoices):
    SMS = "sms", "SMS"
    VOICE = "voice", "Voice call"
    PUSH = "push", "Live push"
    INBOX = "inbox", "In-app inbox"
    EMAIL = "email", "Email"


class Priority(models.TextChoices):
    # Critical ignores preferences, quiet hours and rate limits (a P0 page); the others choose the
    # channels (apps.notifications.policy.CHANNELS_BY_PRIORITY).
    CRITICAL = "critical", "Critical"
    HIGH = "high", "High"
    MEDIUM = "medium", "Medium"
    LOW = "low", "Low"


class Template(models.Model):
    """One wording of one message. Several active versions of a key may coexist: the highest takes
    `rollout_percent` of recipients (a canary / gray release), the rest fall through to the next."""

    key = models.CharField(max_length=64, db_index=True, help_text='What the message is about, e.g. "refund_delayed".')
    channel = models.CharField(
        max_length=8, choices=Channel.choices, blank=True, help_text="Empty: used for every channel without its own."
    )
    locale = models.CharField(max_length=8, choices=Locale.choices)
    version = models.PositiveIntegerField(default=1)
    subject = models.CharField(max_length=200, blank=True, help_text="Title in the inbox, subject of an email.")
    body = models.TextField(help_text="Django template syntax, e.g. {{ order_no }}; see the variables in the preview.")
    rollout_percent = models.PositiveSmallIntegerField(default=100, validators=[MaxValueValidator(100)])
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("key", "channel", "locale", "-version")
        constraints = [
            models.UniqueConstraint(fields=["key", "channel", "locale", "version"], name="template_version_unique"),
            models.CheckConstraint(condition=Q(rollout_percent__lte=100), name="template_rollout_percent_lte_100"),
        ]

    def __str__(self) -> str:
        return f"{self.key}/{self.channel or '*'}/{self.locale} v{self.version}"


class Preference(models.Model):
    """A customer's (or staff member's) choices: channels they turned off, quiet hours in their time
    zone. Critical messages ignore both."""

    customer = models.OneToOneField(
        Customer, null=True, blank=True, on_delete=models.CASCADE, related_name="notification_preference"
    )
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="notification_preference",
    )
    disabled_channels = models.JSONField(default=list, blank=True, help_text='e.g. ["sms", "email"]')
    quiet_start = models.TimeField(null=True, blank=True, help_text="Local time quiet hours begin, e.g. 22:00.")
    quiet_end = models.TimeField(null=True, blank=True, help_text="Local time they end, e.g. 08:00.")
    time_zone = models.CharField(max_length=64, default="Asia/Shanghai")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(customer__isnull=False, user__isnull=True) | Q(customer__isnull=True, user__isnull=False),
                name="preference_has_one_owner",
            )
        ]

    def __str__(self) -> str:
        return f"preferences of {self.customer_id or self.user_id}"


class Notification(FSMModelMixin, models.Model):
    """One message to one recipient over one channel, and its delivery."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENDING = "sending", "Handing to provider"
        SENT = "sent", "Sent"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"
        UNDELIVERED = "undelivered", "Undelivered"
        DIGESTED = "digested", "Folded into a digest (rate limit)"
        SKIPPED = "skipped", "Skipped (turned off by the recipient)"

    class RecipientType(models.TextChoices):
        CUSTOMER = "customer", "Customer"
        STAFF = "staff", "Staff"

    FINAL = (Status.DELIVERED, Status.FAILED, Status.UNDELIVERED, Status.DIGESTED, Status.SKIPPED)

    merchant = models.ForeignKey(Merchant, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    recipient_type = models.CharField(max_length=8, choices=RecipientType.choices)
    customer = models.ForeignKey(
        Customer, null=True, blank=True, on_delete=models.PROTECT, related_name="notifications"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="notifications"
    )
    # "customer:<id>" or "user:<id>": who, in one column the once-per-cause constraint can use.
    recipient_key = models.CharField(max_length=32)
    # Phone (E.164) or email address at the time of writing; empty for push and inbox.
    address = models.CharField(max_length=254, blank=True)
    channel = models.CharField(max_length=8, choices=Channel.choices)
    priority = models.CharField(max_length=8, choices=Priority.choices)
    # The cause: one message per cause, recipient and channel, however often the cause is reported.
    event_key = models.CharField(max_length=160)
    subject_type = models.CharField(
        max_length=16, blank=True, help_text="refund, withdrawal, payout, alert, commission"
    )
    subject_id = models.BigIntegerField(null=True, blank=True)
    reference = models.CharField(max_length=100, blank=True, help_text="Order or withdrawal number it is about.")
    template_key = models.CharField(max_length=64)
    template_version = models.PositiveIntegerField(default=0, help_text="0: the built-in wording.")
    locale = models.CharField(max_length=8, choices=Locale.choices)
    # The variables the wording was rendered from (masked values only), to render a fallback channel,
    # a digest or a preview again.
    context = models.JSONField(default=dict, blank=True)
    title = models.CharField(max_length=200, blank=True)
    body = models.TextField()
    link = models.URLField(max_length=500, blank=True)
    status = FSMField(default=Status.QUEUED, choices=Status.choices, protected=True, db_index=True)
    provider = models.CharField(max_length=16, blank=True)
    provider_id = models.CharField(max_length=64, blank=True, db_index=True)
    provider_status = models.CharField(max_length=32, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_error = models.CharField(max_length=500, blank=True)
    fallback_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="fallbacks")
    digest = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="digested")
    read_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created_at", "-id")
        constraints = [
            models.UniqueConstraint(
                fields=["event_key", "channel", "recipient_key"], name="notification_once_per_cause"
            ),
            models.CheckConstraint(
                condition=Q(recipient_type="customer", customer__isnull=False, user__isnull=True)
                | Q(recipient_type="staff", user__isnull=False, customer__isnull=True),
                name="notification_has_one_recipient",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="notification_due_idx"),
            models.Index(fields=["recipient_key", "channel", "sent_at"], name="notification_rate_idx"),
            models.Index(fields=["recipient_key", "channel", "created_at"], name="notification_inbox_idx"),
            models.Index(fields=["subject_type", "subject_id"], name="notification_subject_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.channel} {self.template_key} → {self.recipient_type}:{self.customer_id or self.user_id}"

    # --- transitions: declarations only; apps.notifications.services runs them ---
    @transition(field=status, source=Status.QUEUED, target=Status.SENDING)
    def claim(self):
        pass

    @transition(field=status, source=Status.SENDING, target=Status.QUEUED)
    def requeue(self):
        pass

    @transition(field=status, source=Status.SENDING, target=Status.SENT)
    def mark_sent(self):
        pass

    @transition(field=status, source=[Status.SENDING, Status.SENT], target=Status.DELIVERED)
    def mark_delivered(self):
        pass

    @transition(field=status, source=[Status.QUEUED, Status.SENDING, Status.SENT], target=Status.FAILED)
    def mark_failed(self):
        pass

    @transition(field=status, source=[Status.SENDING, Status.SENT], target=Status.UNDELIVERED)
    def mark_undelivered(self):
        pass

    @transition(field=status, source=[Status.QUEUED, Status.SENDING], target=Status.DIGESTED)
    def fold_into_digest(self):
        pass

    @transition(field=status, source=Status.QUEUED, target=Status.SKIPPED)
    def skip(self):
        pass


class ProviderStatusEvent(models.Model):
    """A delivery report from a provider (Twilio status callback), kept once per sid + status."""

    provider = models.CharField(max_length=16)
    provider_id = models.CharField(max_length=64)
    status = models.CharField(max_length=32)
    notification = models.ForeignKey(Notification, on_delete=models.PROTECT, related_name="status_events")
    payload = models.JSONField(default=dict)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("received_at", "id")
        constraints = [
            models.UniqueConstraint(fields=["provider", "provider_id", "status"], name="provider_status_once")
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.provider_id} {self.status}"


class SandboxMessage(models.Model):
    """What the sandbox provider "sent" when no Twilio credentials are configured: the record a
    developer or a test reads instead of a phone."""

    sid = models.CharField(max_length=64, unique=True)
    channel = models.CharField(max_length=8, choices=Channel.choices)
    to = models.CharField(max_length=254)
    body = models.TextField()
    notification_id = models.BigIntegerField(db_index=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("created_at", "id")

    def __str__(self) -> str:
        return f"{self.channel} {self.sid}"
