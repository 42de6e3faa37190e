"""Refunds and their timeline.

State machine (DESIGN.md): requested → approved | manual_review | rejected | tech_support;
manual_review → approved | rejected; approved → submitted → processing → succeeded | failed;
submitted|processing → unknown (timeout: query before any retry) → submitted (not executed: resend
the same request id) | processing | succeeded | failed; failed → approved (retryable) or
needs_action (customer must fix the account) → approved; succeeded → reversed;
requested|approved|manual_review|needs_action|held → cancelled; approved|unknown → held (a freeze of
the customer or the destination account is in force at submission, or at a resend the bank said is
safe) → approved (every freeze holding it was lifted; submitted again on the normal path).

Transition methods only declare; `apps.refunds.services` locks, transitions, saves and records.
"""

from __future__ import annotations

import secrets

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django_fsm import FSMField, FSMModelMixin, transition

from apps.accounts.models import BankAccount, Customer, Merchant
from apps.common.dbguards import append_only
from apps.gateways.models import Channel
from apps.orders.models import Order


class Party(models.TextChoices):
    PLATFORM = "platform", "Platform"
    BANK = "bank", "Bank"
    CUSTOMER = "customer", "Customer"
    MERCHANT = "merchant", "Merchant"


def _public_token() -> str:
    return secrets.token_urlsafe(24)


class Refund(FSMModelMixin, models.Model):
    class Status(models.TextChoices):
        REQUESTED = "requested", "Requested"
        APPROVED = "approved", "Approved"
        MANUAL_REVIEW = "manual_review", "In manual review"
        REJECTED = "rejected", "Rejected"
        TECH_SUPPORT = "tech_support", "Routed to technical support"
        SUBMITTED = "submitted", "Submitted to bank"
        PROCESSING = "processing", "Bank processing"
        UNKNOWN = "unknown", "Outcome unknown (querying bank)"
        SUCCEEDED = "succeeded", "Arrived"
        FAILED = "failed", "Failed"
        NEEDS_ACTION = "needs_action", "Customer action needed"
        REVERSED = "reversed", "Returned by bank"
        CANCELLED = "cancelled", "Cancelled"
        HELD = "held", "Held (account frozen)"

    class Reason(models.TextChoices):
        MISTAKE = "mistake", "Bought by mistake"
        NOT_AS_DESCRIBED = "not_as_described", "Not as described"
        CANNOT_USE = "cannot_use", "Cannot use"
        DUPLICATE = "duplicate", "Duplicate purchase"
        OTHER = "other", "Other"

    # Money is reserved against the order while a refund is in one of these states (invariant:
    # succeeded + reserved ≤ captured).
    RESERVING = (
        Status.REQUESTED,
        Status.APPROVED,
        Status.MANUAL_REVIEW,
        Status.SUBMITTED,
        Status.PROCESSING,
        Status.UNKNOWN,
        Status.SUCCEEDED,
        Status.NEEDS_ACTION,
        Status.HELD,
    )
    IN_FLIGHT = (Status.SUBMITTED, Status.PROCESSING, Status.UNKNOWN)

    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="refunds")
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="refunds")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="refunds")
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    reason = models.CharField(max_length=32, choices=Reason.choices)
    reason_text = models.TextField(blank=True, max_length=2000)
    status = FSMField(default=Status.REQUESTED, choices=Status.choices, protected=True, db_index=True)
    decision = models.JSONField(default=dict, blank=True)
    destination_account = models.ForeignKey(
        BankAccount, null=True, blank=True, on_delete=models.PROTECT, related_name="refunds"
    )
    channel = models.ForeignKey(Channel, null=True, blank=True, on_delete=models.PROTECT, related_name="refunds")
    # Request ids sent to the channel are "refund:<id>:<submission_seq>"; the sequence moves only when
    # the destination changes (needs_action → approved), so a resend after a timeout reuses it.
    submission_seq = models.PositiveIntegerField(default=1)
    # Counts approved → submitted moves; ledger references of in-flight postings carry it.
    attempt = models.PositiveIntegerField(default=0)
    # Channel calls owed (one per submit/resubmit transition) and claimed: a sender claims with
    # `UPDATE … SET sent_seq = send_seq WHERE sent_seq < send_seq`, so no call is made twice.
    send_seq = models.PositiveIntegerField(default=0)
    sent_seq = models.PositiveIntegerField(default=0)
    channel_reference = models.CharField(max_length=128, blank=True)
    failure_code = models.CharField(max_length=64, blank=True)
    responsible_party = models.CharField(max_length=16, choices=Party.choices, blank=True)
    retry_count = models.PositiveIntegerField(default=0)
    next_poll_at = models.DateTimeField(null=True, blank=True)
    verify_until = models.DateTimeField(
        null=True, blank=True, help_text="Keep querying a success for late returns until then."
    )
    expected_arrival_at = models.DateTimeField(null=True, blank=True)
    public_token = models.CharField(max_length=64, unique=True, default=_public_token, editable=False)
    device_id = models.CharField(max_length=100, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    requested_by = models.CharField(max_length=100, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    succeeded_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.CheckConstraint(name="refund_amount_positive", condition=Q(amount__gt=0))]
        indexes = [
            models.Index(fields=["status", "next_poll_at"], name="refund_poll_idx"),
            models.Index(fields=["order", "status"], name="refund_order_status_idx"),
        ]

    def __str__(self) -> str:
        return f"refund {self.pk} of {self.order} ({self.status})"

    @property
    def request_id(self) -> str:
        return f"refund:{self.pk}:{self.submission_seq}"

    # --- transitions: declarations only --------------------------------------------------------
    @transition(field=status, source=Status.REQUESTED, target=Status.APPROVED)
    def approve_auto(self): ...

    @transition(field=status, source=Status.REQUESTED, target=Status.MANUAL_REVIEW)
    def send_to_review(self): ...

    @transition(field=status, source=[Status.REQUESTED, Status.MANUAL_REVIEW], target=Status.REJECTED)
    def reject(self): ...

    @transition(field=status, source=Status.REQUESTED, target=Status.TECH_SUPPORT)
    def route_to_tech_support(self): ...

    @transition(field=status, source=Status.MANUAL_REVIEW, target=Status.APPROVED)
    def approve_review(self): ...

    @transition(field=status, source=Status.APPROVED, target=Status.SUBMITTED)
    def submit(self): ...

    @transition(field=status, source=Status.UNKNOWN, target=Status.SUBMITTED)
    def resubmit(self): ...

    @transition(field=status, source=[Status.SUBMITTED, Status.UNKNOWN], target=Status.PROCESSING)
    def mark_processing(self): ...

    @transition(field=status, source=[Status.SUBMITTED, Status.PROCESSING], target=Status.UNKNOWN)
    def mark_unknown(self): ...

    @transition(field=status, source=[Status.SUBMITTED, Status.PROCESSING, Status.UNKNOWN], target=Status.SUCCEEDED)
    def succeed(self): ...

    @transition(field=status, source=[Status.SUBMITTED, Status.PROCESSING, Status.UNKNOWN], target=Status.FAILED)
    def fail(self): ...

    @transition(field=status, source=Status.FAILED, target=Status.APPROVED)
    def retry(self): ...

    # From approved: the channel refused the destination's holder name before anything was sent.
    @transition(field=status, source=[Status.FAILED, Status.APPROVED], target=Status.NEEDS_ACTION)
    def require_action(self): ...

    @transition(field=status, source=Status.NEEDS_ACTION, target=Status.APPROVED)
    def action_taken(self): ...

    @transition(field=status, source=Status.SUCCEEDED, target=Status.REVERSED)
    def reverse(self): ...

    @transition(field=status, source=[Status.APPROVED, Status.UNKNOWN], target=Status.HELD)
    def hold_for_freeze(self): ...

    @transition(field=status, source=Status.HELD, target=Status.APPROVED)
    def release_hold(self): ...

    @transition(
        field=status,
        source=[Status.REQUESTED, Status.APPROVED, Status.MANUAL_REVIEW, Status.NEEDS_ACTION, Status.HELD],
        target=Status.CANCELLED,
    )
    def cancel(self): ...


class RefundEvent(models.Model):
    """One line of a refund's timeline: what happened, why, who is responsible, who did it."""

    refund = models.ForeignKey(Refund, on_delete=models.CASCADE, related_name="events")
    code = models.CharField(max_length=48)
    from_status = models.CharField(max_length=16, blank=True)
    to_status = models.CharField(max_length=16, blank=True)
    message_key = models.CharField(max_length=100)
    responsible_party = models.CharField(max_length=16, choices=Party.choices)
    actor = models.CharField(max_length=100)
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("created_at", "id")
        indexes = [models.Index(fields=["refund", "created_at"])]
        triggers = [append_only("refund_event")]

    def __str__(self) -> str:
        return f"{self.refund_id}: {self.code} ({self.from_status}→{self.to_status})"


class ReasonPhrase(models.Model):
    """A phrase that, found in a customer's free-text reason, routes the request (e.g. to tech support).

    Chinese phrases are matched on word boundaries found by the segmenter, English ones on word
    boundaries, both case-insensitively; see apps.refunds.routing.
    """

    class Route(models.TextChoices):
        TECH_SUPPORT = "tech_support", "Technical support"

    class Language(models.TextChoices):
        ZH = "zh", "Chinese"
        EN = "en", "English"

    phrase = models.CharField(max_length=60)
    language = models.CharField(max_length=2, choices=Language.choices)
    route = models.CharField(max_length=16, choices=Route.choices, default=Route.TECH_SUPPORT)
    category = models.CharField(max_length=32, help_text='Problem class, e.g. "playback", "error", "compatibility".')
    is_active = models.BooleanField(default=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["phrase", "language"], name="reason_phrase_unique")]

    def __str__(self) -> str:
        return f"{self.phrase} → {self.route}"


class SupportTicket(models.Model):
    """A "cannot use it" request sent to support with troubleshooting steps, before any money moves."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        RESOLVED = "resolved", "Resolved"
        REFUND_REQUESTED = "refund_requested", "Customer still wants a refund"

    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="support_tickets")
    refund = models.OneToOneField(Refund, on_delete=models.PROTECT, related_name="support_ticket")
    category = models.CharField(max_length=32)
    matched_phrases = models.JSONField(default=list, blank=True)
    guidance = models.JSONField(default=list, help_text="Troubleshooting steps shown to the customer.")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"ticket {self.pk} ({self.category}) for refund {self.refund_id}"
