"""Helpers shared by the refund API tests: orders with a payer account, row counts, posting."""

from __future__ import annotations

import itertools
import json
import uuid

from apps.common.models import IdempotencyRecord
from apps.gateways.models import ChannelCall
from apps.ledger.models import LedgerTransaction
from apps.refunds.models import Refund, RefundEvent
from tests.factories import BankAccountFactory, CustomerFactory, OrderFactory, ProductFactory
from tests.support import count_rows

REFUNDS = "/api/v1/refunds"
COUNTED = (Refund, RefundEvent, IdempotencyRecord, LedgerTransaction, ChannelCall)
_numbers = itertools.count(1)


def make_order(merchant, *, amount: int = 10000, currency: str = "CNY", last4: str = "0000", locale: str = "en"):
    """A captured order of `amount` paid from an account ending in `last4` (the sandbox suffix)."""
    customer = CustomerFactory(merchant=merchant, locale=locale)
    number = f"62220200{next(_numbers):04d}{last4}"
    account = BankAccountFactory(customer=customer, number=number, holder_name="王小明")
    product = ProductFactory(merchant=merchant, price=amount, currency=currency)
    return OrderFactory(merchant=merchant, customer=customer, product=product, payer_account=account)


def body(order, **overrides) -> dict:
    data = {"order": order.external_id, "amount": 3000, "reason": "mistake", "reason_text": "bought twice"}
    data.update(overrides)
    return data


def new_key() -> str:
    return uuid.uuid4().hex


def post_refund(api, data: dict | str, *, key: str | None = "auto", **headers):
    """POST /refunds with an Idempotency-Key (a fresh one unless given; None sends none)."""
    if key == "auto":
        key = new_key()
    if key is not None:
        headers["HTTP_IDEMPOTENCY_KEY"] = key
    raw = data if isinstance(data, str) else json.dumps(data)
    return api.generic("POST", REFUNDS, data=raw, content_type="application/json", **headers)


def row_counts() -> dict[str, int]:
    return count_rows(COUNTED)
