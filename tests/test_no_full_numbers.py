"""G12: no full card or account number is ever displayed, logged, sent or kept in the clear.

A day of money movement on Luhn-valid account numbers (the kind a scanner finds): a refund for every
behaviour of the sandbox bank (suffixes 0000–0009: arrives, delayed, frozen account, returned after
success, holder-name mismatch, answers late, drops, limit, duplicate webhooks, held by the bank's risk
control), a customer typing a new account on the progress page, a payout and a withdrawal approved by
staff, the P0 page the returned refund raises (SMS and voice to on-call through the real Twilio client,
intercepted at HTTP), the customers' SMS, email and inbox messages. Then every API response, progress
page, inbox, console page and admin page a person would open, every log line written meanwhile, every
SMS, call script and email body sent, and every text column of every table of RefundGuard's own
database (audit rows and timelines included) are scanned for Luhn-valid runs of 13–19 digits and for
the numbers themselves. PCI DSS 3.4.1 allows at most the first six and last four. The sandbox bank's
own tables are the bank's side of the wire, not ours, and are left out.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
from datetime import timedelta
from urllib.parse import parse_qsl

import pytest
import responses
from django.contrib import admin
from django.db import connection
from django.test import Client
from django.utils import timezone

from apps.accounts.models import User
from apps.alerts.models import Alert
from apps.ledger.models import LedgerAccount
from apps.notifications.models import Notification
from apps.notifications.services import notification_dispatch_due
from apps.payouts.models import Disbursement
from apps.payouts.services import withdrawal_progress_url
from apps.refunds.models import Refund
from tests.gateways.conftest import HOLDER
from tests.notifications.support import ACCOUNT_SID, AUTH_TOKEN, CALLS_URL, FROM_NUMBER, MESSAGES_URL, twilio_created
from tests.payouts.conftest import (  # noqa: F401 (fixtures)
    PAYOUTS,
    WITHDRAWALS,
    balance,
    customer_with_wallet,
    fund_merchant,
    payout_settings,
    post,
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

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(420)]

# A run standing on its own: not the fraction of a decimal (timings), not part of a hex or other
# ASCII-alphanumeric token (event ids, signatures); next to CJK text it still counts.
DIGIT_RUN = re.compile(r"(?<![0-9A-Za-z.])\d{13,19}(?![0-9A-Za-z])")
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
            {
                "external_id": f"c-{n}",
                "name": HOLDER,
                "phone": "+8613800000000",
                "email": f"c-{n}@example.com",
                "locale": "zh-hans" if n % 2 else "en",
            },
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


SUFFIXES = tuple(f"000{d}" for d in range(10))  # every behaviour of the sandbox bank


@pytest.fixture
def twilio_http(settings, bank):  # noqa: F811
    """Twilio credentials set: SMS and calls go through the real client; its HTTP is intercepted and
    recorded, the live server (the sandbox bank and our webhook receiver) is reached for real."""
    settings.TWILIO_ACCOUNT_SID = ACCOUNT_SID
    settings.TWILIO_AUTH_TOKEN = AUTH_TOKEN
    settings.TWILIO_FROM_NUMBER = FROM_NUMBER
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add_passthru(settings.PUBLIC_BASE_URL)
        rsps.add_callback(responses.POST, MESSAGES_URL, callback=twilio_created("sms"))
        rsps.add_callback(responses.POST, CALLS_URL, callback=twilio_created("call"))
        yield rsps


def sent_to_twilio(rsps) -> dict[str, str]:
    """Every form Twilio was sent (SMS bodies, call scripts), decoded as Twilio reads them."""
    out = {}
    for index, call in enumerate(rsps.calls):
        if not call.request.url.startswith("https://api.twilio.com/"):
            continue
        body = call.request.body or ""
        body = body.decode() if isinstance(body, bytes) else body
        out[f"twilio {index} {call.request.url.rsplit('/', 1)[-1]}"] = "\n".join(
            value for _, value in parse_qsl(body, keep_blank_values=True)
        )
    return out


def admin_pages(client) -> dict[str, str]:
    """Every admin changelist, and the change page of each model's first row."""
    out = {}
    for model, model_admin in admin.site._registry.items():
        meta = model._meta
        base = f"/admin/{meta.app_label}/{meta.model_name}/"
        page = client.get(base)
        assert page.status_code == 200, base
        out[base] = page.content.decode()
        first = model_admin.get_queryset(page.wsgi_request).order_by("-pk").first()
        if first is not None:
            url = f"{base}{first.pk}/change/"
            page = client.get(url)
            assert page.status_code == 200, url
            out[url] = page.content.decode()
    return out


def test_no_full_account_number_in_any_answer_page_log_message_or_row(
    api,
    client,
    merchant,
    caplog,
    mailoutbox,
    settings,
    bank,  # noqa: F811
    refund_settings,  # noqa: F811
    payout_settings,  # noqa: F811
    clock,  # noqa: F811
    twilio_http,
):
    caplog.set_level(logging.DEBUG)
    settings.ALERT_ONCALL_ROTA = ["g12-oncall"]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    User.objects.create(username="g12-oncall", is_staff=True, phone="+8613900000000", email="oncall@example.com")
    seen: dict[str, str] = {}
    numbers = []

    def keep(label: str, response) -> None:
        seen[label] = response.content.decode()

    refunds = []
    for suffix in SUFFIXES:
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
    assert statuses >= {"succeeded", "needs_action", "reversed"}, statuses

    # The customer of a refund that needs a new account types one on the progress page.
    stuck = Refund.objects.filter(status="needs_action").order_by("pk").first()
    stuck_url = next(r["progress_url"] for r in refunds if r["id"] == stuck.pk)
    typed = card_like("0000")
    numbers.append(typed)
    changed = client.post(
        stuck_url[stuck_url.index("/r/") :],
        {"holder_name": HOLDER, "bank": "ICBC", "account_number": typed},
    )
    assert changed.status_code in (200, 302), changed.content
    keep("progress page account change", changed)
    stuck.refresh_from_db()
    assert stuck.status != "needs_action"

    checker = staff(merchant, "checker")
    fund_merchant(merchant, 500000)
    payable = -balance(f"merchant:{merchant.pk}", LedgerAccount.Kind.MERCHANT_PAYABLE)  # owed: a credit
    wallet = customer_with_wallet(merchant, 20000, phone="+8613700000000", email="wallet@example.com")
    checker_client = Client()
    checker_client.force_login(checker)
    for url, kind, body in (
        (PAYOUTS, "payouts", {"reference": "settle-g12", "amount": payable, "currency": "CNY"}),
        (WITHDRAWALS, "withdrawals", {"customer": wallet.external_id, "amount": 10000, "currency": "CNY"}),
    ):
        number = card_like("0000")
        numbers.append(number)
        body["destination_account"] = {"holder_name": HOLDER, "bank": "ICBC", "account_number": number}
        created = post(api, url, body)
        assert created.status_code == 201, created.content
        keep(f"POST {url}", created)
        if created.json()["status"] == "pending_approval":
            approved = checker_client.post(f"/console/{kind}/{created.json()['id']}/approve", {"note": "ok"})
            assert approved.status_code in (200, 302), approved.content
            keep(f"approve {url}", approved)
    for _ in range(3):
        clock.advance(5)
        deliver_webhooks()
    assert sorted(Disbursement.objects.values_list("status", flat=True)) == ["paid", "paid"], list(
        Disbursement.objects.values_list("status", "hold_kind", "failure_code")
    )

    # What the people involved were told: the P0 page for the returned refund, the customers' messages
    # (the low-priority ones, email among them, go out with the dispatcher's next sweep).
    clock.advance(60)
    notification_dispatch_due()
    assert Alert.objects.filter(tier="P0").exists()
    texts = sent_to_twilio(twilio_http)
    assert any("Calls.json" in label for label in texts), "the P0 page rang nobody: nothing to scan"
    assert sum("Messages.json" in label for label in texts) >= 3
    emails = {
        f"email {i}": "\n".join([m.subject, m.body, *(str(part) for part, _ in getattr(m, "alternatives", []))])
        for i, m in enumerate(mailoutbox)
    }
    assert Notification.objects.filter(channel="inbox").exists()
    assert emails, "no email was sent: nothing to scan"

    for path in (
        "/api/v1/refunds",
        "/api/v1/payouts",
        "/api/v1/withdrawals",
        "/api/v1/notifications",
        "/api/v1/alerts",
        "/api/v1/freezes",
        "/api/v1/orders",
        "/api/v1/customers",
        "/api/v1/cases",
        f"/api/v1/customers/{wallet.external_id}/inbox",
        *(f"/api/v1/refunds/{r['id']}" for r in refunds),
        *(f"/api/v1/refunds/{r['id']}/events" for r in refunds),
        *(f"/api/v1/{d.kind}s/{d.pk}" for d in Disbursement.objects.all()),
    ):
        response = api.get(path)
        assert response.status_code == 200, (path, response.content)
        keep(path, response)
    for r in refunds:
        path = r["progress_url"][r["progress_url"].index("/r/") :]
        for url in (path, f"{path}inbox/", f"{path}?lang=en"):
            page = client.get(url)
            assert page.status_code == 200, url
            keep(f"progress {url}", page)
    for d in Disbursement.objects.filter(kind="withdrawal"):
        url = withdrawal_progress_url(d)
        page = client.get(url[url.index("/r/") :])
        assert page.status_code == 200, url
        keep(f"withdrawal progress {d.pk}", page)

    owner = User.objects.create_user(username="g12-owner", password="pw-g12-owner", merchant=merchant, role="owner")
    client.force_login(owner)
    console_paths = [
        "/console/",
        "/console/refunds/",
        "/console/payouts/",
        "/console/withdrawals/",
        "/console/approvals/",
        "/console/alerts/",
        "/console/cases/",
        "/console/rules/",
        "/console/reports/",
        "/console/commissions/",
        *(f"/console/refunds/{r['id']}/" for r in refunds),
        *(f"/console/{d.kind}s/{d.pk}/" for d in Disbursement.objects.all()),
        *(f"/console/alerts/{a.pk}/" for a in Alert.objects.filter(merchant=merchant)),
    ]
    for path in console_paths:
        page = client.get(path)
        assert page.status_code == 200, path
        keep(path, page)

    operator = User.objects.create_superuser(username="g12-admin", password="pw-g12-admin", email="a@example.com")
    admin_client = Client()
    admin_client.force_login(operator)
    pages = admin_pages(admin_client)
    assert len(pages) > 40
    seen.update(pages)

    assert len(seen) > 120
    logs = "\n".join(f"{record.name}: {record.getMessage()}" for record in caplog.records)
    assert len(caplog.records) > 50  # the run did log: the scan below reads something
    rows = database_text()
    for table in ("refunds_refund", "refunds_refundevent", "notifications_notification", "payouts_disbursement"):
        assert rows.get(table, "[]") != "[]", table

    scanned = {**seen, **texts, **emails, "log": logs, **rows}
    found = {label: full_numbers_in(text) for label, text in scanned.items()}
    found = {label: runs for label, runs in found.items() if runs}
    assert found == {}
    everything = "\n".join(scanned.values())
    assert [n for n in numbers if n in everything] == []
    # The last four digits are what people are shown instead: the scan did read where numbers appear.
    assert all(n[-4:] in everything for n in numbers)
