"""One seeded channel-fault scenario driven through the real services, with the invariants checked
after every tick. Used by tests/test_channel_faults.py; the faults come from tests/gateways/faults.py.

A scenario: refunds against one captured order (each to its own destination account, whose suffix
picks the bank's behaviour), payouts and withdrawals, requested at planned ticks. Each tick moves the
clock and runs what beat runs (refund and payout poll ticks, the bank's webhook sender, channel
health), in an order the plan picks, plus what people do (a reviewer approves what waits for
review). Then it drains: the outage ends, held webhooks go out, and ticks run until every movement
agrees with the bank's books.

Invariants after every tick: the ledger balances (every transaction, every cached balance); no
order has more refunded plus reserved than captured; no request id was executed twice, nor ever
sent again once the bank had it; whatever is in flight is still tracked (due for a poll); and the
in-flight ledger accounts hold exactly what the rows say is in flight.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass, field
from datetime import timedelta

from django.db.models import Count, F, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from apps.accounts.models import User
from apps.common.errors import ServiceError
from apps.gateways.models import SandboxSubmission, SandboxTransfer
from apps.gateways.sandbox.bank import outage_set, sandbox_bank_deliver_webhooks
from apps.gateways.services import channel_health_refresh
from apps.ledger.models import LedgerAccount
from apps.ledger.selectors import ledger_balance_get, ledger_unbalanced_transactions
from apps.payouts.models import Disbursement
from apps.payouts.services import payout_approve, payout_create, withdrawal_create
from apps.payouts.tasks import payout_poll_due_task
from apps.refunds.models import Refund
from apps.refunds.services import refund_request, refund_review
from apps.refunds.tasks import refund_poll_due_task
from tests.factories import CustomerFactory, MerchantFactory
from tests.gateways.conftest import HOLDER
from tests.gateways.faults import FaultPlan, FaultyBank
from tests.payouts.conftest import fund_customer, fund_merchant, second_approval_code
from tests.refunds.support import make_order

R, D = Refund.Status, Disbursement.Status
DRAIN_TICK = 30  # seconds per tick once the planned ones are over
DRAIN_TICKS = 80
HEALTH_EVERY = timedelta(seconds=60)  # CHANNEL_HEALTH_REFRESH_SECONDS's default
# What our row must say once the bank's transfer is in a given state.
REFUND_FOR_BANK = {"processing": R.PROCESSING, "held": R.PROCESSING, "succeeded": R.SUCCEEDED,
                   "failed": R.NEEDS_ACTION, "returned": R.REVERSED}  # fmt: skip
PAYOUT_FOR_BANK = {"processing": D.PROCESSING, "held": D.PROCESSING, "succeeded": D.PAID,
                   "failed": D.FAILED, "returned": D.RETURNED}  # fmt: skip
# With no transfer at the bank, a row may rest only here (people or the customer act next).
REFUND_AT_REST = (R.NEEDS_ACTION, R.FAILED, R.REJECTED, R.TECH_SUPPORT, R.CANCELLED)
PAYOUT_AT_REST = (D.FAILED, D.HELD, D.CANCELLED)
REFUND_TRACKED = (R.APPROVED, R.SUBMITTED, R.PROCESSING, R.UNKNOWN)
PAYOUT_TRACKED = (D.CHECKING, D.APPROVED, D.SUBMITTED, D.PROCESSING, D.UNKNOWN)


@dataclass
class Movement:
    index: int
    kind: str
    pk: int | None = None  # None: refused at request (over-refund) or not requested yet
    refused: str = ""


@dataclass
class ScenarioRun:
    plan: FaultPlan
    bank: FaultyBank
    on_commit: object  # pytest-django's django_capture_on_commit_callbacks
    movements: list[Movement] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = self.plan.rng("jobs")
        self._health_at = None
        self.merchant = MerchantFactory()
        self.reviewers = [
            User.objects.create(username=f"checker-{self.plan.scenario}-{n}", merchant=self.merchant, role="finance")
            for n in (1, 2)
        ]
        refunds = [m.amount for m in self.plan.movements if m.kind == "refund"]
        # Captured exactly what every refund together asks, or a unit less (the last one asking is
        # refused, unless one before it failed and gave its reservation back).
        short = self.rng.choice((0, 1)) if len(refunds) > 1 else 0
        self.order = make_order(self.merchant, amount=sum(refunds) - short) if refunds else None
        if refunds:
            fund_merchant(self.merchant, sum(refunds))  # what the captured order owes the merchant

    # --- driving -------------------------------------------------------------------------------

    def run(self) -> list[str]:
        self._request_due(0)
        for tick, seconds in enumerate(self.plan.tick_seconds, start=1):
            self.bank.tick = tick
            self._outage(tick)
            self._request_due(tick)
            self.bank.clock.advance(seconds)
            self._beat()
            self.check(f"tick {tick}")
        self.bank.tick += 1
        outage_set(channel="sandbox", enabled=False)
        with self.on_commit(execute=True):
            self.bank.release_all()
        for _ in range(DRAIN_TICKS):
            if not self.unsettled():
                break
            self.bank.tick += 1
            self.bank.clock.advance(DRAIN_TICK)
            self._beat()
            self.check(f"drain tick {self.bank.tick}")
        self.violations += [f"not settled: {what}" for what in self.unsettled()]
        return self.violations

    def _outage(self, tick: int) -> None:
        if self.plan.outage is None:
            return
        start, end = self.plan.outage
        if tick in (start, end):
            outage_set(channel="sandbox", enabled=tick == start)
            self.bank.trace.append(f"t{tick} outage {'on' if tick == start else 'off'}")

    def _beat(self) -> None:
        jobs = [
            refund_poll_due_task.delay,
            payout_poll_due_task.delay,
            sandbox_bank_deliver_webhooks,
            self.bank.release_held,
            self._review,
        ]
        now = timezone.now()
        if self._health_at is None or now - self._health_at >= HEALTH_EVERY:
            jobs.append(channel_health_refresh)  # on its own, longer beat schedule
            self._health_at = now
        self.rng.shuffle(jobs)
        for job in jobs:
            with self.on_commit(execute=True):
                job()

    def _request_due(self, tick: int) -> None:
        for index, planned in enumerate(self.plan.movements):
            if planned.at_tick == tick:
                with self.on_commit(execute=not planned.submit_task_lost):
                    self.movements.append(self._request(index, planned))

    def _request(self, index: int, planned) -> Movement:
        number = f"62220{self.plan.scenario % 10**6:06d}{index:01d}{planned.suffix}"
        destination = {"holder_name": HOLDER, "bank": "ICBC", "account_number": number}
        self.bank.movement_of[number] = index
        movement = Movement(index=index, kind=planned.kind)
        try:
            if planned.kind == "refund":
                row = refund_request(
                    merchant=self.merchant,
                    order_external_id=self.order.external_id,
                    amount=planned.amount,
                    reason="mistake",
                    destination_account=destination,
                    actor="faults",
                )
            elif planned.kind == "payout":
                fund_merchant(self.merchant, planned.amount)
                row = payout_create(
                    merchant=self.merchant,
                    reference=f"faults-{index}",
                    amount=planned.amount,
                    currency="CNY",
                    destination_account=destination,
                    settlement_lines=[{"reference": f"faults-{index}", "amount": planned.amount}],
                    actor="faults",
                )
            else:
                customer = CustomerFactory(merchant=self.merchant, name=HOLDER)
                fund_customer(customer, planned.amount)
                row = withdrawal_create(
                    merchant=self.merchant,
                    customer_external_id=customer.external_id,
                    amount=planned.amount,
                    currency="CNY",
                    destination_account=destination,
                    actor="faults",
                )
        except ServiceError as exc:
            movement.refused = exc.code
            self.bank.trace.append(f"t{self.bank.tick} m{index} refused {exc.code}")
            return movement
        movement.pk = row.pk
        self.bank.movement_of[f"{planned.kind}:{row.pk}"] = index
        return movement

    def _review(self) -> None:
        """Staff approve whatever waits for them (a review or a payout's approvals)."""
        for movement in self.movements:
            if movement.pk is None:
                continue
            if movement.kind == "refund":
                if Refund.objects.filter(pk=movement.pk, status=R.MANUAL_REVIEW).exists():
                    refund_review(refund_id=movement.pk, approve=True, actor="reviewer")
            elif Disbursement.objects.filter(pk=movement.pk, status=D.PENDING_APPROVAL).exists():
                for reviewer in self.reviewers:
                    with suppress(ServiceError):
                        payout_approve(
                            disbursement_id=movement.pk, approver=reviewer, otp_token=second_approval_code(reviewer)
                        )

    # --- invariants ----------------------------------------------------------------------------

    def check(self, when: str) -> None:
        found = self._broken()
        self.violations += [f"{when}: {what}" for what in found]
        self.bank.trace.append(f"{when} " + " ".join(self._states()))

    def _broken(self) -> list[str]:
        broken = []
        if ledger_unbalanced_transactions().exists():
            broken.append(f"unbalanced ledger transactions {list(ledger_unbalanced_transactions())}")
        drifted = (
            LedgerAccount.objects.annotate(total=Coalesce(Sum("entries__amount"), 0))
            .exclude(balance=F("total"))
            .values_list("owner", "kind", "balance", "total")
        )
        if drifted:
            broken.append(f"cached balances differ from entries {list(drifted)}")
        if self.order is not None:
            reserved = Refund.objects.filter(order=self.order, status__in=Refund.RESERVING).aggregate(t=Sum("amount"))
            if (reserved["t"] or 0) > self.order.amount:
                broken.append(f"over-refund: {reserved['t']} reserved of {self.order.amount} captured")
        twice = SandboxTransfer.objects.filter(executions__gt=1).values_list("request_id", "executions")
        if twice:
            broken.append(f"executed more than once {list(twice)}")
        resent = (
            SandboxSubmission.objects.filter(outcome__in=("executed", "deduplicated"))
            .values("request_id")
            .annotate(n=Count("id"))
            .filter(n__gt=1)
        )
        if resent:
            broken.append(f"sent again after the bank had it {list(resent)}")
        lost = list(Refund.objects.filter(status__in=REFUND_TRACKED, next_poll_at=None).values_list("pk", "status"))
        lost += Disbursement.objects.filter(status__in=PAYOUT_TRACKED, next_poll_at=None).values_list("pk", "status")
        if lost:
            broken.append(f"in flight but no longer tracked {lost}")
        refunds_out = Refund.objects.filter(status__in=Refund.IN_FLIGHT).aggregate(t=Sum("amount"))["t"] or 0
        refunds_books = -ledger_balance_get(owner="platform", kind=LedgerAccount.Kind.REFUNDS_IN_FLIGHT, currency="CNY")
        payouts_out = Disbursement.objects.filter(has_funds_in_flight=True).aggregate(t=Sum("amount"))["t"] or 0
        payouts_books = -ledger_balance_get(owner="platform", kind=LedgerAccount.Kind.PAYOUTS_IN_FLIGHT, currency="CNY")
        if (refunds_out, payouts_out) != (refunds_books, payouts_books):
            broken.append(
                f"in flight by rows {refunds_out}/{payouts_out} vs ledger {refunds_books}/{payouts_books} "
                "(refunds/payouts)"
            )
        return broken

    def _row(self, movement: Movement):
        model = Refund if movement.kind == "refund" else Disbursement
        return model.objects.get(pk=movement.pk)

    def _states(self) -> list[str]:
        return [f"m{m.index}={self._row(m).status if m.pk else m.refused or '-'}" for m in self.movements]

    def unsettled(self) -> list[str]:
        """Movements whose row does not (yet) say what the bank's books say."""
        out = []
        for movement in self.movements:
            if movement.pk is None:
                continue
            row = self._row(movement)
            transfer = SandboxTransfer.objects.filter(request_id=row.request_id).first()
            refund = movement.kind == "refund"
            if transfer is None:
                rest = REFUND_AT_REST if refund else PAYOUT_AT_REST
                waiting = row.status in rest and (row.status != "failed" or row.next_poll_at is None)
                if not waiting:
                    out.append(f"m{movement.index} {movement.kind} {row.status}, nothing at the bank")
                continue
            bank_status = transfer.status
            expected = (REFUND_FOR_BANK if refund else PAYOUT_FOR_BANK)[bank_status]
            if row.status != expected or bank_status == "processing":
                out.append(f"m{movement.index} {movement.kind} {row.status}, bank {bank_status}")
        return out
