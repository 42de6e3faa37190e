"""Accrual on capture (levels, depth, plan override, no self-referral, cycles), maturity after the
settlement period and settlement into the distributor's balance with ledger postings."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.accounts.models import Customer
from apps.commissions.models import Commission, CommissionEvent
from apps.commissions.services import (
    commission_mature,
    commission_plan_create,
    commission_plan_update,
    commission_settle,
)
from apps.ledger.models import LedgerTransaction
from tests.commissions.conftest import buy, commissions_of, distributor_balance, ledger_sums, merchant_payable
from tests.factories import CustomerFactory, ProductFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

S = Commission.Status


def test_order_accrues_two_levels_by_default_plan(merchant, chain, plan):
    order = buy(merchant, chain.buyer, amount=19999)

    rows = commissions_of(order)
    assert [(c.level, c.beneficiary_id, c.amount, c.status) for c in rows] == [
        (1, chain.d1.pk, 1999, S.PENDING),  # floor(19999 × 10 %)
        (2, chain.d2.pk, 999, S.PENDING),  # floor(19999 × 5 %); d3 is beyond depth 2
    ]
    assert list(CommissionEvent.objects.filter(commission__order=order).values_list("code", flat=True)) == [
        "accrued",
        "accrued",
    ]


def test_depth_is_configurable_and_product_plan_overrides_default(merchant, chain, plan):
    product = ProductFactory(merchant=merchant, price=10000)
    commission_plan_create(merchant=merchant, product_sku=product.sku, levels=[2000, 1000, 500], depth=3)
    special = buy(merchant, chain.buyer, amount=10000, product=product)
    normal = buy(merchant, chain.buyer, amount=10000)

    assert [(c.beneficiary_id, c.amount) for c in commissions_of(special)] == [
        (chain.d1.pk, 2000),
        (chain.d2.pk, 1000),
        (chain.d3.pk, 500),
    ]
    assert [c.amount for c in commissions_of(normal)] == [1000, 500]


def test_fixed_plan_never_pays_more_than_the_order(merchant, chain):
    commission_plan_create(merchant=merchant, mode="fixed", levels=[700, 700], currency="CNY")
    order = buy(merchant, chain.buyer, amount=1000)
    assert [c.amount for c in commissions_of(order)] == [700, 300]


def test_no_self_referral_and_cycles_stop_the_walk(merchant, plan):
    a = CustomerFactory(merchant=merchant)
    b = CustomerFactory(merchant=merchant, referrer=a)
    Customer.objects.filter(pk=a.pk).update(referrer=b)  # a ↔ b: a cycle in the tree
    order = buy(merchant, a, amount=10000)  # a's upline is b, whose upline is a: the buyer
    assert [(c.beneficiary_id, c.level) for c in commissions_of(order)] == [(b.pk, 1)]


def test_no_plan_no_commission_and_plan_changes_apply_to_new_orders(merchant, chain):
    assert commissions_of(buy(merchant, chain.buyer)) == []
    plan = commission_plan_create(merchant=merchant, levels=[1000])
    assert [c.amount for c in commissions_of(buy(merchant, chain.buyer, amount=5000))] == [500]
    commission_plan_update(plan=plan, is_active=False)
    assert commissions_of(buy(merchant, chain.buyer)) == []


def test_matures_after_settlement_period_then_settles_into_balance(merchant, chain, plan, settings):
    settings.COMMISSION_SETTLEMENT_DAYS = 7
    order = buy(merchant, chain.buyer, amount=10000)
    payable_before = merchant_payable(merchant)

    assert commission_mature(now=timezone.now() + timedelta(days=6)) == 0
    assert commission_settle() == 0
    assert commission_mature(now=timezone.now() + timedelta(days=7, seconds=1)) == 2
    assert {c.status for c in commissions_of(order)} == {S.AVAILABLE}

    assert commission_settle() == 2
    assert commission_settle() == 0  # twice: nothing more
    assert commission_mature(now=timezone.now() + timedelta(days=30)) == 0
    rows = commissions_of(order)
    assert [(c.status, c.paid_amount) for c in rows] == [(S.PAID, 1000), (S.PAID, 500)]
    assert distributor_balance(chain.d1) == 1000
    assert distributor_balance(chain.d2) == 500
    assert merchant_payable(merchant) == payable_before - 1500
    assert set(ledger_sums().values()) == {0}
    refs = LedgerTransaction.objects.filter(reference__startswith="commission:").values_list("reference", flat=True)
    assert sorted(refs) == sorted(f"commission:{c.pk}:settle" for c in rows)
    assert [e.code for e in rows[0].events.all()] == ["accrued", "available", "paid"]
