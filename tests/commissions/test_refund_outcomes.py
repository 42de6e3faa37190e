"""Freeze on refund request, clawback on success (unpaid, paid, short balance → debt → offset),
release on rejection, cancellation and final failure — through the real refund services and the
sandbox bank — plus proportional partial refunds, duplicate signals and the distributors' messages."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import Customer
from apps.commissions.models import Commission, CommissionDebt, CommissionEvent
from apps.commissions.services import commission_mature, commission_settle
from apps.ledger.models import LedgerTransaction
from apps.notifications.models import Notification
from apps.refunds.models import Refund
from apps.refunds.services import refund_cancel, refund_review
from apps.refunds.signals import refund_event_recorded
from tests.commissions.conftest import (
    bank_runs,
    buy,
    commissions_of,
    distributor_balance,
    ledger_sums,
    merchant_payable,
    refund,
    withdraw,
)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

S = Commission.Status
R = Refund.Status


def settle_all() -> None:
    commission_mature(now=timezone.now() + timedelta(days=8))
    commission_settle()


def templates_for(commission: Commission) -> list[str]:
    rows = Notification.objects.filter(subject_type="commission", subject_id=commission.pk)
    return sorted(set(rows.values_list("template_key", flat=True)))


def test_full_refund_of_unpaid_commission_freezes_then_voids(merchant, chain, plan, inproc_bank, clock):
    order = buy(merchant, chain.buyer, amount=10000)
    r = refund(order)
    assert r.status == R.APPROVED
    assert [(c.status, c.status_before_freeze) for c in commissions_of(order)] == [(S.FROZEN, S.PENDING)] * 2

    r = bank_runs(r, clock)
    assert r.status == R.SUCCEEDED
    rows = commissions_of(order)
    assert [(c.status, c.clawed_back_amount) for c in rows] == [(S.VOID, 1000), (S.VOID, 500)]
    assert not LedgerTransaction.objects.filter(reference__startswith="commission:").exists()  # nothing was paid
    assert templates_for(rows[0]) == ["commission_clawed_back", "commission_frozen"]
    assert [e.code for e in rows[0].events.all()] == ["accrued", "frozen", "clawed_back"]
    assert rows[0].events.get(code="clawed_back").refund_id == r.pk
    settle_all()
    assert distributor_balance(chain.d1) == 0


def test_full_refund_after_payment_takes_it_back_from_the_balance(merchant, chain, plan, inproc_bank, clock):
    order = buy(merchant, chain.buyer, amount=10000)
    settle_all()
    payable_after_settle = merchant_payable(merchant)
    assert distributor_balance(chain.d1) == 1000

    r = refund(order)
    assert {c.status for c in commissions_of(order)} == {S.FROZEN}
    bank_runs(r, clock)

    rows = commissions_of(order)
    assert [(c.status, c.clawed_back_amount, c.paid_amount) for c in rows] == [
        (S.CLAWED_BACK, 1000, 1000),
        (S.CLAWED_BACK, 500, 500),
    ]
    assert distributor_balance(chain.d1) == 0
    assert distributor_balance(chain.d2) == 0
    # the merchant got its 1 500 of commission back, and paid the 10 000 refund
    assert merchant_payable(merchant) == payable_after_settle + 1500 - 10000
    assert set(ledger_sums().values()) == {0}
    assert not CommissionDebt.objects.exists()


def test_short_balance_becomes_debt_offset_against_next_settlement(merchant, chain, plan, inproc_bank, clock):
    order = buy(merchant, chain.buyer, amount=10000)
    settle_all()
    withdraw(chain.d1, 600)  # d1 took 600 of their 1 000 out
    assert distributor_balance(chain.d1) == 400

    bank_runs(refund(order), clock)
    debt = CommissionDebt.objects.get(beneficiary=chain.d1)
    assert (debt.amount, debt.recovered_amount) == (600, 0)
    assert distributor_balance(chain.d1) == 0
    clawed = commissions_of(order)[0]
    assert clawed.status == S.CLAWED_BACK
    event = clawed.events.get(code="clawed_back")
    assert (event.amount, event.detail["recovered"], event.detail["debt"]) == (1000, 400, 600)

    second = buy(merchant, chain.buyer, amount=8000)  # d1 earns 800 more
    settle_all()
    debt.refresh_from_db()
    assert (debt.recovered_amount, debt.settled_at is not None) == (600, True)
    assert distributor_balance(chain.d1) == 200  # 800 − 600 owed
    first = commissions_of(second)[0]
    assert [e.code for e in first.events.all()][-2:] == ["paid", "debt_offset"]
    assert set(ledger_sums().values()) == {0}


def test_needs_action_keeps_frozen_then_cancel_releases(merchant, chain, plan, inproc_bank, clock):
    order = buy(merchant, chain.buyer, amount=10000, suffix="0002")
    settle_all()  # paid first: the release must restore `paid`
    r = bank_runs(refund(order), clock)
    assert r.status == R.NEEDS_ACTION
    assert {c.status for c in commissions_of(order)} == {S.FROZEN}  # not final: the customer may fix it

    refund_cancel(refund_id=r.pk, actor="customer")
    rows = commissions_of(order)
    assert [(c.status, c.clawed_back_amount) for c in rows] == [(S.PAID, 0), (S.PAID, 0)]
    assert templates_for(rows[0]) == ["commission_frozen", "commission_released"]
    assert distributor_balance(chain.d1) == 1000


def test_rejected_in_review_releases(merchant, chain, plan, inproc_bank, clock):
    Customer.objects.filter(pk=chain.buyer.pk).update(trust_level=Customer.TrustLevel.WATCH)
    order = buy(merchant, chain.buyer, amount=10000)
    r = refund(order)
    assert r.status == R.MANUAL_REVIEW
    assert {c.status for c in commissions_of(order)} == {S.FROZEN}
    refund_review(refund_id=r.pk, approve=False, actor="reviewer")
    assert {c.status for c in commissions_of(order)} == {S.PENDING}
    assert [e.code for e in commissions_of(order)[0].events.all()] == ["accrued", "frozen", "released"]


def test_release_waits_for_every_live_refund_of_the_order(merchant, chain, plan, inproc_bank, clock):
    order = buy(merchant, chain.buyer, amount=10000)
    first, second = refund(order, amount=4000), refund(order, amount=3000)
    refund_cancel(refund_id=first.pk, actor="customer")
    assert {c.status for c in commissions_of(order)} == {S.FROZEN}  # the second is still live
    refund_cancel(refund_id=second.pk, actor="customer")
    assert {c.status for c in commissions_of(order)} == {S.PENDING}


def test_two_partial_refunds_claw_back_exactly_the_commission(merchant, chain, inproc_bank, clock):
    from apps.commissions.services import commission_plan_create

    commission_plan_create(merchant=merchant, levels=[1333, 777])
    order = buy(merchant, chain.buyer, amount=9999)
    amounts = [c.amount for c in commissions_of(order)]
    assert amounts == [1332, 776]

    bank_runs(refund(order, amount=3333), clock)
    rows = commissions_of(order)
    # floor(1332 × 3333 / 9999) = 444, floor(776 × 3333 / 9999) = 258; the rest is released
    assert [(c.status, c.clawed_back_amount) for c in rows] == [(S.PENDING, 444), (S.PENDING, 258)]

    bank_runs(refund(order, amount=6666), clock)
    rows = commissions_of(order)
    assert [(c.status, c.clawed_back_amount) for c in rows] == [(S.VOID, 1332), (S.VOID, 776)]
    steps = CommissionEvent.objects.filter(commission=rows[0], code="clawed_back").values_list("amount", flat=True)
    assert sorted(steps) == [444, 888]


def test_duplicate_refund_signals_change_nothing_twice(merchant, chain, plan, inproc_bank, clock):
    order = buy(merchant, chain.buyer, amount=10000)
    settle_all()
    r = bank_runs(refund(order), clock)

    def snapshot():
        return (
            CommissionEvent.objects.count(),
            LedgerTransaction.objects.count(),
            Notification.objects.count(),
            CommissionDebt.objects.count(),
            [(c.status, c.clawed_back_amount) for c in commissions_of(order)],
        )

    before = snapshot()
    for event in r.events.all():
        with transaction.atomic():
            refund_event_recorded.send(
                sender=Refund, refund=Refund.objects.select_for_update().get(pk=r.pk), event=event
            )
            refund_event_recorded.send(sender=Refund, refund=Refund.objects.get(pk=r.pk), event=event)
    assert snapshot() == before
