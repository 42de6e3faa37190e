"""Property (RELIABILITY.md G9): whatever happens in whatever order — orders captured, full and
partial refunds that succeed, fail (0002 → needs action) or are cancelled, reviews, duplicate refund
signals, maturity and settlements, distributors withdrawing their balance — commissions and the
ledger stay consistent, checked after every step:

- per order, each commission is the plan's amount for its level and their sum never exceeds it;
- 0 ≤ clawed back ≤ accrued, and clawed back is exactly the documented proportional target;
- a commission is frozen exactly while a refund of its order is live;
- the ledger balances per currency;
- Σ accrued = Σ paid out net + Σ clawed back + Σ outstanding, to the unit; clawbacks of paid money
  = recovered from balances + debts; distributor balances = paid − recovered − debt offsets − withdrawn.

Real services throughout (order_create → accrual; refund_request / refund_submit / refund_cancel /
refund_review; the sandbox bank in-process with webhooks; commission_mature / commission_settle).
Each example runs in a savepoint that is rolled back. CI runs a small profile (< 60 s); G9 asks for
≥ 1 000 examples × 50 steps: set COMMISSION_PROPERTY_PROFILE=full to run that.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from datetime import timedelta

import pytest
import time_machine
from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from apps.commissions.models import Commission, CommissionDebt, CommissionEvent
from apps.commissions.services import (
    LIVE_REFUND,
    clawback_target,
    commission_mature,
    commission_plan_create,
    commission_settle,
)
from apps.common.errors import ServiceError
from apps.ledger.models import LedgerAccount, LedgerEntry
from apps.orders.models import Order
from apps.refunds.models import Refund
from apps.refunds.services import refund_cancel, refund_review, refund_submit, refundable_remaining
from apps.refunds.signals import refund_event_recorded
from tests.commissions.conftest import SETTLE_AFTER, buy, deliver_webhooks, refund, withdraw
from tests.factories import CustomerFactory, MerchantFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

S = Commission.Status
R = Refund.Status
LEVELS = [1000, 333]
FULL = os.environ.get("COMMISSION_PROPERTY_PROFILE") == "full"
_ids = itertools.count(1)


class CommissionMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self._atomic = transaction.atomic()
        self._atomic.__enter__()
        self._travel = time_machine.travel(timezone.now(), tick=False)
        self._traveller = self._travel.start()
        self.merchant = MerchantFactory()
        top = CustomerFactory(merchant=self.merchant)
        mid = CustomerFactory(merchant=self.merchant, referrer=top)
        self.distributors = [mid, top]
        self.buyers = [CustomerFactory(merchant=self.merchant, referrer=mid) for _ in range(2)]
        commission_plan_create(merchant=self.merchant, levels=LEVELS)
        self.orders: list[Order] = []
        self.refunds: list[int] = []
        self.withdrawn = 0

    def teardown(self) -> None:
        self._travel.stop()
        transaction.set_rollback(True)
        self._atomic.__exit__(None, None, None)

    def _advance(self, seconds: float) -> None:
        self._traveller.shift(timedelta(seconds=seconds))

    # --- rules -------------------------------------------------------------------------------------

    @rule(amount=st.integers(min_value=1, max_value=50_000), buyer=st.integers(0, 1), fails=st.booleans())
    def capture(self, amount, buyer, fails):
        self.orders.append(buy(self.merchant, self.buyers[buyer], amount=amount, suffix="0002" if fails else "0000"))

    @rule(data=st.data(), share=st.sampled_from([1, 2, 3, 10]))
    def request_refund(self, data, share):
        if not self.orders:
            return
        order = data.draw(st.sampled_from(self.orders))
        remaining = refundable_remaining(order=order)
        if remaining <= 0:
            return
        amount = max(1, remaining // share)
        with contextlib.suppress(ServiceError):
            self.refunds.append(refund(order, amount=amount).pk)

    def _pick(self, data, *statuses) -> Refund | None:
        candidates = list(Refund.objects.filter(pk__in=self.refunds, status__in=statuses).order_by("pk"))
        return data.draw(st.sampled_from(candidates)) if candidates else None

    @rule(data=st.data())
    def submit(self, data):
        if r := self._pick(data, R.APPROVED):
            refund_submit(refund_id=r.pk)

    @rule()
    def bank_settles(self):
        self._advance(SETTLE_AFTER)
        deliver_webhooks()

    @rule(data=st.data())
    def cancel(self, data):
        if r := self._pick(data, R.APPROVED, R.MANUAL_REVIEW, R.NEEDS_ACTION):
            refund_cancel(refund_id=r.pk, actor="customer")

    @rule(data=st.data(), approve=st.booleans())
    def review(self, data, approve):
        if r := self._pick(data, R.MANUAL_REVIEW):
            refund_review(refund_id=r.pk, approve=approve, actor="reviewer")

    @rule(data=st.data())
    def duplicate_signal(self, data):
        if not self.refunds:
            return
        r = Refund.objects.get(pk=data.draw(st.sampled_from(self.refunds)))
        event = data.draw(st.sampled_from(list(r.events.all())))
        with transaction.atomic():
            refund_event_recorded.send(
                sender=Refund, refund=Refund.objects.select_for_update().get(pk=r.pk), event=event
            )

    @rule(days=st.sampled_from([1, 8]))
    def mature_and_settle(self, days):
        self._advance(days * 86400)
        commission_mature()
        commission_settle()

    @rule(who=st.integers(0, 1), share=st.sampled_from([1, 2]))
    def distributor_withdraws(self, who, share):
        person = self.distributors[who]
        balance = -(
            LedgerAccount.objects.filter(owner=f"customer:{person.pk}", kind=LedgerAccount.Kind.DISTRIBUTOR_BALANCE)
            .values_list("balance", flat=True)
            .first()
            or 0
        )
        if balance > 0:
            withdraw(person, balance // share or balance)
            self.withdrawn += balance // share or balance

    # --- invariants --------------------------------------------------------------------------------

    def _commissions(self):
        return Commission.objects.filter(merchant=self.merchant).select_related("order")

    @invariant()
    def commissions_follow_the_plan_and_the_clawback_rule(self):
        refunded = dict(
            Refund.objects.filter(merchant=self.merchant, status__in=(R.SUCCEEDED, R.REVERSED))
            .values_list("order_id")
            .annotate(total=Sum("amount"))
        )
        per_order: dict[int, int] = {}
        for c in self._commissions():
            assert c.amount == c.order.amount * LEVELS[c.level - 1] // 10_000
            assert 0 <= c.clawed_back_amount <= c.amount
            target = clawback_target(
                commission_amount=c.amount, refunded=refunded.get(c.order_id, 0), order_amount=c.order.amount
            )
            assert c.clawed_back_amount == target, (c.pk, c.clawed_back_amount, target)
            per_order[c.order_id] = per_order.get(c.order_id, 0) + c.amount
        for order_id, total in per_order.items():
            order = Order.objects.get(pk=order_id)
            assert total <= sum(order.amount * bp // 10_000 for bp in LEVELS) <= order.amount

    @invariant()
    def frozen_exactly_while_a_refund_is_live(self):
        for c in self._commissions().exclude(status__in=(S.VOID, S.CLAWED_BACK)):
            live = Refund.objects.filter(order_id=c.order_id).filter(
                Q(status__in=LIVE_REFUND) | Q(status=R.FAILED, next_poll_at__isnull=False)
            )
            assert (c.status == S.FROZEN) == live.exists(), (
                c.pk,
                c.status,
                list(live.values_list("status", flat=True)),
            )

    @invariant()
    def ledger_balances_per_currency(self):
        for total in (
            LedgerEntry.objects.values("currency").annotate(total=Sum("amount")).values_list("total", flat=True)
        ):
            assert total == 0

    @invariant()
    def nothing_created_or_lost(self):
        rows = list(self._commissions())
        accrued = sum(c.amount for c in rows)
        clawed = sum(c.clawed_back_amount for c in rows)
        paid = sum(c.paid_amount for c in rows)
        outstanding = sum(c.outstanding for c in rows)
        after_paid = (
            CommissionEvent.objects.filter(
                commission__merchant=self.merchant, code="clawed_back", detail__from_paid=True
            ).aggregate(total=Sum("amount"))["total"]
            or 0
        )
        assert accrued == (paid - after_paid) + clawed + outstanding
        debts = CommissionDebt.objects.filter(merchant=self.merchant)
        debt_total = debts.aggregate(total=Sum("amount"))["total"] or 0
        offsets = debts.aggregate(total=Sum("recovered_amount"))["total"] or 0
        recovered = sum(
            e.detail["recovered"]
            for e in CommissionEvent.objects.filter(commission__merchant=self.merchant, code="clawed_back")
            if e.detail.get("from_paid")
        )
        assert after_paid == recovered + debt_total
        balances = -(
            LedgerAccount.objects.filter(kind=LedgerAccount.Kind.DISTRIBUTOR_BALANCE).aggregate(total=Sum("balance"))[
                "total"
            ]
            or 0
        )
        assert balances == paid - recovered - offsets - self.withdrawn


def test_random_histories_keep_commissions_and_ledger_consistent(inproc_bank):
    run_state_machine_as_test(
        CommissionMachine,
        settings=settings(
            max_examples=1000 if FULL else 12,
            stateful_step_count=50 if FULL else 30,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        ),
    )
