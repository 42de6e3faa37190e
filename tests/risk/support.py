"""Helpers for the risk tests: customers, products and paid orders through the public API with the
device, IP and payer account under the test's control, refund requests, and row counts.

The clock is frozen (time_machine, tick=False) and the test transaction never commits, so
on_commit callbacks (channel submissions, risk_rules_hit) do not run unless a test captures them:
an approved refund simply waits in `approved`, no bank is called.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta

from django.utils import timezone

from apps.accounts.models import AccountFreeze
from apps.risk.models import Case, CaseNote, ListEntry, Observation, Rule, RuleHit, RuleVersion
from tests.support import count_rows

NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
HOLDER = "王小明"
PRICE = 19900
MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)

_numbers = itertools.count(1)

COUNTED = (Rule, RuleVersion, RuleHit, Observation, Case, CaseNote, AccountFreeze, ListEntry)


def counts() -> dict[str, int]:
    return count_rows(COUNTED)


def delta(before: dict[str, int]) -> dict[str, int]:
    """Rows added since `before`, only the models that changed."""
    after = counts()
    return {name: after[name] - before[name] for name in after if after[name] != before[name]}


def customer(api, external_id: str | None = None, *, email: str = "", registered_ago: timedelta = 60 * DAY) -> str:
    """A customer registered `registered_ago` before now (60 days: past the `new` trust tier)."""
    external_id = external_id or f"c-risk-{next(_numbers)}"
    data = {
        "external_id": external_id,
        "name": HOLDER,
        "phone": "+8613800000000",
        "locale": "en",
        "registered_at": (timezone.now() - registered_ago).isoformat(),
    }
    if email:
        data["email"] = email
    response = api.post("/api/v1/customers", data, format="json")
    assert response.status_code == 201, response.content
    return external_id


def product(api, *, price: int = PRICE) -> str:
    sku = f"sku-risk-{next(_numbers)}"
    response = api.post(
        "/api/v1/products",
        {"sku": sku, "name": "PPT course", "kind": "course", "price": price, "currency": "CNY"},
        format="json",
    )
    assert response.status_code == 201, response.content
    return sku


def order(
    api,
    customer_id: str,
    sku: str,
    *,
    amount: int = PRICE,
    device: str | None = None,
    ip: str | None = None,
    account: str | None = None,
    ago: timedelta = 5 * MIN,
) -> str:
    """A paid order; by default its device, IP and payer account are its own (no accidental links)."""
    n = next(_numbers)
    external_id = f"o-risk-{n}"
    response = api.post(
        "/api/v1/orders",
        {
            "external_id": external_id,
            "customer": customer_id,
            "product": sku,
            "amount": amount,
            "currency": "CNY",
            "paid_at": (timezone.now() - ago).isoformat(),
            "payment_method": "card",
            "device_id": device or f"d-own-{n}",
            "ip": ip or f"198.18.{n // 250}.{n % 250 + 1}",
            "payer_account": {
                "holder_name": HOLDER,
                "bank": "ICBC",
                "account_number": account or f"6222{n:08d}0000",
            },
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    return external_id


def ask(api, order_id: str, *, amount: int = PRICE, **extra):
    """POST /api/v1/refunds with a fresh Idempotency-Key; the raw response."""
    return api.post(
        "/api/v1/refunds",
        {"order": order_id, "amount": amount, "reason": "mistake", "reason_text": "bought by mistake", **extra},
        format="json",
        HTTP_IDEMPOTENCY_KEY=uuid.uuid4().hex,
    )


def refund(api, order_id: str, **kwargs) -> dict:
    response = ask(api, order_id, **kwargs)
    assert response.status_code == 201, response.content
    return response.json()


def codes(body: dict, *, mode: str | None = "active") -> list[str]:
    return [r["code"] for r in body["decision"]["rules"] if mode is None or r["mode"] == mode]


def clauses(body: dict) -> list[str]:
    return [c["clause"] for c in body["decision"]["clauses"]]


def results(response) -> list:
    data = response.json()
    return data["results"] if isinstance(data, dict) and "results" in data else data


def make_rule(api, **fields) -> dict:
    data = {"code": f"r-{next(_numbers)}", "name": "test rule", "scope": "refund", "action": "review", **fields}
    response = api.post("/api/v1/rules", data, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def only_merchant_rules(merchant) -> None:
    """Switch the platform's default pack off so a test sees only its own rules."""
    Rule.objects.filter(merchant__isnull=True).update(mode=Rule.Mode.DISABLED)
