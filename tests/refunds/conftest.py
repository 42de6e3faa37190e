"""Refund fixtures: the gateways' live sandbox bank (imported, not copied) plus a movable clock,
shrunk refund timings, an anomaly recorder and a helper that opens a refund through the API."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from apps.gateways.sandbox.bank import sandbox_bank_deliver_webhooks
from apps.refunds.services import REFUNDS
from apps.refunds.signals import refund_anomaly
from apps.transfers.poller import transfer_claim_due, transfer_poll
from tests.gateways.conftest import HOLDER, bank, sandbox_settings  # noqa: F401 (fixtures)

POLL_INTERVAL = 5
UNKNOWN_QUERY_DELAY = 3
RETRY_BASE = 10
AMOUNT = 19900

_numbers = itertools.count(1)


@pytest.fixture
def refund_settings(sandbox_settings):  # noqa: F811 (the imported fixture)
    """Refund timings in seconds the tests step over with the clock, never sleep through."""
    sandbox_settings.REFUND_POLL_INTERVAL = timedelta(seconds=POLL_INTERVAL)
    sandbox_settings.REFUND_UNKNOWN_QUERY_DELAY = timedelta(seconds=UNKNOWN_QUERY_DELAY)
    sandbox_settings.REFUND_RETRY_BASE = timedelta(seconds=RETRY_BASE)
    sandbox_settings.REFUND_RETRY_CAP = timedelta(seconds=600)
    return sandbox_settings


class Clock:
    """Our clock and the bank's (one process, one clock), moved forward on demand, still ticking."""

    def __init__(self, traveller) -> None:
        self._traveller = traveller

    def advance(self, seconds: float) -> None:
        self._traveller.shift(timedelta(seconds=seconds))


@pytest.fixture
def clock():
    with time_machine.travel(timezone.now(), tick=True) as traveller:
        yield Clock(traveller)


@dataclass
class AnomalyLog:
    seen: list[tuple[int, str, dict]] = field(default_factory=list)

    def __call__(self, sender, *, refund_id, merchant_id, kind, detail, **kwargs) -> None:
        self.seen.append((refund_id, kind, detail))

    def kinds(self, refund_id: int) -> list[str]:
        return [kind for rid, kind, _ in self.seen if rid == refund_id]


@pytest.fixture
def anomalies():
    log = AnomalyLog()
    refund_anomaly.connect(log, weak=False, dispatch_uid="tests.refunds.anomalies")
    yield log
    refund_anomaly.disconnect(dispatch_uid="tests.refunds.anomalies")


def deliver_webhooks() -> int:
    """The bank sends what is due, over HTTP, to the receiver on the live server."""
    return sandbox_bank_deliver_webhooks()


def run_poller() -> list[int]:
    """One beat tick of the poller, run inline: claim what is due, poll each claimed refund."""
    ids = transfer_claim_due(REFUNDS, limit=100)
    for refund_id in ids:
        transfer_poll(REFUNDS, refund_id)
    return ids


def open_order(api, suffix: str, *, amount: int = AMOUNT, locale: str = "en") -> str:
    """Customer, product and paid order through the API; the payer account ends in `suffix`."""
    n = next(_numbers)
    customer = api.post(
        "/api/v1/customers",
        {"external_id": f"c-{suffix}-{n}", "name": HOLDER, "phone": "+8613800000000", "locale": locale},
        format="json",
    )
    assert customer.status_code == 201, customer.content
    product = api.post(
        "/api/v1/products",
        {"sku": f"sku-{suffix}-{n}", "name": "PPT course", "kind": "course", "price": amount, "currency": "CNY"},
        format="json",
    )
    assert product.status_code == 201, product.content
    order = api.post(
        "/api/v1/orders",
        {
            "external_id": f"o-{suffix}-{n}",
            "customer": f"c-{suffix}-{n}",
            "product": f"sku-{suffix}-{n}",
            "amount": amount,
            "currency": "CNY",
            "paid_at": (timezone.now() - timedelta(minutes=5)).isoformat(),
            "payment_method": "card",
            "device_id": "d-1",
            "ip": "203.0.113.5",
            "payer_account": {"holder_name": HOLDER, "bank": "ICBC", "account_number": f"622202000000{suffix}"},
        },
        format="json",
    )
    assert order.status_code == 201, order.content
    return f"o-{suffix}-{n}"


def request_refund(api, order: str, *, amount: int = AMOUNT) -> dict:
    response = api.post(
        "/api/v1/refunds",
        {"order": order, "amount": amount, "reason": "mistake", "reason_text": "bought twice"},
        format="json",
        HTTP_IDEMPOTENCY_KEY=f"idem-{order}-{amount}-{next(_numbers)}",
    )
    assert response.status_code == 201, response.content
    return response.json()
