"""Payouts (merchant settlements) and withdrawals (a customer's balance to a bank card): one table,
one state machine, two proxies.

State machine (DESIGN.md):
    created → checking → pending_approval (review; large: two different approvers) → approved
    checking → approved (nothing to review) | held (duplicate suspected, risk, no verification) |
               failed (a pre-check failed: nothing was sent)
    held → pending_approval (a person released it)
    approved → submitted → processing → paid | failed | returned (paid, then the bank gave it back)
    submitted|processing → unknown (timeout: query before any retry) → submitted (not executed:
               resend the same request id) | processing | paid | failed
    failed → approved (retryable channel failure, with backoff)
    paid|recall_failed → recall_requested → recalled | recall_failed
    recall_requested|recall_failed → returned (the bank gave the money back anyway)
    checking|pending_approval|approved → held (an incident froze it)
    approved|unknown → held (hold_kind "freeze": the receiving customer or the destination account is
               frozen at submission, or at a resend the bank said is safe) → approved (every freeze
               holding it was lifted: released automatically, submitted on the normal path)
    created|checking|pending_approval|approved|held|failed → cancelled

The outbound part (approved → submitted … failed, held by a freeze) is the kernel's
(apps.transfers.models); transition methods only declare; `apps.payouts.services` and the kernel
lock, transition, save and record.
Request ids sent to a channel are "<kind>:<id>:submit" for the life of the row: a retry, a resend
after a timeout and a failover to another channel all reuse it, and the bank dedupes on it.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django_fsm import FSMField

from apps.accounts.models import BankAccount, Customer, Merchant
from apps.common.dbguards import append_only
from apps.transfers.models import OutboundTransfer, Party, TransferEvent

__all__ = ["Approval", "Disbursement", "DisbursementEvent", "Incident", "IncidentStep", "Kind", "Party"]


class Kind(models.TextChoices):
    PAYOUT = "payout", "Payout (merchant settlement)"
    WITHDRAWAL = "withdrawal", "Withdrawal (customer to bank card)"


class Disbursement(OutboundTransfer):
    """Money leaving the platform to a bank account: a payout or a withdrawal (see `kind`)."""

    class HoldKind(models.TextChoices):
        REVIEW = "review", "Review (a person releases it)"
        FREEZE = "freeze", "Freeze (released when the freezes are lifted)"

    class Status(models.TextChoices):
        CREATED = "created", "Created"
        CHECKING = "checking", "Running pre-checks"
        PENDING_APPROVAL = "pending_approval", "Waiting for approval"
        APPROVED = "approved", "Approved"
        HELD = "held", "Held"
        SUBMITTED = "submitted", "Submitted to bank"
        PROCESSING = "processing", "Bank processing"
        UNKNOWN = "unknown", "Outcome unknown (querying bank)"
        PAID = "paid", "Paid"
        FAILED = "failed", "Failed"
        RETURNED = "returned", "Returned by bank"
        CANCELLED = "cancelled", "Cancelled"
        RECALL_REQUESTED = "recall_requested", "Recall requested"
        RECALLED = "recalled", "Recalled"
        RECALL_FAILED = "recall_failed", "Recall failed"

    # Approved or waiting, not yet posted to the ledger: counted against the source balance.
    RESERVED_UNPOSTED = (Status.PENDING_APPROVAL, Status.APPROVED, Status.HELD)
    # Everything that has not been given up: counted for daily limits, frequency and duplicates.
    LIVE = (
        Status.CHECKING,
        Status.PENDING_APPROVAL,
        Status.APPROVED,
        Status.HELD,
        Status.SUBMITTED,
        Status.PROCESSING,
        Status.UNKNOWN,
        Status.PAID,
        Status.RECALL_REQUESTED,
        Status.RECALL_FAILED,
    )

    kind = models.CharField(max_length=16, choices=Kind.choices, db_index=True)
    customer = models.ForeignKey(Customer, null=True, blank=True, on_delete=models.PROTECT, related_name="withdrawals")
    reference = models.CharField(max_length=100, blank=True, help_text="The merchant's settlement reference.")
    # What arrives: `amount` in the payout `currency`.
    # What the ledger is debited: the merchant's payable or the customer's balance in this currency.
    source_amount = models.BigIntegerField(default=0)
    source_currency = models.CharField(max_length=3)
    # FX simulation (empty when the currencies are the same), as decided at the pre-checks: the pair
    # "BASE:QUOTE" and its rate (QUOTE per BASE), where it came from, the rounding rule applied.
    fx_pair = models.CharField(max_length=7, blank=True)
    fx_rate = models.DecimalField(max_digits=24, decimal_places=12, null=True, blank=True)
    fx_rate_source = models.CharField(max_length=100, blank=True)
    fx_rounding = models.CharField(max_length=100, blank=True)
    source_documents = models.JSONField(
        default=list, blank=True, help_text='Settlement lines the amount must equal: [{"reference", "amount"}].'
    )
    destination_account = models.ForeignKey(BankAccount, on_delete=models.PROTECT, related_name="disbursements")
    destination_country = models.CharField(max_length=2)
    destination_currency = models.CharField(max_length=3)
    status = FSMField(default=Status.CREATED, choices=Status.choices, protected=True, db_index=True)
    review_reasons = models.JSONField(default=list, blank=True)
    required_approvals = models.PositiveSmallIntegerField(default=0)
    hold_reason = models.CharField(max_length=200, blank=True)
    hold_kind = models.CharField(max_length=8, choices=HoldKind.choices, default=HoldKind.REVIEW)
    # Recall calls owed and claimed, likewise.
    recall_seq = models.PositiveIntegerField(default=0)
    recall_sent_seq = models.PositiveIntegerField(default=0)
    # True from the in-flight ledger posting until it is settled, released or returned.
    has_funds_in_flight = models.BooleanField(default=False)
    created_by = models.CharField(max_length=150, help_text="Who asked for it (maker): username or API key.")
    paid_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(name="disbursement_amount_positive", condition=Q(amount__gt=0)),
            models.CheckConstraint(name="disbursement_source_amount_not_negative", condition=Q(source_amount__gte=0)),
            models.CheckConstraint(
                name="disbursement_withdrawal_has_customer",
                condition=Q(kind="payout", customer__isnull=True) | Q(kind="withdrawal", customer__isnull=False),
            ),
            models.UniqueConstraint(
                fields=["merchant", "reference"], condition=Q(kind="payout"), name="payout_reference_per_merchant"
            ),
        ]
        indexes = [
            models.Index(fields=["status", "next_poll_at"], name="disbursement_poll_idx"),
            models.Index(fields=["merchant", "kind", "created_at"], name="disbursement_merchant_idx"),
            models.Index(fields=["customer", "created_at"], name="disbursement_customer_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.pk} ({self.status})"

    @property
    def request_id(self) -> str:
        return f"{self.kind}:{self.pk}:submit"

    @property
    def noun(self) -> str:
        return self.kind

    @property
    def transfer_memo(self) -> str:
        return self.reference or f"{self.kind} {self.pk}"

    @property
    def withdrawal_number(self) -> str:
        """The number a customer sees for a withdrawal (messages, the progress page)."""
        return f"W{self.pk:08d}"

    @property
    def is_cross_currency(self) -> bool:
        return self.currency != self.source_currency

    # The kind's own transitions, declared as methods by the kernel (apps.transfers.models): name →
    # (sources, target). Only declarations: the services lock, transition, save and record.
    TRANSITIONS = {
        "start_checks": ([Status.CREATED], Status.CHECKING),
        "request_approval": ([Status.CHECKING], Status.PENDING_APPROVAL),
        "approve_auto": ([Status.CHECKING], Status.APPROVED),
        "fail_checks": ([Status.CHECKING], Status.FAILED),
        "hold": ([Status.CHECKING, Status.PENDING_APPROVAL, Status.APPROVED], Status.HELD),
        "release": ([Status.HELD], Status.PENDING_APPROVAL),
        "approve": ([Status.PENDING_APPROVAL], Status.APPROVED),
        "pay": ([Status.SUBMITTED, Status.PROCESSING, Status.UNKNOWN], Status.PAID),
        "mark_returned": ([Status.PAID, Status.RECALL_REQUESTED, Status.RECALL_FAILED], Status.RETURNED),
        "request_recall": ([Status.PAID, Status.RECALL_FAILED], Status.RECALL_REQUESTED),
        "mark_recalled": ([Status.RECALL_REQUESTED], Status.RECALLED),
        "mark_recall_failed": ([Status.RECALL_REQUESTED], Status.RECALL_FAILED),
        "cancel": (
            [Status.CREATED, Status.CHECKING, Status.PENDING_APPROVAL, Status.APPROVED, Status.HELD, Status.FAILED],
            Status.CANCELLED,
        ),
    }


class _KindManager(models.Manager):
    kind = ""

    def get_queryset(self):
        return super().get_queryset().filter(kind=self.kind)


class _PayoutManager(_KindManager):
    kind = Kind.PAYOUT


class _WithdrawalManager(_KindManager):
    kind = Kind.WITHDRAWAL


class Payout(Disbursement):
    """A merchant settlement: the merchant's payable balance to the merchant's bank account."""

    objects = _PayoutManager()

    class Meta:
        proxy = True

    def __str__(self) -> str:
        return f"payout {self.pk} {self.reference} ({self.status})"


class Withdrawal(Disbursement):
    """A customer's wallet balance to the customer's bank card."""

    objects = _WithdrawalManager()

    class Meta:
        proxy = True

    def __str__(self) -> str:
        return f"withdrawal {self.pk} ({self.status})"


class DisbursementEvent(TransferEvent):
    """One line of a payout's or withdrawal's timeline (apps.transfers.models.TransferEvent)."""

    disbursement = models.ForeignKey(Disbursement, on_delete=models.CASCADE, related_name="events")

    class Meta(TransferEvent.Meta):
        indexes = [models.Index(fields=["disbursement", "created_at"])]


class PrecheckResult(models.Model):
    """The outcome of one named pre-check, run before any money leaves."""

    class Result(models.TextChoices):
        PASSED = "passed", "Passed"
        FAILED = "failed", "Failed (stops the movement)"
        HELD = "held", "Held (a person must look)"
        REVIEW = "review", "Passed, but needs approval"

    disbursement = models.ForeignKey(Disbursement, on_delete=models.CASCADE, related_name="prechecks")
    name = models.CharField(max_length=40)
    result = models.CharField(max_length=8, choices=Result.choices)
    detail = models.JSONField(default=dict, blank=True)
    responsible_party = models.CharField(max_length=16, choices=Party.choices, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("id",)
        constraints = [models.UniqueConstraint(fields=["disbursement", "name"], name="precheck_once_per_disbursement")]

    def __str__(self) -> str:
        return f"{self.disbursement_id}: {self.name} {self.result}"


class Approval(models.Model):
    """One staff approval (checker) of a payout or withdrawal; one per person."""

    disbursement = models.ForeignKey(Disbursement, on_delete=models.CASCADE, related_name="approvals")
    approver = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    note = models.TextField(blank=True, max_length=2000)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("created_at", "id")
        constraints = [models.UniqueConstraint(fields=["disbursement", "approver"], name="approval_once_per_approver")]

    def __str__(self) -> str:
        return f"{self.disbursement_id} approved by {self.approver_id}"


class Incident(models.Model):
    """A payout or withdrawal that went wrong (wrong account, duplicate, fraud) and its recovery:
    freeze, recall, negotiated return, legal escalation. Resolved incidents carry a root cause and a
    category: the case library staff search before handling the next one."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        RECOVERING = "recovering", "Recall requested"
        NEGOTIATING = "negotiating", "Negotiating a return"
        LEGAL = "legal", "Escalated to legal"
        RESOLVED = "resolved", "Resolved"

    class Category(models.TextChoices):
        DUPLICATE_PAYMENT = "duplicate_payment", "Paid twice"
        WRONG_ACCOUNT = "wrong_account", "Paid to the wrong account"
        WRONG_AMOUNT = "wrong_amount", "Wrong amount"
        FRAUD = "fraud", "Fraud"
        BANK_ERROR = "bank_error", "Bank or channel error"
        OPERATOR_ERROR = "operator_error", "Operator error"
        OTHER = "other", "Other"

    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="payout_incidents")
    disbursement = models.ForeignKey(Disbursement, on_delete=models.PROTECT, related_name="incidents")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN, db_index=True)
    summary = models.TextField(max_length=2000)
    category = models.CharField(max_length=24, choices=Category.choices, blank=True)
    root_cause = models.TextField(blank=True, max_length=4000)
    amount_at_risk = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    amount_recovered = models.BigIntegerField(default=0)
    opened_by = models.CharField(max_length=150)
    resolved_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        constraints = [
            models.UniqueConstraint(
                fields=["disbursement"], condition=~Q(status="resolved"), name="incident_one_open_per_disbursement"
            ),
            models.CheckConstraint(
                name="incident_recovered_within_risk",
                condition=Q(amount_recovered__gte=0) & Q(amount_recovered__lte=models.F("amount_at_risk")),
            ),
        ]
        indexes = [models.Index(fields=["merchant", "status", "created_at"], name="incident_merchant_idx")]

    def __str__(self) -> str:
        return f"incident {self.pk} on {self.disbursement_id} ({self.status})"


class IncidentStep(models.Model):
    """One recovery step of an incident, with who did it and their notes (append-only)."""

    class Action(models.TextChoices):
        OPENED = "opened", "Opened"
        FREEZE = "freeze", "Funds and accounts frozen"
        RECALL_REQUESTED = "recall_requested", "Recall requested from the channel"
        RECALL_SUCCEEDED = "recall_succeeded", "Recall succeeded"
        RECALL_FAILED = "recall_failed", "Recall refused"
        NEGOTIATION = "negotiation", "Negotiation with the recipient"
        FUNDS_RETURNED = "funds_returned", "Funds returned by the recipient"
        LEGAL_ESCALATION = "legal_escalation", "Escalated to legal"
        NOTE = "note", "Note"
        RESOLVED = "resolved", "Resolved"

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="steps")
    action = models.CharField(max_length=20, choices=Action.choices)
    actor = models.CharField(max_length=150)
    notes = models.TextField(blank=True, max_length=4000)
    amount = models.BigIntegerField(null=True, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("created_at", "id")
        triggers = [append_only("incident_step")]

    def __str__(self) -> str:
        return f"{self.incident_id}: {self.action} by {self.actor}"
