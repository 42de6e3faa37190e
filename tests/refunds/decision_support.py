"""Helpers for the refund-decision tests: a customer, product and paid order through the public
API (paid `ago` before the frozen now), usage through POST /orders/{id}/usage, refund requests."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.utils import timezone

from apps.ledger.models import LedgerTransaction

# A fixed instant the decision tests freeze the clock at (time_machine, tick=False).
NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
HOLDER = "王小明"
PRICE = 19900

_numbers = itertools.count(1)


@dataclass(frozen=True)
class Bought:
    customer: str  # external_id
    product_id: int
    sku: str
    order_id: int
    order: str  # external_id
    amount: int


def buy(
    api,
    *,
    ago: timedelta,
    kind: str = "course",
    price: int = PRICE,
    locale: str = "zh-hans",
    suffix: str = "0000",
    refund_policy: dict | None = None,
    registered_ago: timedelta | None = None,
    customer: str | None = None,
    sku: str | None = None,
) -> Bought:
    """Customer (unless `customer` names an existing one), product (unless `sku`) and an order paid
    `ago` before now, all through the API; the payer account ends in `suffix` (sandbox behaviour)."""
    n = next(_numbers)
    if customer is None:
        customer = f"c-dec-{n}"
        data = {"external_id": customer, "name": HOLDER, "phone": "+8613800000000", "locale": locale}
        if registered_ago is not None:
            data["registered_at"] = (timezone.now() - registered_ago).isoformat()
        response = api.post("/api/v1/customers", data, format="json")
        assert response.status_code == 201, response.content
    if sku is None:
        sku = f"sku-dec-{n}"
        data = {"sku": sku, "name": "PPT大师进阶课", "kind": kind, "price": price, "currency": "CNY"}
        if refund_policy is not None:
            data["refund_policy"] = refund_policy
        response = api.post("/api/v1/products", data, format="json")
        assert response.status_code == 201, response.content
        product_id = response.json()["id"]
    else:
        product_id = api.get("/api/v1/products", {"sku": sku}).json()["results"][0]["id"]
    external_id = f"o-dec-{n}"
    response = api.post(
        "/api/v1/orders",
        {
            "external_id": external_id,
            "customer": customer,
            "product": sku,
            "amount": price,
            "currency": "CNY",
            "paid_at": (timezone.now() - ago).isoformat(),
            "payment_method": "card",
            "device_id": f"d-{n}",
            "ip": f"198.18.{n // 250}.{n % 250 + 1}",  # one address per customer: no accidental links
            "payer_account": {"holder_name": HOLDER, "bank": "ICBC", "account_number": f"62220200{n:04d}{suffix}"},
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    return Bought(customer, product_id, sku, response.json()["id"], external_id, price)


def use(api, bought: Bought, kind: str, value: int | None = None) -> None:
    data = {"kind": kind} if value is None else {"kind": kind, "value": value}
    response = api.post(f"/api/v1/orders/{bought.order_id}/usage", data, format="json")
    assert response.status_code == 201, response.content


def ask(api, bought: Bought, *, reason: str = "mistake", text: str = "", amount: int | None = None):
    """POST /api/v1/refunds (fresh Idempotency-Key); returns the raw response."""
    return api.post(
        "/api/v1/refunds",
        {
            "order": bought.order,
            "amount": bought.amount if amount is None else amount,
            "reason": reason,
            "reason_text": text,
        },
        format="json",
        HTTP_IDEMPOTENCY_KEY=uuid.uuid4().hex,
    )


def refund(api, bought: Bought, **kwargs) -> dict:
    response = ask(api, bought, **kwargs)
    assert response.status_code == 201, response.content
    return response.json()


def refund_postings(refund_id: int | None = None) -> int:
    prefix = "refund:" if refund_id is None else f"refund:{refund_id}:"
    return LedgerTransaction.objects.filter(reference__startswith=prefix).count()


def results(response) -> list:
    data = response.json()
    return data["results"] if isinstance(data, dict) and "results" in data else data
