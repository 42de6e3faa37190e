from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from apps.accounts.models import BankAccount, Customer, Merchant
from apps.common.fields import validate_path_segment


class Product(models.Model):
    class Kind(models.TextChoices):
        PHYSICAL = "physical", "Physical goods"
        COURSE = "course", "Online course"
        LICENSE_KEY = "license_key", "License key"
        MEMBERSHIP = "membership", "Membership"
        FILE = "file", "Downloadable file"
        TEMPLATE = "template", "Design template"

    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="products")
    sku = models.CharField(max_length=100, validators=[validate_path_segment])
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    price = models.BigIntegerField(help_text="Minor units.")
    currency = models.CharField(max_length=3)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["merchant", "sku"], name="product_sku_per_merchant"),
            models.CheckConstraint(name="product_price_positive", condition=Q(price__gt=0)),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.sku})"


class RefundPolicy(models.Model):
    """The self-service refund rules a customer sees before buying (defaults from DESIGN.md)."""

    product = models.OneToOneField(Product, on_delete=models.CASCADE, related_name="refund_policy")
    unconditional_minutes = models.PositiveIntegerField(default=15, validators=[MaxValueValidator(7 * 24 * 60)])
    conditional_hours = models.PositiveIntegerField(default=24, validators=[MaxValueValidator(365 * 24)])
    max_progress_pct = models.PositiveSmallIntegerField(
        default=10, validators=[MinValueValidator(0), MaxValueValidator(100)]
    )
    lock_on_key_reveal = models.BooleanField(default=True)
    lock_on_key_activation = models.BooleanField(default=True)
    lock_on_download = models.BooleanField(default=True)
    # Memberships: any recorded use at all closes self-service refunds.
    lock_on_any_usage = models.BooleanField(default=False)

    class Meta:
        verbose_name_plural = "refund policies"

    def __str__(self) -> str:
        return f"policy of {self.product}"


class Order(models.Model):
    class PaymentMethod(models.TextChoices):
        CARD = "card", "Bank card"
        BANK_TRANSFER = "bank_transfer", "Bank transfer"
        WALLET = "wallet", "Wallet"
        BALANCE = "balance", "Account balance"

    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="orders")
    external_id = models.CharField(max_length=100, validators=[validate_path_segment])
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="orders")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="orders")
    amount = models.BigIntegerField(help_text="Captured amount, minor units.")
    currency = models.CharField(max_length=3)
    paid_at = models.DateTimeField()
    payment_method = models.CharField(max_length=16, choices=PaymentMethod.choices)
    device_id = models.CharField(max_length=100, blank=True, db_index=True)
    ip = models.GenericIPAddressField(null=True, blank=True, db_index=True)
    referrer = models.ForeignKey(
        Customer, null=True, blank=True, on_delete=models.PROTECT, related_name="referred_orders"
    )
    payer_account = models.ForeignKey(
        BankAccount, null=True, blank=True, on_delete=models.PROTECT, related_name="orders"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["merchant", "external_id"], name="order_external_id_per_merchant"),
            models.CheckConstraint(name="order_amount_positive", condition=Q(amount__gt=0)),
        ]
        indexes = [
            models.Index(fields=["customer", "paid_at"]),
            models.Index(fields=["product", "paid_at"]),
            # Merchant-wide order counts per window (risk baselines, current refund rate).
            models.Index(fields=["merchant", "paid_at"], name="order_merchant_paid_idx"),
        ]

    def __str__(self) -> str:
        return f"order {self.external_id}"


class UsageEvent(models.Model):
    """Evidence that a virtual good was used; any "locking" event closes self-service refunds."""

    class Kind(models.TextChoices):
        PROGRESS = "progress", "Progress (%)"
        KEY_REVEALED = "key_revealed", "Key revealed"
        KEY_ACTIVATED = "key_activated", "Key activated"
        DOWNLOAD = "download", "Downloaded"

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="usage_events")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    value = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MaxValueValidator(100)], help_text="Progress percent for `progress`."
    )
    occurred_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(
                name="usage_value_only_for_progress",
                condition=(Q(kind="progress") & Q(value__isnull=False) & Q(value__lte=100))
                | (~Q(kind="progress") & Q(value__isnull=True)),
            )
        ]
        indexes = [models.Index(fields=["order", "kind"])]

    def __str__(self) -> str:
        return f"{self.kind}={self.value} on {self.order}" if self.value is not None else f"{self.kind} on {self.order}"
