"""Commission fixtures: a distributor chain, a default plan, orders through `order_create` (so the
`order_captured` signal accrues), and refunds through the real refund services against the
sandbox bank in-process (tests/payouts/conftest `inproc_bank`: real adapter and bank, HTTP
intercepted at the transport), with a movable clock."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from django.db.models import Sum
from django.utils import timezone

from apps.commissions.models import Commission
from apps.commissions.services import commission_plan_create
from apps.ledger.models import LedgerAccount, LedgerEntry
from apps.ledger.services import Line, ledger_account_get_or_create, ledger_post
from apps.orders.services import order_create
from apps.refunds.models import Refund
from apps.refunds.services import refund_request, refund_submit
from tests.factories import CustomerFactory, ProductFactory
from tests.payouts.conftest import (  # noqa: F401 (fixtures)
    HOLDER,
    SETTLE_AFTER,
    clock,
    deliver_webhooks,
    inproc_bank,
    payout_settings,
    sandbox_settings,
)

_numbers = itertools.count(1)


class Chain:
    """buyer → d1 → d2 → d3 (each one's referrer is the next)."""

    def __init__(self, merchant) -> None:
        self.merchant = merchant
        self.d3 = CustomerFactory(merchant=merchant, name="三级", locale="zh-hans")
        self.d2 = CustomerFactory(merchant=merchant, name="Second", referrer=self.d3, locale="en")
        self.d1 = CustomerFactory(merchant=merchant, name="First", referrer=self.d2, locale="en")
        self.buyer = CustomerFactory(merchant=merchant, name=HOLDER, referrer=self.d1, locale="en")


@pytest.fixture
def chain(merchant) -> Chain:
    return Chain(merchant)


@pytest.fixture
def plan(merchant):
    """10 % to the referrer, 5 % to the referrer's referrer (depth 2)."""
    return commission_plan_create(merchant=merchant, levels=[1000, 500])


def buy(merchant, buyer, *, amount: int = 10000, suffix: str = "0000", product=None):
    """A paid order through the order service (capture posting + accrual), paid from an account
    ending in the sandbox `suffix`."""
    n = next(_numbers)
    product = product or ProductFactory(merchant=merchant, price=amount, currency="CNY")
    return order_create(
        merchant=merchant,
        external_id=f"o-{n}",
        customer_external_id=buyer.external_id,
        product_sku=product.sku,
        amount=amount,
        currency="CNY",
        paid_at=timezone.now() - timedelta(minutes=1),
        payment_method="card",
        payer_account={"holder_name": HOLDER, "bank": "ICBC", "account_number": f"62220200{n:04d}{suffix}"},
    )


def refund(order, *, amount: int | None = None) -> Refund:
    return refund_request(
        merchant=order.merchant,
        order_external_id=order.external_id,
        amount=amount or order.amount,
        reason="mistake",
        reason_text="bought twice",
        actor="test",
    )


def bank_runs(refund_: Refund, clock_) -> Refund:
    """Submit an approved refund and let the bank settle it (webhooks delivered)."""
    refund_submit(refund_id=refund_.pk)
    clock_.advance(SETTLE_AFTER)
    deliver_webhooks()
    refund_.refresh_from_db()
    return refund_


def commissions_of(order) -> list[Commission]:
    return list(Commission.objects.filter(order=order).order_by("level"))


def distributor_balance(customer, currency: str = "CNY") -> int:
    """What the platform owes the distributor (a credit balance, shown positive)."""
    row = LedgerAccount.objects.filter(
        owner=f"customer:{customer.pk}", kind=LedgerAccount.Kind.DISTRIBUTOR_BALANCE, currency=currency
    ).values_list("balance", flat=True)
    return -(row.first() or 0)


def merchant_payable(merchant, currency: str = "CNY") -> int:
    row = LedgerAccount.objects.filter(
        owner=f"merchant:{merchant.pk}", kind=LedgerAccount.Kind.MERCHANT_PAYABLE, currency=currency
    ).values_list("balance", flat=True)
    return -(row.first() or 0)


def ledger_sums() -> dict[str, int]:
    return dict(
        LedgerEntry.objects.values_list("currency").annotate(total=Sum("amount")).values_list("currency", "total")
    )


def withdraw(customer, amount: int, currency: str = "CNY") -> None:
    """The distributor takes money out of their balance (as a withdrawal would): balance → cash."""
    balance = ledger_account_get_or_create(
        owner=f"customer:{customer.pk}", kind=LedgerAccount.Kind.DISTRIBUTOR_BALANCE, currency=currency
    )
    cash = ledger_account_get_or_create(owner="platform", kind=LedgerAccount.Kind.CASH_CLEARING, currency=currency)
    ledger_post(
        reference=f"test:withdraw:{next(_numbers)}",
        kind="test_withdraw",
        lines=[Line(balance, amount), Line(cash, -amount)],
    )
