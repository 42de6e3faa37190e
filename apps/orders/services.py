"""Writes for products, refund policies, orders (with their ledger capture) and usage events."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from apps.accounts.models import Customer, Merchant
from apps.accounts.services import bank_account_get_or_create
from apps.common.errors import ConflictError, ServiceError
from apps.ledger.models import LedgerAccount
from apps.ledger.services import Line, ledger_account_get_or_create, ledger_post
from apps.orders.models import Order, Product, RefundPolicy, UsageEvent
from apps.orders.signals import order_captured

logger = logging.getLogger(__name__)

# Merchant clocks drift; a paid_at this far ahead of ours is still accepted as "now".
PAID_AT_CLOCK_SKEW = timedelta(minutes=2)

_POLICY_FIELDS = (
    "unconditional_minutes",
    "conditional_hours",
    "max_progress_pct",
    "lock_on_key_reveal",
    "lock_on_key_activation",
    "lock_on_download",
    "lock_on_any_usage",
)

# What each kind of good checks in the conditional window unless the merchant says otherwise:
# a course its progress, a license key whether it was revealed or activated, a file or template
# whether it was downloaded, a membership whether it was used at all. Physical goods are never
# decided automatically (returns need the item back), so their windows are zero.
_LOCKS_OFF = {"lock_on_key_reveal": False, "lock_on_key_activation": False, "lock_on_download": False}
KIND_POLICY_DEFAULTS: dict[str, dict] = {
    Product.Kind.COURSE: {**_LOCKS_OFF, "max_progress_pct": 10},
    Product.Kind.LICENSE_KEY: {**_LOCKS_OFF, "lock_on_key_reveal": True, "lock_on_key_activation": True},
    Product.Kind.FILE: {**_LOCKS_OFF, "lock_on_download": True},
    Product.Kind.TEMPLATE: {**_LOCKS_OFF, "lock_on_download": True},
    Product.Kind.MEMBERSHIP: {**_LOCKS_OFF, "lock_on_any_usage": True},
    Product.Kind.PHYSICAL: {**_LOCKS_OFF, "unconditional_minutes": 0, "conditional_hours": 0},
}


def _policy_validate(policy: dict) -> None:
    minutes = policy.get("unconditional_minutes")
    hours = policy.get("conditional_hours")
    if minutes is not None and hours is not None and minutes > hours * 60:
        raise ServiceError(
            _("The unconditional window cannot be longer than the conditional window."),
            fields={"refund_policy.unconditional_minutes": [_("Longer than conditional_hours.")]},
        )


@transaction.atomic
def product_create(
    *, merchant: Merchant, sku: str, name: str, kind: str, price: int, currency: str, refund_policy: dict | None = None
) -> Product:
    """Add a product with its refund policy; sku unique per merchant.

    Fields the merchant leaves out take the kind's defaults (KIND_POLICY_DEFAULTS), then the
    model's (15 min unconditional, 24 h conditional, 10 % progress).
    """
    policy = {**KIND_POLICY_DEFAULTS.get(kind, {}), **(refund_policy or {})}
    _policy_validate({f: policy.get(f, RefundPolicy._meta.get_field(f).default) for f in _POLICY_FIELDS})
    try:
        with transaction.atomic():
            product = Product.objects.create(
                merchant=merchant, sku=sku, name=name, kind=kind, price=price, currency=currency
            )
    except IntegrityError:
        raise ConflictError(
            _("A product with this sku already exists."), code="duplicate_sku", fields={"sku": [_("Already exists.")]}
        ) from None
    RefundPolicy.objects.create(product=product, **policy)
    return product


@transaction.atomic
def product_update(*, product: Product, refund_policy: dict | None = None, **changes) -> Product:
    """Rename, reprice or change the refund policy of a product (orders keep their captured amount)."""
    allowed = {"name", "price", "is_active"}
    if set(changes) - allowed:
        bad = sorted(set(changes) - allowed)
        raise ServiceError(_("These fields cannot be changed."), fields={f: [_("Cannot be changed.")] for f in bad})
    for field, value in changes.items():
        setattr(product, field, value)
    if changes:
        product.save(update_fields=list(changes))
    if refund_policy:
        policy = RefundPolicy.objects.select_for_update().get(product=product)
        merged = {f: refund_policy.get(f, getattr(policy, f)) for f in _POLICY_FIELDS}
        _policy_validate(merged)
        for field, value in refund_policy.items():
            setattr(policy, field, value)
        policy.save(update_fields=list(refund_policy))
    return product


def order_capture_lines(*, order: Order) -> list[Line]:
    """Capture: the platform holds the customer's money (debit cash) and owes it to the merchant."""
    cash = ledger_account_get_or_create(
        owner="platform", kind=LedgerAccount.Kind.CASH_CLEARING, currency=order.currency
    )
    payable = ledger_account_get_or_create(
        owner=f"merchant:{order.merchant_id}", kind=LedgerAccount.Kind.MERCHANT_PAYABLE, currency=order.currency
    )
    return [Line(cash, order.amount), Line(payable, -order.amount)]


def order_create(
    *,
    merchant: Merchant,
    external_id: str,
    customer_external_id: str,
    product_sku: str,
    amount: int,
    currency: str,
    paid_at: datetime,
    payment_method: str,
    device_id: str = "",
    ip: str | None = None,
    referrer_external_id: str | None = None,
    payer_account: dict | None = None,
) -> Order:
    """Record a paid order and post its capture to the ledger, in one transaction.

    The referrer defaults to the customer's own referrer (the distributor tree). `paid_at` may
    not lie in the future beyond `PAID_AT_CLOCK_SKEW`. A repeated `external_id` is a 409.
    """
    errors: dict[str, list[str]] = {}
    # Checked here, not left to the amount > 0 constraint: its IntegrityError would read as a duplicate.
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        errors["amount"] = [_("Must be a positive integer number of minor units.")]
    customer = Customer.objects.filter(merchant=merchant, external_id=customer_external_id).first()
    if customer is None:
        errors["customer"] = [_("No customer with this external_id.")]
    product = Product.objects.filter(merchant=merchant, sku=product_sku).first()
    if product is None:
        errors["product"] = [_("No product with this sku.")]
    elif product.currency != currency:
        errors["currency"] = [
            format_lazy(_("Must match the product's currency ({currency})."), currency=product.currency)
        ]
    if paid_at > timezone.now() + PAID_AT_CLOCK_SKEW:
        errors["paid_at"] = [_("Cannot be in the future.")]
    referrer = None
    if referrer_external_id:
        referrer = Customer.objects.filter(merchant=merchant, external_id=referrer_external_id).first()
        if referrer is None:
            errors["referrer"] = [_("No customer with this external_id.")]
        elif customer is not None and referrer.pk == customer.pk:
            errors["referrer"] = [_("A customer cannot refer their own order.")]
    elif customer is not None:
        referrer = customer.referrer
    if errors:
        raise ServiceError(_("Some fields are invalid."), fields=errors)

    try:
        with transaction.atomic():
            account = None
            if payer_account:
                account = bank_account_get_or_create(merchant=merchant, customer=customer, **payer_account)
            order = Order.objects.create(
                merchant=merchant,
                external_id=external_id,
                customer=customer,
                product=product,
                amount=amount,
                currency=currency,
                paid_at=paid_at,
                payment_method=payment_method,
                device_id=device_id,
                ip=ip or None,
                referrer=referrer,
                payer_account=account,
            )
            ledger_post(
                reference=f"order:{order.pk}:capture",
                kind="order_capture",
                lines=order_capture_lines(order=order),
                description=f"capture of order {external_id}",
            )
            order_captured.send(sender=Order, order=order)
    except IntegrityError:
        raise ConflictError(
            _("An order with this external_id already exists."),
            code="duplicate_external_id",
            fields={"external_id": [_("Already exists.")]},
        ) from None
    logger.info("order captured order=%s merchant=%s amount=%s %s", order.pk, merchant.pk, amount, currency)
    return order


def usage_record(
    *, order: Order, kind: str, value: int | None = None, occurred_at: datetime | None = None
) -> UsageEvent:
    """Store one usage fact of an order (progress %, key revealed/activated, download)."""
    occurred_at = occurred_at or timezone.now()
    if kind == UsageEvent.Kind.PROGRESS:
        if value is None:
            raise ServiceError(_("Progress needs a value."), fields={"value": [_("Required for progress (0–100).")]})
    elif value is not None:
        raise ServiceError(_("Only progress carries a value."), fields={"value": [_("Only allowed for progress.")]})
    if occurred_at > timezone.now() + PAID_AT_CLOCK_SKEW:
        raise ServiceError(_("Cannot be in the future."), fields={"occurred_at": [_("Cannot be in the future.")]})
    # Added to occurred_at (bounded above just before) rather than subtracted from paid_at, which
    # overflows for an order paid at datetime.min.
    if occurred_at + PAID_AT_CLOCK_SKEW < order.paid_at:
        raise ServiceError(
            _("Usage cannot precede payment."), fields={"occurred_at": [_("Before the order was paid.")]}
        )
    return UsageEvent.objects.create(order=order, kind=kind, value=value, occurred_at=occurred_at)
