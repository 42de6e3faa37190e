from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from apps.common.crypto import decrypt, mask_account_number
from apps.common.fields import validate_path_segment


class Locale(models.TextChoices):
    ZH_HANS = "zh-hans", "简体中文"
    EN = "en", "English"


class Merchant(models.Model):
    """A tenant: every business object belongs to exactly one merchant."""

    name = models.CharField(max_length=200)
    is_active = models.BooleanField(default=True)
    default_locale = models.CharField(max_length=8, choices=Locale.choices, default=Locale.ZH_HANS)
    # Optional live usage source asked during refund decisions (see apps.orders.usage).
    usage_provider_url = models.URLField(blank=True)
    usage_provider_timeout_ms = models.PositiveIntegerField(default=800)
    # Requests per minute each of its API keys may make; empty: RATE_LIMITS["api_key"] (settings).
    api_rate_per_minute = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Requests per minute allowed to each API key of this merchant. Empty: the platform default.",
    )
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.name


class User(AbstractUser):
    """Staff: platform operators (no merchant, `is_staff`) or a merchant's staff with one role."""

    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        OPERATOR = "operator", "Operator"
        REVIEWER = "reviewer", "Reviewer"
        FINANCE = "finance", "Finance"

    merchant = models.ForeignKey(Merchant, null=True, blank=True, on_delete=models.PROTECT, related_name="staff")
    role = models.CharField(max_length=16, choices=Role.choices, blank=True)
    phone = models.CharField(max_length=32, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                name="user_role_iff_merchant",
                condition=(Q(merchant__isnull=True) & Q(role="")) | (Q(merchant__isnull=False) & ~Q(role="")),
            )
        ]


class ApiKey(models.Model):
    """A merchant's API credential. Only a SHA-256 of the key is stored; `prefix` identifies it."""

    merchant = models.ForeignKey(Merchant, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, default="default")
    prefix = models.CharField(max_length=16)
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.merchant})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class Customer(models.Model):
    """A merchant's end customer. `external_id` is the merchant's own id, unique per merchant."""

    class TrustLevel(models.TextChoices):
        AUTO = "auto", "From history"
        TRUSTED = "trusted", "Trusted (set by staff)"
        WATCH = "watch", "Watch (set by staff)"

    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="customers")
    external_id = models.CharField(max_length=100, validators=[validate_path_segment])
    name = models.CharField(max_length=200)
    phone = models.CharField(max_length=32, blank=True)
    email = models.EmailField(max_length=254, blank=True)
    locale = models.CharField(max_length=8, choices=Locale.choices, default=Locale.ZH_HANS)
    referrer = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="referrals")
    # Trust inputs the merchant knows and RefundGuard cannot observe itself.
    registered_at = models.DateTimeField(default=timezone.now)
    trust_level = models.CharField(max_length=16, choices=TrustLevel.choices, default=TrustLevel.AUTO)
    chargeback_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["merchant", "external_id"], name="customer_external_id_per_merchant")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.external_id})"


class BankAccount(models.Model):
    """A destination or source account: a payee, i.e. a number *with* the holder name and bank it
    was named under. The number is encrypted; screens show only `**** 1234`.

    The same number named under another holder name or bank is another record (RELIABILITY G18):
    a record's name is the one a request named and is never replaced by a later request's, so
    what was sent to a payee and what is shown for it always agree. Records of one number and owner
    share a fingerprint (freezes, risk features and limits match on it)."""

    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="bank_accounts")
    customer = models.ForeignKey(
        Customer, null=True, blank=True, on_delete=models.PROTECT, related_name="bank_accounts"
    )
    holder_name = models.CharField(max_length=200)
    bank = models.CharField(max_length=100)
    number_encrypted = models.TextField(editable=False)
    last4 = models.CharField(max_length=4, editable=False)
    fingerprint = models.CharField(max_length=64, db_index=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    # When a channel confirmed that this number belongs to this holder (None: not asked yet).
    verified_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        # One record per owner and payee; two constraints because NULLs never collide in a unique
        # index (a merchant's own accounts have no customer).
        constraints = [
            models.UniqueConstraint(
                fields=["merchant", "customer", "fingerprint", "holder_name", "bank"],
                condition=Q(customer__isnull=False),
                name="bank_account_once_per_customer_payee",
            ),
            models.UniqueConstraint(
                fields=["merchant", "fingerprint", "holder_name", "bank"],
                condition=Q(customer__isnull=True),
                name="bank_account_once_per_merchant_payee",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.bank} {self.masked_number} ({self.holder_name})"

    @property
    def masked_number(self) -> str:
        return mask_account_number(self.last4)

    def reveal_number(self) -> str:
        """The full number, for a channel adapter's request body only — never for display or logs."""
        return decrypt(self.number_encrypted)


class AccountFreeze(models.Model):
    """A customer or bank account frozen (by staff or the risk engine) until lifted, with reasons."""

    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="freezes")
    customer = models.ForeignKey(Customer, null=True, blank=True, on_delete=models.PROTECT, related_name="freezes")
    bank_account = models.ForeignKey(
        BankAccount, null=True, blank=True, on_delete=models.PROTECT, related_name="freezes"
    )
    reason = models.CharField(max_length=500)
    actor = models.ForeignKey(User, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    actor_label = models.CharField(max_length=100, help_text="Who froze it when not a person, e.g. a risk rule.")
    created_at = models.DateTimeField(default=timezone.now)
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    lift_reason = models.CharField(max_length=500, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                name="freeze_has_subject",
                condition=Q(customer__isnull=False) | Q(bank_account__isnull=False),
            )
        ]
        indexes = [models.Index(fields=["customer", "lifted_at"]), models.Index(fields=["bank_account", "lifted_at"])]

    def __str__(self) -> str:
        subject = self.customer or self.bank_account
        return f"freeze of {subject}: {self.reason}"

    @property
    def is_active(self) -> bool:
        return self.lifted_at is None
