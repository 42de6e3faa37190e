"""Double-entry ledger. Imports no other app: owners are strings such as "merchant:12".

Signs: a positive entry is a debit, a negative one a credit. Every transaction's entries sum to
zero per currency (enforced by the posting service and, on PostgreSQL, by a deferred constraint
trigger). Entries are append-only: corrections are new transactions.
"""

from django.db import models
from django.db.models import Q
from django.utils import timezone


class LedgerAccount(models.Model):
    class Kind(models.TextChoices):
        # Assets (normally debit): money the platform holds at a channel.
        CASH_CLEARING = "cash_clearing", "Cash at channel (clearing)"
        REFUNDS_IN_FLIGHT = "refunds_in_flight", "Refunds sent, not yet confirmed"
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

    def __str__(self) -> str:
        return f"{self.account} {self.amount:+d}"
