"""Refunds and their timeline.

State machine (DESIGN.md): requested → approved | manual_review | rejected | tech_support;
manual_review → approved | rejected; approved → submitted → processing → succeeded | failed;
submitted|processing → unknown (timeout: query before any retry) → submitted (not executed: resend
the same request id) | processing | succeeded | failed; failed → approved (retryable) or
needs_action (customer must fix the account) → approved; succeeded → reversed;
requested|approved|manual_review|needs_action|held → cancelled; approved|unknown → held (a freeze of
the customer or the destination account is in force at submission, or at a resend the bank said is
safe) → approved (every freeze holding it was lifted; submitted again on the normal path).

The outbound part (submitted … failed, held) is the kernel's (apps.transfers.models); transition
methods only declare; `apps.refunds.services` and the kernel lock, transition, save and record.
"""

from __future__ import annotations

import secrets

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django_fsm import FSMField

from apps.accounts.models import BankAccount, Customer, Merchant
from apps.orders.models import Order
from apps.transfers.models import OutboundTransfer, Party, TransferEvent

__all__ = ["Party", "ReasonPhrase", "Refund", "RefundEvent", "SupportTicket"]


def _public_token() -> str:
    return secrets.token_urlsafe(24)


class Refund(OutboundTransfer):
    class Status(models.TextChoices):
        """Where the refund is (the machine: this module's docstring)."""

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

    class Reason(models.TextChoices):
        """Why the customer wants the money back, as picked from the list (free text aside)."""

        MISTAKE = "mistake", "Bought by mistake"
        NOT_AS_DESCRIBED = "not_as_described", "Not as described"
        CANNOT_USE = "cannot_use", "Cannot use"
        DUPLICATE = "duplicate", "Duplicate purchase"
        OTHER = "other", "Other"

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="refunds")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="refunds")
    reason = models.CharField(max_length=32, choices=Reason.choices)
    reason_text = models.TextField(blank=True, max_length=2000)
    status = FSMField(default=Status.REQUESTED, choices=Status.choices, protected=True, db_index=True)
    decision = models.JSONField(default=dict, blank=True)
    destination_account = models.ForeignKey(
        BankAccount, null=True, blank=True, on_delete=models.PROTECT, related_name="refunds"
    )
    # Request ids sent to the channel are "refund:<id>:<submission_seq>"; the sequence moves only when
    # the destination changes (needs_action → approved), so a resend after a timeout reuses it.
    submission_seq = models.PositiveIntegerField(default=1)
    expected_arrival_at = models.DateTimeField(null=True, blank=True)
    public_token = models.CharField(max_length=64, unique=True, default=_public_token, editable=False)
    requested_by = models.CharField(max_length=100, blank=True)
    succeeded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.CheckConstraint(name="refund_amount_positive", condition=Q(amount__gt=0))]
        indexes = [
            models.Index(fields=["status", "next_poll_at"], name="refund_poll_idx"),
            models.Index(fields=["order", "status"], name="refund_order_status_idx"),
        ]

    def __str__(self) -> str:
        return f"refund {self.pk} of {self.order} ({self.status})"

    noun = "refund"

    @property
    def request_id(self) -> str:
        return f"refund:{self.pk}:{self.submission_seq}"

    @property
    def transfer_memo(self) -> str:
        return f"refund of order {self.order.external_id}"

    # The kind's own transitions, declared as methods by the kernel (apps.transfers.models): name →
    # (sources, target). Only declarations: the services lock, transition, save and record.
    TRANSITIONS = {
        "approve_auto": ([Status.REQUESTED], Status.APPROVED),
        "send_to_review": ([Status.REQUESTED], Status.MANUAL_REVIEW),
        "reject": ([Status.REQUESTED, Status.MANUAL_REVIEW], Status.REJECTED),
        "route_to_tech_support": ([Status.REQUESTED], Status.TECH_SUPPORT),
        "approve_review": ([Status.MANUAL_REVIEW], Status.APPROVED),
        "succeed": ([Status.SUBMITTED, Status.PROCESSING, Status.UNKNOWN], Status.SUCCEEDED),
        # From approved: the channel refused the destination's holder name before anything was sent.
        "require_action": ([Status.FAILED, Status.APPROVED], Status.NEEDS_ACTION),
        "action_taken": ([Status.NEEDS_ACTION], Status.APPROVED),
        "reverse": ([Status.SUCCEEDED], Status.REVERSED),
        "cancel": (
            [Status.REQUESTED, Status.APPROVED, Status.MANUAL_REVIEW, Status.NEEDS_ACTION, Status.HELD],
            Status.CANCELLED,
        ),
    }


class RefundEvent(TransferEvent):
    """One line of a refund's timeline (apps.transfers.models.TransferEvent)."""

    refund = models.ForeignKey(Refund, on_delete=models.CASCADE, related_name="events")

    class Meta(TransferEvent.Meta):
        indexes = [models.Index(fields=["refund", "created_at"])]


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
        """Open until the guidance helped (resolved) or the customer still wants the refund."""

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
