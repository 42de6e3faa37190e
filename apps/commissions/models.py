"""Distributor commissions: plans, accrued commissions with their state machine, their audit trail,
and the debts left when a clawback exceeds a distributor's balance.

State machine: pending → available (settlement period over) → paid (settled into the distributor's
balance); pending | available | paid → frozen (a refund of the order is live) → back to the status
it had (`status_before_freeze`), or → void (fully clawed back, nothing had been paid) or
clawed_back (fully clawed back after it was paid). A partial clawback leaves the commission in its
status with a larger `clawed_back_amount`.

Transition methods only declare; `apps.commissions.services` locks, transitions, saves and records.
"""

from __future__ import annotations

from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django_fsm import RETURN_VALUE, FSMField, FSMModelMixin, transition

from apps.accounts.models import Customer, Merchant
from apps.common.dbguards import append_only
from apps.orders.models import Order, Product


class CommissionPlan(models.Model):
    """What a merchant pays its distributors per order: one value per level of the referral chain.

    A plan for a product overrides the merchant's default plan (the one without a product). In
    `percent` mode each level is in basis points of the order amount (1000 = 10 %); in `fixed` mode
    it is minor units of the plan's currency.
    """

    class Mode(models.TextChoices):
        PERCENT = "percent", "Basis points of the order amount"
        FIXED = "fixed", "Fixed amount (minor units)"

    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="commission_plans")
    product = models.ForeignKey(
        Product, null=True, blank=True, on_delete=models.PROTECT, related_name="commission_plans"
    )
    name = models.CharField(max_length=100, blank=True)
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.PERCENT)
    levels = models.JSONField(default=list, help_text="Per level, nearest upline first: [1000, 500].")
    depth = models.PositiveSmallIntegerField(default=2, help_text="How many uplines earn (1–10).")
    currency = models.CharField(max_length=3, blank=True, help_text="Required for fixed plans.")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["merchant", "product"], name="commission_plan_per_product", condition=Q(product__isnull=False)
            ),
            models.UniqueConstraint(
                fields=["merchant"], name="commission_plan_default_per_merchant", condition=Q(product__isnull=True)
            ),
            models.CheckConstraint(name="commission_plan_depth_range", condition=Q(depth__gte=1, depth__lte=10)),
        ]

    def __str__(self) -> str:
        target = self.product.sku if self.product_id else "default"
        return f"plan {self.pk} ({target}, {self.mode} {self.levels})"


class Commission(FSMModelMixin, models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending (settlement period)"
        AVAILABLE = "available", "Available (to be settled)"
        PAID = "paid", "Paid into the distributor's balance"
        FROZEN = "frozen", "Frozen (refund in progress)"
        CLAWED_BACK = "clawed_back", "Clawed back after payment"
        VOID = "void", "Void (refunded before payment)"

    FREEZABLE = (Status.PENDING, Status.AVAILABLE, Status.PAID)

    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="commissions")
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="commissions")
    beneficiary = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="commissions")
    plan = models.ForeignKey(CommissionPlan, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    level = models.PositiveSmallIntegerField()
    amount = models.BigIntegerField(help_text="Accrued, minor units; never changes.")
    currency = models.CharField(max_length=3)
    clawed_back_amount = models.BigIntegerField(default=0)
    paid_amount = models.BigIntegerField(default=0, help_text="Credited to the distributor at settlement.")
    status = FSMField(default=Status.PENDING, choices=Status.choices, protected=True, db_index=True)
    status_before_freeze = models.CharField(max_length=16, blank=True)
    available_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["order", "beneficiary", "level"], name="commission_once_per_level"),
            models.CheckConstraint(name="commission_amount_positive", condition=Q(amount__gt=0)),
            models.CheckConstraint(
                name="commission_clawback_within_amount",
                condition=Q(clawed_back_amount__gte=0, clawed_back_amount__lte=F("amount")),
            ),
            models.CheckConstraint(
                name="commission_paid_within_amount", condition=Q(paid_amount__gte=0, paid_amount__lte=F("amount"))
            ),
        ]
        indexes = [
            models.Index(fields=["status", "created_at"], name="commission_status_idx"),
            models.Index(fields=["beneficiary", "status"], name="commission_beneficiary_idx"),
        ]

    def __str__(self) -> str:
        return f"commission {self.pk} L{self.level} on {self.order_id} ({self.status})"

    @property
    def outstanding(self) -> int:
        """What is neither clawed back nor paid out yet (minor units)."""
        if self.paid_at is not None or self.status in (self.Status.VOID, self.Status.CLAWED_BACK):
            return 0
        return self.amount - self.clawed_back_amount

    # --- transitions: declarations only --------------------------------------------------------
    @transition(field=status, source=Status.PENDING, target=Status.AVAILABLE)
    def mature(self): ...

    @transition(field=status, source=Status.AVAILABLE, target=Status.PAID)
    def pay(self): ...

    @transition(field=status, source=FREEZABLE, target=Status.FROZEN)
    def freeze(self): ...

    @transition(field=status, source=Status.FROZEN, target=RETURN_VALUE(*FREEZABLE))
    def release(self):
        return self.status_before_freeze

    @transition(field=status, source=Status.FROZEN, target=Status.VOID)
    def void(self): ...

    @transition(field=status, source=Status.FROZEN, target=Status.CLAWED_BACK)
    def claw_back(self): ...


class CommissionEvent(models.Model):
    """One line of a commission's statement (append-only). `cause` makes each change happen once:
    e.g. "refund:12:frozen" or "refund:12:clawback" — a repeated signal finds its row and stops."""

    commission = models.ForeignKey(Commission, on_delete=models.PROTECT, related_name="events")
    code = models.CharField(max_length=32)
    from_status = models.CharField(max_length=16, blank=True)
    to_status = models.CharField(max_length=16, blank=True)
    amount = models.BigIntegerField(default=0, help_text="Money this change moved, minor units.")
    reason = models.CharField(max_length=300, blank=True)
    refund_id = models.BigIntegerField(null=True, blank=True)
    cause = models.CharField(max_length=100, blank=True)
    actor = models.CharField(max_length=100)
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("created_at", "id")
        constraints = [
            models.UniqueConstraint(
                fields=["commission", "cause"], name="commission_event_once_per_cause", condition=~Q(cause="")
            )
        ]
        indexes = [models.Index(fields=["commission", "created_at"])]
        triggers = [append_only("commission_event")]

    def __str__(self) -> str:
        return f"{self.commission_id}: {self.code} ({self.from_status}→{self.to_status})"


class CommissionDebt(models.Model):
    """What a distributor owes back when a clawback of paid commission exceeded their balance.

    Recovered from their next settlements (`recovered_amount` grows) — never written off silently.
    """

    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="commission_debts")
    beneficiary = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="commission_debts")
    commission = models.ForeignKey(Commission, on_delete=models.PROTECT, related_name="debts")
    refund_id = models.BigIntegerField(null=True, blank=True)
    amount = models.BigIntegerField()
    recovered_amount = models.BigIntegerField(default=0)
    currency = models.CharField(max_length=3)
    created_at = models.DateTimeField(default=timezone.now)
    settled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(name="commission_debt_positive", condition=Q(amount__gt=0)),
            models.CheckConstraint(
                name="commission_debt_recovered_within",
                condition=Q(recovered_amount__gte=0, recovered_amount__lte=F("amount")),
            ),
        ]
        indexes = [models.Index(fields=["beneficiary", "currency", "settled_at"], name="commission_debt_open_idx")]

    def __str__(self) -> str:
        return f"debt {self.pk} of {self.beneficiary_id}: {self.open_amount}/{self.amount} {self.currency}"

    @property
    def open_amount(self) -> int:
        return self.amount - self.recovered_amount
