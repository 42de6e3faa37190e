"""Property: whatever happens in whatever order — create, approve, submit, redelivered tasks, bank
timeouts (0005/0006), webhooks (duplicated, late), polls, retries (0007), returns (0003), recalls,
cancels — every payout and withdrawal is executed by the bank at most once, the ledger stays
balanced, no balance goes negative, and the books agree with the rows.

A hypothesis `RuleBasedStateMachine` drives the real services against the sandbox bank in-process
(conftest `inproc_bank`: the real adapter and bank code, HTTP intercepted at the transport). The
clock is frozen and moved by a rule; each example runs in a savepoint that is rolled back.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

import pytest
import time_machine
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from apps.common.errors import ServiceError
from apps.gateways.models import Channel, SandboxEvent, SandboxTransfer
from apps.gateways.sandbox.bank import event_body
from apps.gateways.services import webhook_receive
from apps.gateways.signing import SIGNATURE_HEADER, signature_header
from apps.ledger.models import LedgerAccount, LedgerEntry
from apps.payouts.incidents import payout_recall_request, payout_recall_send
from apps.payouts.models import Disbursement, Kind
from apps.payouts.services import (
    DISBURSEMENTS,
    payout_approve,
    payout_cancel,
    payout_create,
    payout_submit,
    withdrawal_create,
)
from apps.transfers.services import transfer_resend, transfer_retry
from tests.factories import CustomerFactory, MerchantFactory
from tests.payouts.conftest import (
    HOLDER,
    deliver_webhooks,
    fund_customer,
    fund_merchant,
    run_poller,
    second_approval_code,
    staff,
)

pytestmark = pytest.mark.django_db

S = Disbursement.Status
SUFFIXES = ("0000", "0002", "0003", "0005", "0006", "0007", "0008", "0009")
MERCHANT_FUNDS, WALLET = 200_000, 100_000
# Gone for good when in these states (the bank took the money and kept it).
MONEY_OUT = (S.PAID, S.RECALL_REQUESTED, S.RECALL_FAILED)


class PayoutMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self._atomic = transaction.atomic()
        self._atomic.__enter__()
        self._travel = time_machine.travel(timezone.now(), tick=False)
        self._traveller = self._travel.start()
        self.merchant = MerchantFactory()
        self.checkers = [staff(self.merchant, f"checker-{n}") for n in (1, 2)]
        self.customer = CustomerFactory(merchant=self.merchant, name=HOLDER)
        fund_merchant(self.merchant, MERCHANT_FUNDS)
        fund_customer(self.customer, WALLET)
        self.count = 0

    def teardown(self) -> None:
        self._travel.stop()
        transaction.set_rollback(True)
        self._atomic.__exit__(None, None, None)

    # --- helpers -------------------------------------------------------------------------------

    def _rows(self, *statuses):
        rows = Disbursement.objects.filter(merchant=self.merchant)
        return rows.filter(status__in=statuses) if statuses else rows

    def _pick(self, data, *statuses) -> Disbursement | None:
        ids = list(self._rows(*statuses).order_by("id").values_list("id", flat=True))
        if not ids:
            return None
        return Disbursement.objects.get(pk=data.draw(st.sampled_from(ids)))

    # --- rules ---------------------------------------------------------------------------------

    def _create(self, kind: str, suffix: str, amount: int, account: int) -> Disbursement:
        self.count += 1
        destination = {"holder_name": HOLDER, "bank": "ICBC", "account_number": f"6222020{account:05d}{suffix}"}
        if kind == Kind.PAYOUT:
            return payout_create(
                merchant=self.merchant,
                reference=f"ref-{self.count}",
                amount=amount,
                currency="CNY",
                destination_account=destination,
                settlement_lines=[{"reference": f"line-{self.count}", "amount": amount}],
                actor="api-key:prop",
            )
        return withdrawal_create(
            merchant=self.merchant,
            customer_external_id=self.customer.external_id,
            amount=amount,
            currency="CNY",
            destination_account=destination,
            actor="api-key:prop",
        )

    def _approve_and_submit(self, d: Disbursement, *, approvers: int, submit: bool) -> None:
        """What the approvers and the after-commit submit task would do (on_commit never fires here)."""
        for checker in self.checkers[:approvers]:
            # Refused when not waiting for approval (failed, held, approved) or approved by this one.
            with contextlib.suppress(ServiceError):
                payout_approve(disbursement_id=d.pk, approver=checker, otp_token=second_approval_code(checker))
        if submit:
            payout_submit(disbursement_id=d.pk)

    @initialize(suffixes=st.lists(st.sampled_from(SUFFIXES), min_size=2, max_size=2))
    def start_with_one_of_each(self, suffixes):
        for kind, suffix in zip(Kind.values, suffixes, strict=True):
            d = self._create(kind, suffix, 20_000, 0)
            self._approve_and_submit(d, approvers=1, submit=True)

    @rule(
        kind=st.sampled_from(Kind.values),
        suffix=st.sampled_from(SUFFIXES),
        amount=st.integers(min_value=1, max_value=60_000),
        account=st.integers(min_value=0, max_value=2),
        approvers=st.integers(min_value=0, max_value=2),
        submit=st.booleans(),
    )
    def create(self, kind, suffix, amount, account, approvers, submit):
        d = self._create(kind, suffix, amount, account)
        self._approve_and_submit(d, approvers=approvers, submit=submit)

    @rule(data=st.data(), both=st.booleans())
    def approve(self, data, both):
        d = self._pick(data, S.PENDING_APPROVAL)
        if d is None:
            return
        for checker in self.checkers[: 2 if both else 1]:
            # Refused when already approved by this one, or already moved on.
            with contextlib.suppress(ServiceError):
                payout_approve(disbursement_id=d.pk, approver=checker, otp_token=second_approval_code(checker))

    @rule(data=st.data())
    def submit(self, data):
        """The submit task, possibly delivered again later (at-least-once)."""
        d = self._pick(data, S.APPROVED, S.SUBMITTED, S.PROCESSING, S.UNKNOWN, S.PAID)
        if d is not None:
            payout_submit(disbursement_id=d.pk)
            transfer_resend(DISBURSEMENTS, d.pk)

    @rule(seconds=st.sampled_from([1, 3, 5, 11, 30, 70, 3600]))
    def advance(self, seconds):
        self._traveller.shift(timedelta(seconds=seconds))

    @rule()
    def webhooks(self):
        deliver_webhooks()

    @rule(data=st.data())
    def redeliver_webhook(self, data):
        """A webhook the bank already delivered comes again (days later, or concurrently)."""
        ids = list(SandboxEvent.objects.filter(delivered_at__isnull=False).values_list("id", flat=True))
        if not ids:
            return
        event = SandboxEvent.objects.select_related("transfer").get(pk=data.draw(st.sampled_from(ids)))
        body = event_body(event)
        secret = Channel.objects.get(code=event.transfer.channel).webhook_secret
        header = signature_header(secret=secret, timestamp=int(timezone.now().timestamp()), body=body)
        receipt = webhook_receive(channel_code=event.transfer.channel, headers={SIGNATURE_HEADER: header}, body=body)
        assert receipt.status == "duplicate"

    @rule()
    def poll(self):
        run_poller()

    @rule(data=st.data())
    def retry(self, data):
        d = self._pick(data, S.FAILED)
        if d is not None:
            transfer_retry(DISBURSEMENTS, d.pk)

    @rule(data=st.data())
    def recall(self, data):
        d = self._pick(data, S.PAID, S.RECALL_FAILED)
        if d is not None:
            payout_recall_request(disbursement_id=d.pk, actor="ops")
            payout_recall_send(disbursement_id=d.pk)

    @rule(data=st.data())
    def cancel(self, data):
        d = self._pick(data, S.PENDING_APPROVAL, S.APPROVED, S.HELD, S.FAILED)
        if d is not None:
            payout_cancel(disbursement_id=d.pk, actor="ops")

    # --- invariants ------------------------------------------------------------------------------

    @invariant()
    def the_bank_executes_each_movement_at_most_once(self):
        executions = dict(
            SandboxTransfer.objects.values_list("request_id").annotate(total=Sum("executions")).order_by()
        )
        assert all(total <= 1 for total in executions.values()), executions
        for d in self._rows():
            executed = executions.get(d.request_id, 0)
            if d.status in (*MONEY_OUT, S.RETURNED, S.RECALLED):
                assert executed == 1, (d.pk, d.status)
            if d.status in (S.CANCELLED, S.CREATED, S.CHECKING, S.PENDING_APPROVAL, S.HELD):
                assert executed == 0, (d.pk, d.status)

    @invariant()
    def the_ledger_balances(self):
        per_transaction = LedgerEntry.objects.values("transaction_id", "currency").annotate(total=Sum("amount"))
        assert [row for row in per_transaction if row["total"] != 0] == []
        per_currency = LedgerEntry.objects.values("currency").annotate(total=Sum("amount")).order_by()
        assert {row["currency"]: row["total"] for row in per_currency} == {"CNY": 0}

    @invariant()
    def no_balance_is_negative_and_the_books_match_the_rows(self):
        def owed(owner: str, kind: str) -> int:
            row = LedgerAccount.objects.filter(owner=owner, kind=kind, currency="CNY").first()
            return -(row.balance if row else 0)

        payable = owed(f"merchant:{self.merchant.pk}", LedgerAccount.Kind.MERCHANT_PAYABLE)
        wallet = owed(f"customer:{self.customer.pk}", LedgerAccount.Kind.CUSTOMER_BALANCE)
        flying = owed("platform", LedgerAccount.Kind.PAYOUTS_IN_FLIGHT)
        assert payable >= 0
        assert wallet >= 0
        assert flying >= 0
        in_flight = self._rows().filter(has_funds_in_flight=True)
        assert flying == (in_flight.aggregate(total=Sum("amount"))["total"] or 0)
        gone = self._rows().filter(has_funds_in_flight=False, status__in=MONEY_OUT)
        out = {kind: 0 for kind in Kind.values}
        for d in [*in_flight, *gone]:
            out[d.kind] += d.source_amount
        assert payable == MERCHANT_FUNDS - out[Kind.PAYOUT]
        assert wallet == WALLET - out[Kind.WITHDRAWAL]

    @invariant()
    def a_paid_movement_has_one_paid_posting(self):
        for d in self._rows(*MONEY_OUT, S.RETURNED, S.RECALLED):
            assert d.paid_at is not None
            assert LedgerEntry.objects.filter(transaction__reference=f"{d.kind}:{d.pk}:paid").count() == 2


def test_random_sequences_never_pay_twice_and_keep_the_books(inproc_bank, payout_settings):
    payout_settings.PAYOUT_LARGE_AMOUNT = 40_000  # some need two approvers
    payout_settings.PAYOUT_FREQUENCY_MAX = 50
    run_state_machine_as_test(
        PayoutMachine,
        settings=settings(
            max_examples=8,
            stateful_step_count=20,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        ),
    )
