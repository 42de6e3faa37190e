"""Payout fixtures.

Two ways to reach the sandbox bank, both through the real `SandboxAdapter` and the bank's own code:
- `bank` (imported from the gateway tests): the bank on pytest-django's live server over real
  HTTP, webhooks POSTed back to the receiver over HTTP. Used by the suffix matrix.
- `inproc_bank`: the same adapter and bank code with HTTP intercepted at the transport by
  `responses`, each request handed to the bank's functions (or, for webhooks, to the receiver
  service) in the test's own thread and transaction. No sockets, no sleeps: a submit the bank
  answers too late raises the `requests` timeout the adapter would see. Used where the subject is
  the payout logic (pre-checks, approvals, recalls, the property test), to keep the suite fast.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
import responses
import time_machine
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.test import APIClient

from apps.accounts.models import User
from apps.gateways.models import Channel, ChannelCall, SandboxTransfer
from apps.gateways.sandbox.bank import sandbox_bank_deliver_webhooks
from apps.gateways.services import ensure_sandbox_channel
from apps.ledger.models import LedgerAccount, LedgerEntry, LedgerTransaction
from apps.ledger.services import Line, ledger_account_get_or_create, ledger_post
from apps.payouts.models import Disbursement
from apps.payouts.services import DISBURSEMENTS
from apps.payouts.signals import payout_anomaly
from apps.transfers.poller import transfer_claim_due, transfer_poll
from tests.factories import CustomerFactory
from tests.gateways.conftest import HOLDER, bank, sandbox_settings  # noqa: F401 (fixtures)
from tests.gateways.inproc_bank import install_inproc_bank, point_settings_at_inproc_bank

POLL_INTERVAL = 5
UNKNOWN_QUERY_DELAY = 3
RETRY_BASE = 10
SETTLE_AFTER = 3  # SANDBOX_BANK_SETTLE_SECONDS is 2

_numbers = itertools.count(1)


@pytest.fixture
def payout_settings(sandbox_settings):  # noqa: F811 (the imported fixture)
    """Payout timings the tests step over with the clock; limits at their defaults."""
    s = sandbox_settings
    s.PAYOUT_POLL_INTERVAL = timedelta(seconds=POLL_INTERVAL)
    s.PAYOUT_UNKNOWN_QUERY_DELAY = timedelta(seconds=UNKNOWN_QUERY_DELAY)
    s.PAYOUT_RETRY_BASE = timedelta(seconds=RETRY_BASE)
    s.PAYOUT_RETRY_CAP = timedelta(seconds=600)
    return s


class Clock:
    def __init__(self, traveller) -> None:
        self._traveller = traveller

    def advance(self, seconds: float) -> None:
        self._traveller.shift(timedelta(seconds=seconds))


@pytest.fixture
def clock():
    with time_machine.travel(timezone.now(), tick=True) as traveller:
        yield Clock(traveller)


# Our calls give up after this long: below the bank's deliberate slowness for 0005/0006 (2.5 s in
# the gateway fixtures) and, like the gateway tests' timeout, with room for a payout's round trips
# (verification, approval) on a loaded 2-core machine.
LIVE_ADAPTER_TIMEOUT = 1.5


@pytest.fixture
def live_bank(bank):  # noqa: F811 (the imported fixture)
    """The sandbox bank on the live server (see the gateway fixtures), adapter timeout widened."""
    Channel.objects.update(timeout_seconds=LIVE_ADAPTER_TIMEOUT)
    bank.refresh_from_db()
    return bank


# --- the in-process bank (tests/gateways/inproc_bank.py) ----------------------------------------


@pytest.fixture
def inproc_bank(db, payout_settings):
    """The sandbox channels, their adapter and the bank, wired together in-process (see module doc)."""
    point_settings_at_inproc_bank(payout_settings)
    ensure_sandbox_channel()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        install_inproc_bank(mock)
        yield Channel.objects.get(code="sandbox")


# --- money and people -------------------------------------------------------------------------


def fund(owner: str, kind: str, amount: int, currency: str = "CNY") -> None:
    """Put `amount` on a liability account (merchant payable / customer balance) against cash."""
    cash = ledger_account_get_or_create(owner="platform", kind=LedgerAccount.Kind.CASH_CLEARING, currency=currency)
    liability = ledger_account_get_or_create(owner=owner, kind=kind, currency=currency)
    ledger_post(
        reference=f"test:fund:{next(_numbers)}",
        kind="test_fund",
        lines=[Line(cash, amount), Line(liability, -amount)],
    )


def fund_merchant(merchant, amount: int, currency: str = "CNY") -> None:
    fund(f"merchant:{merchant.pk}", LedgerAccount.Kind.MERCHANT_PAYABLE, amount, currency)


def fund_customer(customer, amount: int, currency: str = "CNY") -> None:
    fund(f"customer:{customer.pk}", LedgerAccount.Kind.CUSTOMER_BALANCE, amount, currency)


def balance(owner: str, kind: str, currency: str = "CNY") -> int:
    row = LedgerAccount.objects.filter(owner=owner, kind=kind, currency=currency).values_list("balance", flat=True)
    return row.first() or 0


def payable(merchant, currency: str = "CNY") -> int:
    return -balance(f"merchant:{merchant.pk}", LedgerAccount.Kind.MERCHANT_PAYABLE, currency)


def wallet(customer, currency: str = "CNY") -> int:
    return -balance(f"customer:{customer.pk}", LedgerAccount.Kind.CUSTOMER_BALANCE, currency)


def in_flight(currency: str = "CNY") -> int:
    return -balance("platform", LedgerAccount.Kind.PAYOUTS_IN_FLIGHT, currency)


def ledger_refs(d: Disbursement) -> list[str]:
    return list(
        LedgerTransaction.objects.filter(reference__startswith=f"{d.kind}:{d.pk}:")
        .order_by("id")
        .values_list("reference", flat=True)
    )


def ledger_unbalanced() -> list[dict]:
    from django.db.models import Sum

    rows = LedgerEntry.objects.values("transaction_id", "currency").annotate(total=Sum("amount"))
    return [row for row in rows if row["total"] != 0]


def calls(d: Disbursement, action: str) -> int:
    return ChannelCall.objects.filter(reference=f"{d.kind}:{d.pk}", action=action).count()


def executions(d: Disbursement) -> int:
    row = SandboxTransfer.objects.filter(request_id=d.request_id).values_list("executions", flat=True)
    return row.first() or 0


def codes(d: Disbursement) -> list[str]:
    return list(d.events.order_by("created_at", "id").values_list("code", flat=True))


def check_results(d: Disbursement) -> dict[str, str]:
    return dict(d.prechecks.values_list("name", "result"))


def staff(merchant, username: str, role: str = User.Role.FINANCE) -> User:
    """A merchant staff member (no password: hashing one costs a few hundred ms per user)."""
    return User.objects.create(username=username, merchant=merchant, role=role)


def signed_in(user: User) -> APIClient:
    """An API client with this staff member's session: approvals are a person's act, never an API key's."""
    client = APIClient()
    client.force_login(user)
    return client


def authenticator(user: User) -> TOTPDevice:
    """A confirmed authenticator (TOTP) for this staff member, as the console's enrollment leaves it."""
    return TOTPDevice.objects.create(user=user, name="authenticator", confirmed=True)


def otp_code(device: TOTPDevice, *, fresh: bool = False) -> str:
    """The code the authenticator shows now. A code verifies once per 30 s step; `fresh` forgets the
    step last used, standing in for a person waiting for the next code (tests approve faster)."""
    if fresh:
        TOTPDevice.objects.filter(pk=device.pk).update(last_t=-1)
    device.refresh_from_db()
    return f"{totp(device.bin_key, device.step, device.t0, device.digits, device.drift):0{device.digits}d}"


def second_approval_code(user: User) -> str:
    """A fresh code from this staff member's authenticator (enrolled on first use)."""
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first() or authenticator(user)
    return otp_code(device, fresh=True)


def customer_with_wallet(merchant, amount: int, *, currency: str = "CNY", **kwargs):
    customer = CustomerFactory(merchant=merchant, name=HOLDER, **kwargs)
    fund_customer(customer, amount, currency)
    return customer


def account_body(suffix: str = "0000", *, number: str | None = None, **extra) -> dict:
    return {
        "holder_name": HOLDER,
        "bank": "ICBC",
        "account_number": number or f"62220{next(_numbers):07d}{suffix}",
        **extra,
    }


def deliver_webhooks() -> int:
    return sandbox_bank_deliver_webhooks()


def run_poller() -> list[int]:
    """One beat tick of the poller, inline: claim what is due, poll each claimed row."""
    ids = transfer_claim_due(DISBURSEMENTS, limit=100)
    for pk in ids:
        transfer_poll(DISBURSEMENTS, pk)
    return ids


def new_key() -> str:
    return f"idem-{next(_numbers)}"


@dataclass
class AnomalyLog:
    seen: list[tuple[int, str, dict]] = field(default_factory=list)

    def __call__(self, sender, *, disbursement_id, kind, merchant_id, anomaly, detail, **kwargs) -> None:
        self.seen.append((disbursement_id, anomaly, detail))

    def of(self, pk: int) -> list[str]:
        return [anomaly for rid, anomaly, _ in self.seen if rid == pk]


@pytest.fixture
def anomalies():
    log = AnomalyLog()
    payout_anomaly.connect(log, weak=False, dispatch_uid="tests.payouts.anomalies")
    yield log
    payout_anomaly.disconnect(dispatch_uid="tests.payouts.anomalies")


PAYOUTS, WITHDRAWALS, INCIDENTS = "/api/v1/payouts", "/api/v1/withdrawals", "/api/v1/incidents"


def post(api, url: str, body: dict, *, key: str | None = "auto"):
    headers = {}
    if key == "auto":
        key = new_key()
    if key is not None:
        headers["HTTP_IDEMPOTENCY_KEY"] = key
    return api.post(url, body, format="json", **headers)


def payout_body(amount: int, *, suffix: str = "0000", number: str | None = None, **extra) -> dict:
    body = {
        "reference": f"settle-{next(_numbers)}",
        "amount": amount,
        "currency": "CNY",
        "destination_account": account_body(suffix, number=number),
    }
    body.update(extra)
    return body


def withdrawal_body(customer, amount: int, *, suffix: str = "0000", number: str | None = None, **extra) -> dict:
    body = {
        "customer": customer.external_id,
        "amount": amount,
        "currency": "CNY",
        "destination_account": account_body(suffix, number=number),
    }
    body.update(extra)
    return body
