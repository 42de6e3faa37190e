"""Double-entry ledger. Imports no other app: owners are strings such as "merchant:12".

Signs: a positive entry is a debit, a negative one a credit. Every transaction's entries sum to
zero per currency (enforced by the posting service and, on PostgreSQL, by a deferred constraint
trigger). Entries are append-only: corrections are new transactions.
"""

from django.db import models
from django.db.models import Q
from django.utils import timezone

from apps.common.dbguards import append_only


class LedgerAccount(models.Model):
    class Kind(models.TextChoices):
        # Assets (normally debit): money the platform holds at a channel.
        CASH_CLEARING = "cash_clearing", "Cash at channel (clearing)"
        REFUNDS_IN_FLIGHT = "refunds_in_flight", "Refunds sent, not yet confirmed"
        PAYOUTS_IN_FLIGHT = "payouts_in_flight", "Payouts and withdrawals sent, not yet confirmed"
        # Currency conversion: one leg per currency, so each posting still balances per currency.
        FX_CLEARING = "fx_clearing", "Currency conversion (clearing)"
        # Liabilities (normally credit): money the platform owes.
        MERCHANT_PAYABLE = "merchant_payable", "Owed to merchant"
        CUSTOMER_BALANCE = "customer_balance", "Customer wallet balance"
        DISTRIBUTOR_BALANCE = "distributor_balance", "Distributor commission balance"
        # Equity / income / expense.
        PLATFORM_FEES = "platform_fees", "Platform fee income"
        LOSSES = "losses", "Losses written off"

    owner = models.CharField(max_length=64, help_text='Who the account belongs to, e.g. "merchant:12" or "platform".')
    kind = models.CharField(max_length=32, choices=Kind.choices)
    currency = models.CharField(max_length=3)
    balance = models.BigIntegerField(
        default=0, help_text="Sum of entries (debit positive), kept by the posting service."
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["owner", "kind", "currency"], name="ledger_account_unique")]

    def __str__(self) -> str:
        return f"{self.owner}/{self.kind}/{self.currency}"


class LedgerTransaction(models.Model):
    reference = models.CharField(max_length=200, unique=True, help_text='Idempotency key, e.g. "order:5:capture".')
    kind = models.CharField(max_length=48)
    description = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        # Reconciliation reads a day's cash movements by posting time.
        indexes = [models.Index(fields=["created_at"], name="ledger_txn_created")]

    def __str__(self) -> str:
        return self.reference


class LedgerEntry(models.Model):
    transaction = models.ForeignKey(LedgerTransaction, on_delete=models.PROTECT, related_name="entries")
    account = models.ForeignKey(LedgerAccount, on_delete=models.PROTECT, related_name="entries")
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)

    class Meta:
        constraints = [models.CheckConstraint(name="ledger_entry_nonzero", condition=~Q(amount=0))]
        indexes = [models.Index(fields=["account", "transaction"])]
        triggers = [append_only("ledger_entry")]

    def __str__(self) -> str:
        return f"{self.account} {self.amount:+d}"


# --- reconciliation against channel statements ----------------------------------------------------
# How lines are matched and what each result means: apps/ledger/reconciliation.py.


class Direction(models.TextChoices):
    """Which way money moved at the channel, seen from the platform's account there."""

    OUT = "out", "Money left the platform"
    IN = "in", "Money came back to the platform"


class StatementLine(models.Model):
    """One line of a channel statement as imported (CSV or pulled). Lines are facts the channel
    reported: never changed; (source, line_id) is unique, so importing a statement twice adds nothing."""

    source = models.CharField(max_length=32, help_text='Statement source, e.g. "sandbox".')
    line_id = models.CharField(max_length=128, help_text="The channel's own id for the line.")
    value_date = models.DateField()
    reference = models.CharField(max_length=200, help_text='Owner reference, e.g. "refund:42".')
    external_reference = models.CharField(
        max_length=200, blank=True, help_text='The reference as the channel wrote it, e.g. "refund:42:1".'
    )
    direction = models.CharField(max_length=3, choices=Direction.choices)
    amount = models.BigIntegerField(help_text="Positive, minor units.")
    currency = models.CharField(max_length=3)
    imported_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "line_id"], name="statement_line_once"),
            models.CheckConstraint(name="statement_line_amount_positive", condition=Q(amount__gt=0)),
        ]
        indexes = [models.Index(fields=["source", "value_date"], name="statement_line_day")]

    def __str__(self) -> str:
        return f"{self.source}:{self.line_id} {self.reference} {self.direction} {self.amount} {self.currency}"


class Reconciliation(models.Model):
    """One run of the matcher for a (date, source). Re-running adds a new version and makes it the
    current one; earlier versions stay for the audit trail. Failed runs are kept, never current."""

    class Status(models.TextChoices):
        CLEAN = "clean", "Everything matched"
        MISMATCHED = "mismatched", "Mismatches found"
        FAILED = "failed", "Statement could not be read"

    date = models.DateField()
    source = models.CharField(max_length=32)
    version = models.PositiveIntegerField()
    is_current = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status.choices)
    severity = models.CharField(max_length=2, blank=True, help_text='Highest item severity: "P0", "P1" or "".')
    amount_tolerance = models.BigIntegerField(help_text="Minor units a matched amount may differ by.")
    date_tolerance_days = models.PositiveSmallIntegerField()
    statement_lines = models.PositiveIntegerField(default=0, help_text="Statement lines dated `date`.")
    platform_records = models.PositiveIntegerField(default=0, help_text="Platform cash movements dated `date`.")
    matched_count = models.PositiveIntegerField(default=0)
    missing_on_platform_count = models.PositiveIntegerField(default=0)
    missing_on_channel_count = models.PositiveIntegerField(default=0)
    amount_mismatch_count = models.PositiveIntegerField(default=0)
    duplicate_count = models.PositiveIntegerField(default=0)
    totals = models.JSONField(
        default=dict, blank=True, help_text='Per currency: {"CNY": {"statement_out", "statement_in", ...}}.'
    )
    error = models.CharField(max_length=500, blank=True)
    actor = models.CharField(max_length=150, blank=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()

    class Meta:
        ordering = ("-date", "source", "-version")
        constraints = [
            models.UniqueConstraint(fields=["date", "source", "version"], name="reconciliation_version_once"),
            models.UniqueConstraint(
                fields=["date", "source"], condition=Q(is_current=True), name="reconciliation_one_current"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.date} {self.source} v{self.version} {self.status}"


class ReconciliationItem(models.Model):
    """One finding of a run: a (reference, direction) and what the statement and the ledger say."""

    class Kind(models.TextChoices):
        MATCHED = "matched", "Matched"
        MISSING_ON_PLATFORM = "missing_on_platform", "On the statement, not in our books"
        MISSING_ON_CHANNEL = "missing_on_channel", "In our books, not on the statement"
        AMOUNT_MISMATCH = "amount_mismatch", "Amount or currency differs"
        DUPLICATE = "duplicate", "Moved or recorded more than once"

    reconciliation = models.ForeignKey(Reconciliation, on_delete=models.CASCADE, related_name="items")
    kind = models.CharField(max_length=24, choices=Kind.choices)
    severity = models.CharField(max_length=2, blank=True)
    reference = models.CharField(max_length=200)
    direction = models.CharField(max_length=3, choices=Direction.choices)
    currency = models.CharField(max_length=16, help_text='"CNY"; "CNY/USD" when the two sides differ.')
    statement_amount = models.BigIntegerField(null=True, blank=True, help_text="Sum of the statement lines.")
    platform_amount = models.BigIntegerField(null=True, blank=True, help_text="Sum of the ledger records.")
    statement_date = models.DateField(null=True, blank=True)
    platform_date = models.DateField(null=True, blank=True)
    line_ids = models.JSONField(default=list, blank=True)
    ledger_references = models.JSONField(default=list, blank=True)
    detail = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ("id",)
        indexes = [models.Index(fields=["reconciliation", "kind"], name="reconciliation_item_kind")]

    def __str__(self) -> str:
        return f"{self.kind} {self.reference} {self.direction}"
