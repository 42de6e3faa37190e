"""G12: no full card or account number is ever displayed, logged or kept in the clear.

A day of money movement on Luhn-valid account numbers (the kind a scanner finds): refunds that arrive,
fail on a frozen account and are returned after success; a payout and a withdrawal; the customers'
messages. Then every API response, progress page and console page a person would open, every log
line written meanwhile, and every text column of every table of RefundGuard's own database are
scanned for Luhn-valid runs of 13–19 digits. PCI DSS 3.4.1 allows at most the first six and last four.
The sandbox bank's own tables are the bank's side of the wire, not ours, and are left out.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from apps.accounts.models import User
from apps.refunds.models import Refund
from tests.gateways.conftest import HOLDER
from tests.payouts.conftest import (  # noqa: F401 (fixtures)
    PAYOUTS,
    WITHDRAWALS,
    customer_with_wallet,
    fund_merchant,
    payout_settings,
    post,
    signed_in,
    staff,
)
from tests.refunds.conftest import (  # noqa: F401 (fixtures)
    bank,
    clock,
    deliver_webhooks,
    refund_settings,
    run_poller,
    sandbox_settings,
)

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(180)]

DIGIT_RUN = re.compile(r"(?<![\d.])\d{13,19}(?![\d])")  # not the fraction of a decimal (timings)
# Tables that hold the far side's records (the simulated bank) or the number encrypted at rest.
OUTSIDE = ("gateways_sandbox",)
ENCRYPTED_COLUMNS = {"number_encrypted"}
_serial = itertools.count(1)


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char) * (2 if index % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def card_like(suffix: str) -> str:
    """A 16-digit Luhn-valid number ending in the sandbox `suffix` (one middle digit makes it valid)."""
    stem = f"622202{next(_serial):05d}"
    for check in "0123456789":
        number = f"{stem}{check}{suffix}"
        if luhn_valid(number):
            return number
    raise AssertionError("unreachable: one of ten digits always completes the sum")


def full_numbers_in(text: str) -> list[str]:
    return [run for run in DIGIT_RUN.findall(text) if luhn_valid(run)]


def database_text() -> dict[str, str]:
    """Every row of every RefundGuard table as JSON text, encrypted columns left out."""
    out = {}
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            if table.startswith(OUTSIDE) or table.startswith("django_") or table.startswith("auth_"):
                continue
            cursor.execute(f'SELECT row_to_json(t)::text FROM "{table}" t')  # noqa: S608 - our own table names
            rows = [json.loads(row) for (row,) in cursor.fetchall()]
            for row in rows:
                for column in ENCRYPTED_COLUMNS & row.keys():
                    row[column] = "(encrypted)"
            out[table] = json.dumps(rows, ensure_ascii=False)
    return out


def open_card_order(api, suffix: str) -> tuple[str, str]:
    n = next(_serial)
    number = card_like(suffix)
    for url, body in (
        (
            "/api/v1/customers",
            {"external_id": f"c-{n}", "name": HOLDER, "phone": "+8613800000000", "locale": "zh-hans"},
        ),
        ("/api/v1/products", {"sku": f"s-{n}", "name": "PPT", "kind": "course", "price": 19900, "currency": "CNY"}),
        (
            "/api/v1/orders",
            {
                "external_id": f"o-{n}",
                "customer": f"c-{n}",
                "product": f"s-{n}",
                "amount": 19900,
                "currency": "CNY",
                "paid_at": (timezone.now() - timedelta(minutes=5)).isoformat(),
                "payment_method": "card",
                "payer_account": {"holder_name": HOLDER, "bank": "ICBC", "account_number": number},
            },
        ),
    ):
        response = api.post(url, body, format="json")
        assert response.status_code == 201, response.content
    return f"o-{n}", number


def test_no_full_account_number_in_any_answer_page_log_message_or_row(
    api,
    client,
    merchant,
    caplog,
    bank,  # noqa: F811
    refund_settings,  # noqa: F811
    payout_settings,  # noqa: F811
    clock,  # noqa: F811
):
    caplog.set_level(logging.DEBUG)
    seen: dict[str, str] = {}
    numbers = []

    def keep(label: str, response) -> None:
        seen[label] = response.content.decode()

    refunds = []
    for suffix in ("0000", "0002", "0003"):  # arrives; account frozen (customer must act); returned later
        order, number = open_card_order(api, suffix)
        numbers.append(number)
        response = api.post(
            "/api/v1/refunds",
            {"order": order, "amount": 19900, "reason": "mistake", "reason_text": "买错了"},
            format="json",
            HTTP_IDEMPOTENCY_KEY=f"k-{order}",
        )
        assert response.status_code == 201, response.content
        keep(f"POST refund {suffix}", response)
        refunds.append(response.json())
    for _ in range(3):
        clock.advance(5)
        deliver_webhooks()
        run_poller()
    clock.advance(3600)
    deliver_webhooks()
    run_poller()
    statuses = set(Refund.objects.values_list("status", flat=True))
    assert statuses >= {"succeeded", "needs_action"}, statuses

    checker = staff(merchant, "checker")
    fund_merchant(merchant, 500000)
    customer = customer_with_wallet(merchant, 20000)
    for url, body in (
        (PAYOUTS, {"reference": "settle-g12", "amount": 500000, "currency": "CNY"}),
        (WITHDRAWALS, {"customer": customer.external_id, "amount": 10000, "currency": "CNY"}),
    ):
        number = card_like("0000")
        numbers.append(number)
        body["destination_account"] = {"holder_name": HOLDER, "bank": "ICBC", "account_number": number}
        created = post(api, url, body)
        assert created.status_code == 201, created.content
        keep(f"POST {url}", created)
        if created.json()["status"] == "pending_approval":
            approved = signed_in(checker).post(f"{url}/{created.json()['id']}/approve", {}, format="json")
            keep(f"approve {url}", approved)
    clock.advance(5)
    deliver_webhooks()

    for path in (
        "/api/v1/refunds",
        "/api/v1/payouts",
        "/api/v1/withdrawals",
        "/api/v1/notifications",
        "/api/v1/alerts",
        "/api/v1/freezes",
        "/api/v1/orders",
        "/api/v1/customers",
        *(f"/api/v1/refunds/{r['id']}" for r in refunds),
        *(f"/api/v1/refunds/{r['id']}/events" for r in refunds),
    ):
        response = api.get(path)
        assert response.status_code == 200, (path, response.content)
        keep(path, response)
    for r in refunds:
        url = r["progress_url"]
        page = client.get(url[url.index("/r/") :])
        assert page.status_code == 200
        keep(f"progress page {r['id']}", page)
    owner = User.objects.create_user(username="g12-owner", password="pw-g12-owner", merchant=merchant, role="owner")
    client.force_login(owner)
    for path in (
        "/console/",
        "/console/refunds/",
        "/console/payouts/",
        *(f"/console/refunds/{r['id']}/" for r in refunds),
    ):
        page = client.get(path)
        assert page.status_code == 200, path
        keep(path, page)

    assert len(seen) > 25
    logs = "\n".join(f"{record.name}: {record.getMessage()}" for record in caplog.records)
    assert len(caplog.records) > 50  # the run did log: the scan below reads something
    rows = database_text()
    assert "refunds_refund" in rows
    assert "notifications_notification" in rows

    found = {label: full_numbers_in(text) for label, text in {**seen, "log": logs, **rows}.items()}
    found = {label: runs for label, runs in found.items() if runs}
    assert found == {}
    everything = "\n".join([*seen.values(), logs, *rows.values()])
    assert [n for n in numbers if n in everything] == []
    assert all(f"**** {n[-4:]}" in everything or n[-4:] in everything for n in numbers)
