"""One driver per movement kind (refund, payout, withdrawal), so a guarantee test is written once.

A driver opens an approved item against the in-process sandbox bank (the account's last four digits
pick the bank's behaviour, see apps/gateways/sandbox/bank.py), runs the kind's public tasks, signs
and posts bank webhooks to the receiver, and reads back what the guarantees count: the item's
status and timeline, channel calls, bank executions, ledger postings. Only public services, tasks
and models are used: the shared lifecycle behind them is free to move.

Names differ per kind and live here: a refund settles as "succeeded" and comes back "reversed",
a payout or withdrawal settles as "paid" and comes back "returned"; the ledger calls a refund's
postings `inflight:1` and `settle`, a disbursement's `inflight` and `paid`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

from django.db import models
from django.dispatch import Signal

from apps.common.errors import ServiceError
from apps.gateways.models import ChannelCall, SandboxTransfer
from apps.ledger.models import LedgerAccount, LedgerTransaction
from apps.ledger.selectors import ledger_balance_get
from apps.payouts.models import Disbursement
from apps.payouts.services import payout_create, withdrawal_create
from apps.payouts.signals import payout_anomaly
from apps.payouts.tasks import payout_poll_due_task, payout_resend_task, payout_submit_task
from apps.refunds.models import Refund
from apps.refunds.services import refund_request, refundable_remaining
from apps.refunds.signals import refund_anomaly
from apps.refunds.tasks import refund_poll_due_task, refund_resend_task, refund_submit_task
from tests.gateways.conftest import bank_event_body, post_webhook
from tests.payouts.conftest import account_body, customer_with_wallet, fund_merchant, payout_body, withdrawal_body
from tests.refunds.support import REFUNDS, make_order
from tests.refunds.support import body as refund_body

KINDS = ("refund", "payout", "withdrawal")
_numbers = itertools.count(1)


class Movement:
    """What every kind shares; subclasses fill in the kind's names, services and owners."""

    kind: str
    model: type[models.Model]
    # The module whose names a submission goes through (channel_for, claim_call, channel_submit,
    # _apply_and_follow_up): the transfer kernel's, for every kind. Crash tests patch its seams.
    seams = "apps.transfers.services"
    submit_task: object
    resend_task: object
    poll_due_task: object
    settled: str  # status and timeline code once the bank has paid
    returned: str  # status and timeline code once the bank has given the money back
    return_anomaly: str  # the anomaly raised when money that arrived comes back
    inflight_posting: str
    settle_posting: str
    return_posting = "returned"
    in_flight_account: str
    anomaly_signal: Signal
    verify_calls: int  # account verifications before a first submit to a new account
    over_limit: str  # why an item asking for more than its owner holds is refused

    def __init__(self, merchant) -> None:
        self.merchant = merchant

    def __repr__(self) -> str:
        return self.kind

    # --- opening items -------------------------------------------------------------------------

    def create(self, *, suffix: str = "0000", amount: int) -> models.Model:
        """An approved item paid to an account ending in `suffix`, its submit message held back
        (the test delivers it with `submit`): approved and not yet sent."""
        with self.held(self.submit_task):
            item = self._create(suffix=suffix, amount=amount)
        assert item.status == "approved", (self.kind, item.status)
        return item

    @staticmethod
    @contextmanager
    def held(task) -> Iterator[list[tuple]]:
        """Messages published for `task` stay in the queue (recorded, not run) inside the block."""
        queued: list[tuple] = []
        with mock.patch.object(task, "apply_async", lambda args=(), kwargs=None, **_: queued.append(tuple(args))):
            yield queued

    def _create(self, *, suffix: str, amount: int) -> models.Model:
        raise NotImplementedError

    def limited_owner(self, capacity: int) -> object:
        """Whatever a kind's items draw on, holding `capacity`: an order (refunds), the merchant's
        payable (payouts), a customer's wallet (withdrawals)."""
        raise NotImplementedError

    def create_against(self, owner, *, amount: int) -> models.Model | ServiceError:
        """Open one item of `amount` against `owner` (submission published as usual); the
        ServiceError when the service refuses it outright."""
        raise NotImplementedError

    def accepted(self, owner) -> models.QuerySet:
        """Items drawing on `owner` that hold its money (refused and failed ones do not)."""
        raise NotImplementedError

    def left(self, owner) -> int:
        """What `owner` can still pay out."""
        raise NotImplementedError

    def api_request(self, *, amount: int, suffix: str = "0000") -> tuple[str, dict]:
        """(url, body) of an API request opening one item; its owner exists and can pay for it."""
        raise NotImplementedError

    def returned_to(self, item) -> tuple[str, str]:
        """(owner, ledger account kind) holding the money once the bank has given it back."""
        raise NotImplementedError

    # --- driving -------------------------------------------------------------------------------

    def submit(self, item) -> None:
        self.submit_task.delay(item.pk)

    def resend(self, item) -> None:
        self.resend_task.delay(item.pk)

    def poll_due(self) -> int:
        """One beat tick of the kind's poller (its batches run inline); how many items it claimed."""
        return self.poll_due_task.apply().result

    def event_body(self, item, status: str, *, event_id: str, code: str = "", amount: int | None = None) -> bytes:
        """A bank event for `item` shaped exactly as the sandbox bank sends it (compact, keys sorted)."""
        amount = item.amount if amount is None else amount
        return bank_event_body(
            event_id=event_id,
            request_id=item.request_id,
            status=status,
            amount=amount,
            code=code,
            currency=item.currency,
            kind=self.kind,
        )

    post_webhook = staticmethod(post_webhook)

    def send_event(self, client, item, status: str, *, event_id: str, code: str = "") -> str:
        """Deliver one signed bank event for `item`; the receiver's outcome for it."""
        response = self.post_webhook(client, self.event_body(item, status, event_id=event_id, code=code))
        assert response.status_code == 200, response.content
        return response.json()["events"][event_id]

    # --- reading back --------------------------------------------------------------------------

    def reference(self, item) -> str:
        return f"{self.kind}:{item.pk}"

    def status(self, item) -> str:
        return self.model.objects.values_list("status", flat=True).get(pk=item.pk)

    def codes(self, item) -> list[str]:
        return list(item.events.order_by("created_at", "id").values_list("code", flat=True))

    def calls(self, item, action: str) -> int:
        return ChannelCall.objects.filter(reference=self.reference(item), action=action).count()

    def executions(self, item) -> int:
        row = SandboxTransfer.objects.filter(request_id=item.request_id).values_list("executions", flat=True)
        return row.first() or 0

    def postings(self, item) -> list[str]:
        """The item's ledger postings, oldest first, by their reference's last part(s)."""
        prefix = f"{self.reference(item)}:"
        refs = LedgerTransaction.objects.filter(reference__startswith=prefix).order_by("id")
        return [ref.removeprefix(prefix) for ref in refs.values_list("reference", flat=True)]

    def in_flight(self, currency: str = "CNY") -> int:
        """Money of this kind sent to banks and not yet confirmed (a credit balance)."""
        return -ledger_balance_get(owner="platform", kind=self.in_flight_account, currency=currency)

    def balance(self, owner: str, kind: str, currency: str = "CNY") -> int:
        return ledger_balance_get(owner=owner, kind=kind, currency=currency)

    def items(self) -> models.QuerySet:
        return self.model.objects.filter(merchant=self.merchant)

    @contextmanager
    def anomalies(self) -> Iterator[list[tuple[int, str]]]:
        """(item id, anomaly) for each anomaly the kind's app raises inside the block."""
        seen: list[tuple[int, str]] = []

        def record(sender, **kwargs) -> None:
            seen.append(self._anomaly_of(kwargs))

        self.anomaly_signal.connect(record, weak=False, dispatch_uid=f"tests.transfers.{self.kind}")
        try:
            yield seen
        finally:
            self.anomaly_signal.disconnect(dispatch_uid=f"tests.transfers.{self.kind}")

    def _anomaly_of(self, kwargs: dict) -> tuple[int, str]:
        raise NotImplementedError


class RefundMovement(Movement):
    kind = "refund"
    model = Refund
    submit_task = refund_submit_task
    resend_task = refund_resend_task
    poll_due_task = refund_poll_due_task
    settled = Refund.Status.SUCCEEDED
    returned = Refund.Status.REVERSED
    return_anomaly = "reversed_after_success"
    inflight_posting = "inflight:1"
    settle_posting = "settle"
    in_flight_account = LedgerAccount.Kind.REFUNDS_IN_FLIGHT
    anomaly_signal = refund_anomaly
    verify_calls = 0  # paid back along the payer's own route, which needs no verification
    over_limit = "amount_exceeds_refundable"  # refused outright, no row

    def _create(self, *, suffix: str, amount: int) -> Refund:
        order = make_order(self.merchant, amount=amount, last4=suffix)
        return self._request(order, amount)

    def _request(self, order, amount: int) -> Refund:
        return refund_request(
            merchant=self.merchant, order_external_id=order.external_id, amount=amount, reason="mistake", actor="test"
        )

    def limited_owner(self, capacity: int):
        return make_order(self.merchant, amount=capacity)

    def create_against(self, owner, *, amount: int) -> Refund | ServiceError:
        try:
            return self._request(owner, amount)
        except ServiceError as exc:
            return exc

    def accepted(self, owner) -> models.QuerySet:
        return Refund.objects.filter(order=owner, status__in=(*Refund.RESERVING, Refund.Status.SUCCEEDED))

    def left(self, owner) -> int:
        return refundable_remaining(order=owner)

    def api_request(self, *, amount: int, suffix: str = "0000") -> tuple[str, dict]:
        order = make_order(self.merchant, amount=amount, last4=suffix)
        return REFUNDS, refund_body(order, amount=amount)

    def returned_to(self, item) -> tuple[str, str]:
        return f"customer:{item.customer_id}", LedgerAccount.Kind.CUSTOMER_BALANCE

    def _anomaly_of(self, kwargs: dict) -> tuple[int, str]:
        return kwargs["refund_id"], kwargs["kind"]


class DisbursementMovement(Movement):
    model = Disbursement
    submit_task = payout_submit_task
    resend_task = payout_resend_task
    poll_due_task = payout_poll_due_task
    settled = Disbursement.Status.PAID
    returned = Disbursement.Status.RETURNED
    return_anomaly = "reversed"
    inflight_posting = "inflight"
    settle_posting = "paid"
    in_flight_account = LedgerAccount.Kind.PAYOUTS_IN_FLIGHT
    anomaly_signal = payout_anomaly
    verify_calls = 1  # the pre-check verifies every destination with the channel
    over_limit = "precheck_balance_sufficient"  # a row that failed its pre-check

    def items(self) -> models.QuerySet:
        return Disbursement.objects.filter(merchant=self.merchant, kind=self.kind)

    def accepted(self, owner) -> models.QuerySet:
        return self.items().exclude(status=Disbursement.Status.FAILED)

    def _anomaly_of(self, kwargs: dict) -> tuple[int, str]:
        return kwargs["disbursement_id"], kwargs["anomaly"]


class PayoutMovement(DisbursementMovement):
    kind = "payout"

    def _create(self, *, suffix: str, amount: int) -> Disbursement:
        fund_merchant(self.merchant, amount)
        return self._open(amount, suffix=suffix)

    def _open(self, amount: int, *, suffix: str = "0000") -> Disbursement:
        reference = f"g-{next(_numbers)}"
        return payout_create(
            merchant=self.merchant,
            reference=reference,
            amount=amount,
            currency="CNY",
            destination_account=account_body(suffix),
            settlement_lines=[{"reference": reference, "amount": amount}],
            actor="api-key:x",
        )

    def limited_owner(self, capacity: int):
        fund_merchant(self.merchant, capacity)
        return self.merchant

    def create_against(self, owner, *, amount: int) -> Disbursement:
        return self._open(amount)

    def left(self, owner) -> int:
        return -self.balance(f"merchant:{owner.pk}", LedgerAccount.Kind.MERCHANT_PAYABLE)

    def api_request(self, *, amount: int, suffix: str = "0000") -> tuple[str, dict]:
        fund_merchant(self.merchant, amount)
        return "/api/v1/payouts", payout_body(amount, suffix=suffix)

    def returned_to(self, item) -> tuple[str, str]:
        return f"merchant:{item.merchant_id}", LedgerAccount.Kind.MERCHANT_PAYABLE


class WithdrawalMovement(DisbursementMovement):
    kind = "withdrawal"

    def _create(self, *, suffix: str, amount: int) -> Disbursement:
        return self._open(customer_with_wallet(self.merchant, amount), amount, suffix=suffix)

    def _open(self, customer, amount: int, *, suffix: str = "0000") -> Disbursement:
        return withdrawal_create(
            merchant=self.merchant,
            customer_external_id=customer.external_id,
            amount=amount,
            currency="CNY",
            destination_account=account_body(suffix),
            actor="api-key:x",
        )

    def limited_owner(self, capacity: int):
        return customer_with_wallet(self.merchant, capacity)

    def create_against(self, owner, *, amount: int) -> Disbursement:
        return self._open(owner, amount)

    def left(self, owner) -> int:
        return -self.balance(f"customer:{owner.pk}", LedgerAccount.Kind.CUSTOMER_BALANCE)

    def accepted(self, owner) -> models.QuerySet:
        return super().accepted(owner).filter(customer=owner)

    def api_request(self, *, amount: int, suffix: str = "0000") -> tuple[str, dict]:
        customer = customer_with_wallet(self.merchant, amount)
        return "/api/v1/withdrawals", withdrawal_body(customer, amount, suffix=suffix)

    def returned_to(self, item) -> tuple[str, str]:
        return f"customer:{item.customer_id}", LedgerAccount.Kind.CUSTOMER_BALANCE


DRIVERS: dict[str, type[Movement]] = {
    "refund": RefundMovement,
    "payout": PayoutMovement,
    "withdrawal": WithdrawalMovement,
}
