from django.db import models
from django.utils import timezone

from apps.common.dbguards import append_only


class WorkerHeartbeat(models.Model):
    """Proof that beat's schedule reaches a worker: one row per periodic job, bumped by the worker."""

    name = models.CharField(max_length=64, unique=True)
    last_at = models.DateTimeField()
    count = models.PositiveBigIntegerField(default=0)
    worker = models.CharField(max_length=200, blank=True)

    def __str__(self) -> str:
        return f"{self.name} @ {self.last_at:%Y-%m-%d %H:%M:%S} (×{self.count})"


class IdempotencyRecord(models.Model):
    """A claimed `Idempotency-Key` and, once answered, the response to replay."""

    scope = models.CharField(max_length=64, help_text='Whose key: "merchant:12".')
    key = models.CharField(max_length=255)
    endpoint = models.CharField(max_length=100)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of endpoint + canonical body.")
    claimed_at = models.DateTimeField(db_index=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["scope", "key"], name="idempotency_key_per_scope")]

    def __str__(self) -> str:
        return f"{self.scope}:{self.key}"


class LiveEvent(models.Model):
    """A live update on its way to a Channels group, for setups without a shared channel layer: the
    WebSocket process relays new rows to its in-memory groups (apps/common/live.py) and old rows are
    deleted. Nothing here is a record of anything."""

    group = models.CharField(max_length=100)
    message = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self) -> str:
        return f"{self.group} #{self.pk}"


class PeriodicRun(models.Model):
    """One row per periodic job and window (apps/common/periodic.py): a second beat, or a copy of the
    task the broker handed out again, finds the row and does nothing."""

    job = models.CharField(max_length=64)
    window_start = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    result = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job", "window_start"], name="periodic_run_once_per_window")]

    def __str__(self) -> str:
        return f"{self.job} @ {self.window_start:%Y-%m-%d %H:%M:%S}"


class AuditEntry(models.Model):
    """One money-moving or staff action: who, what, on what, before/after, when, from where.

    Written only by `apps.common.audit.audit_record`, in the transaction of the change it records;
    append-only (a trigger refuses UPDATE and DELETE on PostgreSQL). Merchant and user are plain ids,
    not foreign keys: this is the lowest floor, and a record must outlive what it speaks of.
    """

    class ActorKind(models.TextChoices):
        STAFF = "staff", "Staff user"
        API_KEY = "api_key", "API key"
        SYSTEM = "system", "System task"
        ANONYMOUS = "anonymous", "Unauthenticated request"

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    actor_kind = models.CharField(max_length=16, choices=ActorKind.choices)
    actor = models.CharField(max_length=150, help_text='"alice", "api-key:rg_ab12", "system:<task>".')
    actor_user_id = models.BigIntegerField(null=True, blank=True)
    action = models.CharField(max_length=48, db_index=True, help_text='"refund.review", "freeze.create"…')
    target_type = models.CharField(max_length=32)
    target_id = models.CharField(max_length=64, blank=True)
    merchant_id = models.BigIntegerField(null=True, blank=True)
    before = models.JSONField(default=dict, blank=True)
    after = models.JSONField(default=dict, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    source = models.CharField(max_length=200, blank=True, help_text='"POST /api/v1/refunds" or the task name.')

    class Meta:
        verbose_name_plural = "audit entries"
        indexes = [models.Index(fields=["merchant_id", "-created_at"], name="audit_merchant_recent_idx")]
        triggers = [append_only("audit_entry")]

    def __str__(self) -> str:
        return f"{self.action} {self.target_type}:{self.target_id} by {self.actor}"
