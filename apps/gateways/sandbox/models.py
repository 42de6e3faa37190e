"""The sandbox bank's own books. It is a different party from RefundGuard: nothing outside
`apps.gateways.sandbox` reads these tables except tests, which count `executions` to prove
"never pays twice".

The bank keeps only the last four digits of an account number and a keyed fingerprint, never the
number itself.
"""

from __future__ import annotations

from datetime import datetime

from django.db import models
from django.utils import timezone

# The bank's own status codes (what its API and webhooks say); adapters normalise them.
ACCOUNT_FROZEN = "ACCOUNT_FROZEN"
NAME_MISMATCH = "NAME_MISMATCH"
ACCOUNT_CLOSED = "ACCOUNT_CLOSED"
LIMIT_REACHED = "LIMIT_REACHED"
RISK_REVIEW = "RISK_REVIEW"
SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
GATEWAY_TIMEOUT = "GATEWAY_TIMEOUT"
INVALID_REQUEST = "INVALID_REQUEST"
REQUEST_ID_CONFLICT = "REQUEST_ID_CONFLICT"
NOT_FOUND = "NOT_FOUND"


class Behaviour:
    """What the bank does, chosen by the last four digits of the destination account."""

    NORMAL = "0000"
    SLOW = "0001"
    FROZEN = "0002"
    RETURNED = "0003"
    NAME_MISMATCH = "0004"
    TIMEOUT_EXECUTED = "0005"
    TIMEOUT_NOT_EXECUTED = "0006"
    LIMIT_FIRST = "0007"
    WEBHOOK_CHAOS = "0008"
    RISK_HOLD = "0009"


class SandboxTransfer(models.Model):
    """One transfer instruction the bank accepted. Its status is computed from the bank's clock."""

    class Status(models.TextChoices):
        PROCESSING = "processing", "Processing"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        RETURNED = "returned", "Returned"
        HELD = "held", "Held"

    transfer_id = models.CharField(max_length=32, unique=True)
    request_id = models.CharField(max_length=128, unique=True)
    channel = models.CharField(max_length=32, help_text="Channel code the instruction came in for.")
    kind = models.CharField(max_length=16)
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    account_last4 = models.CharField(max_length=4)
    account_fingerprint = models.CharField(max_length=64)
    # How many times money really moved for this request id: 0 or 1, except for the 0005 account,
    # where this bank does not dedupe and a blind re-submit moves the money again.
    executions = models.PositiveIntegerField(default=0)
    submitted_at = models.DateTimeField()
    settles_at = models.DateTimeField()
    returns_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        app_label = "gateways"
        ordering = ("-submitted_at",)

    def __str__(self) -> str:
        return f"{self.transfer_id} {self.request_id} **** {self.account_last4}"

    @property
    def behaviour(self) -> str:
        return self.account_last4

    def timeline(self) -> list[tuple[datetime, str, str]]:
        """(from when, status, bank code) in order; the last entry at or before now is the status."""
        steps = [(self.submitted_at, self.Status.PROCESSING, "")]
        if self.behaviour == Behaviour.FROZEN:
            steps.append((self.settles_at, self.Status.FAILED, ACCOUNT_FROZEN))
        elif self.behaviour == Behaviour.RISK_HOLD:
            steps.append((self.settles_at, self.Status.HELD, RISK_REVIEW))
        else:
            steps.append((self.settles_at, self.Status.SUCCEEDED, ""))
            if self.behaviour == Behaviour.RETURNED and self.returns_at:
                steps.append((self.returns_at, self.Status.RETURNED, ACCOUNT_CLOSED))
        return steps

    def state_at(self, now: datetime | None = None) -> tuple[str, str, datetime]:
        """(status, bank code, since) as the bank sees it at `now`."""
        now = now or timezone.now()
        current = self.timeline()[0]
        for step in self.timeline():
            if step[0] <= now:
                current = step
        at, status, code = current
        return status, code, at

    @property
    def status(self) -> str:
        return self.state_at()[0]


class SandboxEvent(models.Model):
    """One webhook delivery the bank owes. A redelivered event shares `event_id` (copy 2, 3, ...)."""

    transfer = models.ForeignKey(SandboxTransfer, on_delete=models.CASCADE, related_name="events")
    event_id = models.CharField(max_length=40, db_index=True)
    copy = models.PositiveSmallIntegerField(default=1)
    status = models.CharField(max_length=16)
    code = models.CharField(max_length=32, blank=True)
    occurred_at = models.DateTimeField()
    due_at = models.DateTimeField()
    next_attempt_at = models.DateTimeField()
    attempts = models.PositiveIntegerField(default=0)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=200, blank=True)

    class Meta:
        app_label = "gateways"
        ordering = ("due_at", "id")
        constraints = [models.UniqueConstraint(fields=["event_id", "copy"], name="sandbox_event_copy_once")]
        indexes = [models.Index(fields=["delivered_at", "next_attempt_at"], name="sandbox_event_due")]

    def __str__(self) -> str:
        return f"{self.event_id}#{self.copy} {self.status}"


class SandboxOutage(models.Model):
    """While enabled, every call for this channel code answers 503 and no webhooks go out."""

    channel = models.CharField(max_length=32, unique=True)
    is_enabled = models.BooleanField(default=False)
    changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        app_label = "gateways"

    def __str__(self) -> str:
        return f"{self.channel}: {'outage' if self.is_enabled else 'up'}"


class SandboxSubmission(models.Model):
    """Every submit that reached the bank, whatever came of it; how tests count bank-side attempts."""

    class Outcome(models.TextChoices):
        EXECUTED = "executed", "Executed"
        DEDUPLICATED = "deduplicated", "Answered with the existing transfer"
        REJECTED = "rejected", "Rejected"
        DROPPED = "dropped", "Timed out without executing"
        CONFLICT = "conflict", "Same request id, different instruction"
        OUTAGE = "outage", "Refused: outage"

    request_id = models.CharField(max_length=128, db_index=True)
    channel = models.CharField(max_length=32)
    account_last4 = models.CharField(max_length=4)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    code = models.CharField(max_length=32, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        app_label = "gateways"
        ordering = ("id",)

    def __str__(self) -> str:
        return f"{self.request_id} → {self.outcome}"
