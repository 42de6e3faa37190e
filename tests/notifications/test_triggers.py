"""The trigger table (apps.notifications.triggers), row by row, through the real flows: refunds and
withdrawals/payouts through the API, their services and the sandbox bank on the live server
(signed webhooks over HTTP, the poller), P0 alerts through `alert_raise`/`alert_escalate`. For each
cause: which messages were written (key, priority, channels, recipient, reference, progress link,
language, masked account), that a repeated cause writes nothing more, and that the after-commit
dispatch hands each SMS to the (sandbox) provider once."""

# Fixtures are imported from the refund/payout/gateway test modules (their conftests are not
# visible here), so test arguments "redefine" them.
# ruff: noqa: F811

from __future__ import annotations

import itertools
import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.test import Client
from django.utils import timezone

from apps.accounts.models import Customer, User
from apps.alerts.models import AlertDelivery
from apps.alerts.services import alert_escalate, alert_raise
from apps.notifications import services, triggers
from apps.notifications.models import Notification, SandboxMessage
from apps.payouts.models import Disbursement
from apps.refunds.models import Refund
from apps.refunds.services import refund_review
from tests.gateways.conftest import HOLDER, bank, sandbox_settings  # noqa: F401 (fixtures)
from tests.payouts.conftest import (
    PAYOUTS,
    WITHDRAWALS,
    account_body,
    customer_with_wallet,
    fund_merchant,
    payout_body,
    payout_settings,  # noqa: F401 (fixture)
    post,
    staff,
    withdrawal_body,
)
from tests.refunds.conftest import clock, deliver_webhooks, refund_settings, run_poller  # noqa: F401

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

SETTLE_AFTER = 3  # SANDBOX_BANK_SETTLE_SECONDS is 2
CJK = re.compile(r"[\u3400-\u9fff]")
_numbers = itertools.count(1)


@pytest.fixture(autouse=True)
def sandbox_sms(settings):
    """No Twilio credentials: SMS and voice go to the sandbox provider (SandboxMessage rows)."""
    settings.TWILIO_ACCOUNT_SID = settings.TWILIO_AUTH_TOKEN = settings.TWILIO_FROM_NUMBER = ""
    return settings


# --- flows ------------------------------------------------------------------------------------------


def open_order(
    api,
    suffix: str = "0000",
    *,
    locale: str = "en",
    phone: str = "+8613800000001",
    email: str = "",
    kind: str = "course",
    ago: timedelta = timedelta(minutes=5),
    payment_method: str = "card",
) -> tuple[str, str]:
    """Customer, product and paid order through the API; returns (order external id, account number)."""
    n = next(_numbers)
    customer = {"external_id": f"c-n-{n}", "name": HOLDER, "phone": phone, "locale": locale, "email": email}
    assert api.post("/api/v1/customers", customer, format="json").status_code == 201
    product = {"sku": f"sku-n-{n}", "name": "PPT course", "kind": kind, "price": 19900, "currency": "CNY"}
    assert api.post("/api/v1/products", product, format="json").status_code == 201
    number = f"622202{n:06d}{suffix}"
    order = api.post(
        "/api/v1/orders",
        {
            "external_id": f"o-n-{n}",
            "customer": f"c-n-{n}",
            "product": f"sku-n-{n}",
            "amount": 19900,
            "currency": "CNY",
            "paid_at": (timezone.now() - ago).isoformat(),
            "payment_method": payment_method,
            "device_id": f"d-{n}",
            "ip": f"198.18.{n // 250}.{n % 250 + 1}",
            "payer_account": {"holder_name": HOLDER, "bank": "ICBC", "account_number": number},
        },
        format="json",
    )
    assert order.status_code == 201, order.content
    return f"o-n-{n}", number


def ask_refund(api, order: str, *, reason: str = "mistake", text: str = "bought twice", key: str | None = None):
    response = api.post(
        "/api/v1/refunds",
        {"order": order, "amount": 19900, "reason": reason, "reason_text": text},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key or f"idem-{order}-{next(_numbers)}",
    )
    assert response.status_code in (200, 201), response.content
    return Refund.objects.select_related("order", "customer").get(pk=response.json()["id"])


# --- what the tests look at -------------------------------------------------------------------------


def messages(subject_type: str, subject_id: int, template_key: str | None = None) -> list[Notification]:
    rows = Notification.objects.filter(subject_type=subject_type, subject_id=subject_id)
    if template_key:
        rows = rows.filter(template_key=template_key)
    return list(rows.order_by("id"))


def keys(subject_type: str, subject_id: int) -> list[str]:
    seen: list[str] = []
    for n in messages(subject_type, subject_id):
        if n.template_key not in seen:
            seen.append(n.template_key)
    return seen


def assert_set(
    rows: list[Notification],
    *,
    template_key: str,
    priority: str,
    channels: set[str],
    recipient: Customer | User,
    reference: str,
    link_part: str,
    locale: str,
    secret_numbers: tuple[str, ...] = (),
) -> None:
    """One message per channel for one cause, all alike but for the channel."""
    assert rows, f"no {template_key} written"
    assert [n.channel for n in rows].count(rows[0].channel) == 1
    assert {n.channel for n in rows} == channels, [n.channel for n in rows]
    assert len(rows) == len(channels)
    assert len({n.event_key for n in rows}) == 1
    for n in rows:
        assert n.template_key == template_key
        assert n.priority == priority
        if isinstance(recipient, Customer):
            assert (n.recipient_type, n.customer_id, n.user_id) == ("customer", recipient.pk, None)
        else:
            assert (n.recipient_type, n.user_id, n.customer_id) == ("staff", recipient.pk, None)
        assert n.reference == reference
        assert link_part in n.link
        assert n.locale == locale
        assert n.body.strip()
        assert "{{" not in n.body
        assert "{%" not in n.body
        if n.channel != "voice":
            assert reference in n.body, n.body
        if locale == "zh-hans":
            assert CJK.search(n.body), n.body
        else:
            assert not CJK.search(n.body), n.body
        for number in secret_numbers:
            assert number not in n.body
            assert number not in n.title
            assert number not in str(n.context)
        if n.channel in ("sms", "voice"):
            assert n.address == recipient.phone
        elif n.channel == "email":
            assert n.address == recipient.email
        else:
            assert n.address == ""


# --- refunds ----------------------------------------------------------------------------------------


def refund_messages(
    refund: Refund, template_key: str, *, priority: str, channels: set[str], order: str, locale: str, number: str = ""
) -> list[Notification]:
    """The message set a refund event owes its customer (one row per channel), checked."""
    rows = messages("refund", refund.pk, template_key)
    assert_set(
        rows,
        template_key=template_key,
        priority=priority,
        channels=channels,
        recipient=refund.customer,
        reference=order,
        link_part="/r/",
        locale=locale,
        secret_numbers=(number,) if number else (),
    )
    return rows


def test_auto_approved_refund_is_low_inbox_and_email_then_arrived_is_medium_push_and_inbox(
    api, bank, refund_settings, clock
):
    order, number = open_order(api, "0008", email="buyer@example.com")  # 0008: every webhook twice
    key = "idem-approved-once"
    refund = ask_refund(api, order, key=key)
    again = ask_refund(api, order, key=key)  # the client retries the request
    assert again.pk == refund.pk
    assert refund.status == Refund.Status.APPROVED or refund.status in Refund.IN_FLIGHT

    approved = refund_messages(
        refund, "refund_approved", priority="low", channels={"inbox", "email"}, order=order, locale="en", number=number
    )
    assert f"ending {number[-4:]}" in approved[0].body

    clock.advance(SETTLE_AFTER)
    assert deliver_webhooks() == 4  # succeeded, processing, then each again
    deliver_webhooks()
    refund.refresh_from_db()
    assert refund.status == Refund.Status.SUCCEEDED

    refund_messages(
        refund, "refund_arrived", priority="medium", channels={"push", "inbox"}, order=order, locale="en", number=number
    )
    assert keys("refund", refund.pk) == ["refund_approved", "refund_arrived"]
    assert Notification.objects.count() == 4
    # Written on commit; the medium ones dispatched at once (eager Celery), the low ones by the
    # beat sweep: each handed over once.
    assert set(Notification.objects.filter(priority="medium").values_list("status", flat=True)) <= {"sent", "delivered"}
    assert set(Notification.objects.filter(priority="low").values_list("status", flat=True)) == {"queued"}
    assert services.notification_dispatch_due() == 2
    assert set(Notification.objects.values_list("status", flat=True)) <= {"sent", "delivered"}
    assert SandboxMessage.objects.count() == 0  # no SMS at low or medium priority


def test_a_customer_without_an_email_gets_the_approval_in_the_inbox_only(api, bank, refund_settings):
    order, _ = open_order(api, "0000", locale="zh-hans")
    refund = ask_refund(api, order)

    refund_messages(refund, "refund_approved", priority="low", channels={"inbox"}, order=order, locale="zh-hans")


def test_manual_review_is_medium_then_the_reviewers_approval_is_told_once(api, merchant, bank, refund_settings):
    order, number = open_order(api, "0000", kind="physical", locale="zh-hans")
    refund = ask_refund(api, order)
    assert refund.status == Refund.Status.MANUAL_REVIEW

    refund_messages(
        refund,
        "refund_under_review",
        priority="medium",
        channels={"push", "inbox"},
        order=order,
        locale="zh-hans",
        number=number,
    )

    refund_review(refund_id=refund.pk, approve=True, actor="reviewer")
    assert keys("refund", refund.pk) == ["refund_under_review", "refund_approved"]
    assert len(messages("refund", refund.pk, "refund_approved")) == 1  # low: inbox (no email on file)


def test_a_rejected_refund_is_medium_with_the_appeal_link_in_the_body(api, bank, refund_settings):
    order, _ = open_order(api, "0000", ago=timedelta(days=30))
    refund = ask_refund(api, order)
    assert refund.status == Refund.Status.REJECTED

    rejected = refund_messages(
        refund, "refund_rejected", priority="medium", channels={"push", "inbox"}, order=order, locale="en"
    )
    for n in rejected:
        assert f"{n.link}#appeal" in n.body
        assert refund.decision["explanation"] in n.body


def test_a_reviewer_rejection_is_told_with_the_appeal_link(api, bank, refund_settings):
    order, _ = open_order(api, "0000", kind="physical")
    refund = ask_refund(api, order)
    refund_review(refund_id=refund.pk, approve=False, actor="reviewer")

    assert keys("refund", refund.pk) == ["refund_under_review", "refund_rejected"]
    rejected = messages("refund", refund.pk, "refund_rejected")
    assert {n.channel for n in rejected} == {"push", "inbox"}
    assert all(f"{n.link}#appeal" in n.body for n in rejected)


@pytest.mark.parametrize(
    ("locale", "reason", "text", "first_step"),
    [
        ("en", "cannot_use", "", "Sign in with the account you bought with"),
        # "cannot_use" routes without the phrase table (seeded rows do not survive a transactional
        # test's flush, so phrase routing is not relied on here)
        ("zh-hans", "cannot_use", "", "确认使用购买时的账号登录"),
    ],
)
def test_a_refund_routed_to_tech_support_is_medium_and_carries_the_guidance(
    api, bank, refund_settings, locale, reason, text, first_step
):
    order, _ = open_order(api, "0000", locale=locale)
    refund = ask_refund(api, order, reason=reason, text=text)
    assert refund.status == Refund.Status.TECH_SUPPORT

    routed = refund_messages(
        refund, "refund_tech_support", priority="medium", channels={"push", "inbox"}, order=order, locale=locale
    )
    steps = refund.support_ticket.guidance
    assert steps[0].startswith(first_step)
    for n in routed:
        assert " ".join(steps) in n.body, n.body
    assert keys("refund", refund.pk) == ["refund_tech_support"]


def test_0009_held_by_the_bank_is_one_delay_message_with_a_new_eta(api, bank, refund_settings, clock):
    order, number = open_order(api, "0009", payment_method="wallet")  # promised within 2 hours
    refund = ask_refund(api, order)
    promised = refund.expected_arrival_at
    assert promised < timezone.now() + timedelta(hours=3)

    clock.advance(SETTLE_AFTER)
    held_at = timezone.now()
    deliver_webhooks()
    clock.advance(refund_settings.REFUND_POLL_INTERVAL.total_seconds())
    run_poller()  # sees the hold again
    deliver_webhooks()

    refund.refresh_from_db()
    assert list(refund.events.values_list("code", flat=True)).count("held_by_bank") == 1
    assert refund.expected_arrival_at >= held_at + timedelta(hours=24) - timedelta(seconds=5)
    delayed = refund_messages(
        refund, "refund_delayed", priority="medium", channels={"push", "inbox"}, order=order, locale="en", number=number
    )
    eta = triggers.format_when(refund.expected_arrival_at, "en")
    for n in delayed:
        assert eta in n.body
        assert "ICBC is taking longer" in n.body
        assert "coupon" not in n.body
    assert keys("refund", refund.pk) == ["refund_approved", "refund_delayed"]


def test_0007_a_retried_bank_failure_is_one_delay_message_then_the_arrival(api, bank, refund_settings, clock):
    order, number = open_order(api, "0007", locale="zh-hans")
    refund = ask_refund(api, order)
    refund.refresh_from_db()
    assert (refund.status, refund.responsible_party) == (Refund.Status.FAILED, "bank")

    delayed = messages("refund", refund.pk, "refund_delayed")
    assert {n.channel for n in delayed} == {"push", "inbox"}
    assert all(triggers.format_when(refund.expected_arrival_at, "zh-hans") in n.body for n in delayed)
    assert all("工商银行" in n.body or "ICBC" in n.body for n in delayed)

    clock.advance(refund_settings.REFUND_RETRY_BASE.total_seconds() + 1)
    run_poller()
    clock.advance(SETTLE_AFTER)
    deliver_webhooks()
    refund.refresh_from_db()
    assert refund.status == Refund.Status.SUCCEEDED
    assert keys("refund", refund.pk) == ["refund_approved", "refund_delayed", "refund_arrived"]
    assert len(messages("refund", refund.pk, "refund_delayed")) == 2
    assert all(number not in n.body for n in messages("refund", refund.pk))


def test_0002_frozen_account_is_high_sms_push_inbox_once_and_the_sms_is_sent_once(api, bank, refund_settings, clock):
    order, number = open_order(api, "0002", locale="zh-hans", phone="+8613900000002")
    refund = ask_refund(api, order)
    clock.advance(SETTLE_AFTER)
    deliver_webhooks()
    deliver_webhooks()
    run_poller()

    refund.refresh_from_db()
    assert refund.status == Refund.Status.NEEDS_ACTION
    action = refund_messages(
        refund,
        "refund_failed_account",
        priority="high",
        channels={"sms", "push", "inbox"},
        order=order,
        locale="zh-hans",
        number=number,
    )
    for n in action:
        assert f"{n.link}#account" in n.body
        assert "该账户已被冻结" in n.body
        assert f"尾号{number[-4:]}" in n.body
    # the failure itself is not a delay: the customer's account is the cause
    assert keys("refund", refund.pk) == ["refund_approved", "refund_failed_account"]

    sms = next(n for n in action if n.channel == "sms")
    sent = SandboxMessage.objects.filter(channel="sms")
    assert list(sent.values_list("notification_id", "to", "body")) == [(sms.pk, "+8613900000002", sms.body)]
    sms.refresh_from_db()
    assert sms.status == Notification.Status.SENT
    assert sms.provider_id == sent.get().sid


def test_0002_without_a_phone_the_account_problem_goes_to_push_and_inbox(api, bank, refund_settings, clock):
    order, _ = open_order(api, "0002", phone="")
    refund = ask_refund(api, order)
    clock.advance(SETTLE_AFTER)
    deliver_webhooks()

    action = messages("refund", refund.pk, "refund_failed_account")
    assert {n.channel for n in action} == {"push", "inbox"}
    assert all(n.priority == "high" for n in action)
    assert SandboxMessage.objects.count() == 0


def test_a_repeated_refund_event_writes_no_second_set(api, bank, refund_settings, clock):
    order, _ = open_order(api, "0000")
    refund = ask_refund(api, order)
    event = refund.events.get(code="approved")
    before = Notification.objects.count()

    triggers.refund_event(refund, event)  # the same fact announced again
    assert Notification.objects.count() == before  # the once-per-cause constraint drops the repeat


# --- withdrawals and payouts --------------------------------------------------------------------------


@pytest.fixture
def known_destinations(payout_settings):
    payout_settings.PAYOUT_REVIEW_NEW_DESTINATION = False
    return payout_settings


def withdrawal_messages(d: Disbursement, template_key: str, *, customer, locale: str, number: str) -> list:
    """The high-priority SMS + push + inbox set a withdrawal event owes its customer, checked."""
    rows = messages("withdrawal", d.pk, template_key)
    assert_set(
        rows,
        template_key=template_key,
        priority="high",
        channels={"sms", "push", "inbox"},
        recipient=customer,
        reference=f"W{d.pk:08d}",
        link_part="/r/w/",
        locale=locale,
        secret_numbers=(number,),
    )
    return rows


def assert_refusal(rows: list, refusal: str, locale: str) -> None:
    """Each message says why the pre-checks refused the withdrawal and what to do, in `locale`."""
    why, steps = triggers.WITHDRAWAL_REFUSALS[refusal]
    for n in rows:
        assert why[locale] in n.body
        assert steps[locale] in n.body


def withdraw(api, customer, amount: int, **kwargs) -> Disbursement:
    response = post(api, WITHDRAWALS, withdrawal_body(customer, amount, **kwargs))
    assert response.status_code == 201, response.content
    return Disbursement.objects.select_related("customer").get(pk=response.json()["id"])


def test_a_withdrawal_held_by_the_prechecks_is_high_and_asks_for_the_documents(api, merchant, bank, known_destinations):
    customer = customer_with_wallet(merchant, 30000, locale="en", phone="+8613900000003")
    number = account_body()["account_number"]
    first = withdraw(api, customer, 10000, number=number)
    assert first.status != Disbursement.Status.HELD
    again = withdraw(api, customer, 10000, number=number)  # same card, same amount: a suspected duplicate
    again.refresh_from_db()
    assert again.status == Disbursement.Status.HELD

    held = withdrawal_messages(again, "withdrawal_held", customer=customer, locale="en", number=number)
    for n in held:
        assert triggers.WITHDRAWAL_MATERIALS["en"] in n.body
    assert messages("withdrawal", first.pk, "withdrawal_held") == []
    assert SandboxMessage.objects.filter(channel="sms", notification_id__in=[n.pk for n in held]).count() == 1


def test_0004_withdrawal_failing_the_holder_name_check_is_high_and_asks_to_fix_the_card(
    api, merchant, bank, known_destinations
):
    customer = customer_with_wallet(merchant, 20000, locale="zh-hans", phone="+8613900000004")
    body = withdrawal_body(customer, 10000, suffix="0004")
    number = body["destination_account"]["account_number"]
    response = post(api, WITHDRAWALS, body)
    assert response.status_code == 201, response.content
    d = Disbursement.objects.get(pk=response.json()["id"])
    assert d.status == Disbursement.Status.FAILED
    assert d.failure_code == "precheck_account_verification"

    failed = withdrawal_messages(d, "withdrawal_failed_account", customer=customer, locale="zh-hans", number=number)
    for n in failed:
        assert triggers.REASON_TEXT["precheck_account_verification"]["zh-hans"] in n.body
        assert f"{n.link}#account" in n.body
        assert f"尾号{number[-4:]}" in n.body

    event = d.events.get(code="precheck_failed")
    assert triggers.withdrawal_event(d, event) == 0  # announced again: nothing more
    assert len(messages("withdrawal", d.pk)) == 3


def test_a_withdrawal_over_the_balance_says_why_and_what_to_do(api, merchant, bank, known_destinations):
    customer = customer_with_wallet(merchant, 5000, locale="en", phone="+8613900000006")
    number = account_body()["account_number"]
    d = withdraw(api, customer, 10000, number=number)
    assert (d.status, d.failure_code, d.responsible_party) == (
        Disbursement.Status.FAILED,
        "precheck_amount_matches_source",
        "customer",
    )

    refused = withdrawal_messages(d, "withdrawal_refused", customer=customer, locale="en", number=number)
    assert_refusal(refused, "amount_matches_source", "en")
    for n in refused:
        assert "The money stays in your balance" in n.body
        assert "sorry" not in n.body  # the customer's to fix: no apology
    assert messages("withdrawal", d.pk, "withdrawal_failed_account") == []
    assert triggers.withdrawal_event(d, d.events.get(code="precheck_failed")) == 0  # once per cause

    # The progress page the message links to says the same, not that a bank gave no reason.
    page = Client().get(urlsplit(refused[0].link).path + "?lang=en").content.decode()
    _, steps = triggers.WITHDRAWAL_REFUSALS["amount_matches_source"]
    assert f"The amount is more than your withdrawable balance. {steps['en']}." in page
    assert "gave no reason" not in page


def test_a_frozen_customer_is_told_of_the_review_not_asked_to_check_the_card(api, merchant, bank, known_destinations):
    from apps.accounts.services import account_freeze

    customer = customer_with_wallet(merchant, 20000, locale="zh-hans", phone="+8613900000007")
    account_freeze(merchant=merchant, customer=customer, reason="chargeback", actor_label="risk")
    number = account_body()["account_number"]
    d = withdraw(api, customer, 10000, number=number)
    assert (d.status, d.failure_code) == (Disbursement.Status.FAILED, "precheck_account_status")

    assert messages("withdrawal", d.pk, "withdrawal_failed_account") == []
    refused = withdrawal_messages(d, "withdrawal_refused", customer=customer, locale="zh-hans", number=number)
    assert_refusal(refused, "account_status:customer_frozen", "zh-hans")
    for n in refused:
        assert "资金仍在您的余额中" in n.body
    page = Client().get(urlsplit(refused[0].link).path).content.decode()
    why, steps = triggers.WITHDRAWAL_REFUSALS["account_status:customer_frozen"]
    assert f"{why['zh-hans']}。{steps['zh-hans']}。" in page


def test_a_withdrawal_refused_on_the_platforms_side_apologises(api, merchant, bank, known_destinations):
    from apps.accounts.services import account_freeze, bank_account_get_or_create

    customer = customer_with_wallet(merchant, 20000, locale="en", phone="+8613900000008")
    card_body = account_body()
    card = bank_account_get_or_create(merchant=merchant, customer=customer, **card_body)
    account_freeze(merchant=merchant, bank_account=card, reason="court order", actor_label="ops")
    number = card_body["account_number"]
    d = withdraw(api, customer, 10000, number=number)
    assert (d.failure_code, d.responsible_party) == ("precheck_account_status", "platform")

    refused = withdrawal_messages(d, "withdrawal_refused", customer=customer, locale="en", number=number)
    assert_refusal(refused, "account_status:destination_account_frozen", "en")
    for n in refused:
        assert "We are sorry for the trouble" in n.body


def test_a_failed_payout_tells_the_merchants_finance_and_owner_staff_only(
    api, merchant, other_merchant, bank, known_destinations, clock
):
    owner = staff(merchant, "owner-a", role=User.Role.OWNER)
    finance = staff(merchant, "finance-a", role=User.Role.FINANCE)
    staff(merchant, "operator-a", role=User.Role.OPERATOR)
    staff(merchant, "reviewer-a", role=User.Role.REVIEWER)
    staff(other_merchant, "finance-b", role=User.Role.FINANCE)
    User.objects.filter(username="finance-a").update(phone="+8613900000005")
    fund_merchant(merchant, 500000)
    body = payout_body(500000, suffix="0002")
    number = body["destination_account"]["account_number"]
    created = post(api, PAYOUTS, body)
    assert created.status_code == 201, created.content
    payout = Disbursement.objects.get(pk=created.json()["id"])

    clock.advance(SETTLE_AFTER)
    deliver_webhooks()
    deliver_webhooks()
    payout.refresh_from_db()
    assert payout.status == Disbursement.Status.FAILED

    rows = messages("payout", payout.pk)
    assert {n.user.username for n in rows} == {"owner-a", "finance-a"}
    assert all(n.customer_id is None for n in rows)
    for user in (owner, finance):
        assert_set(
            [n for n in rows if n.user_id == user.pk],
            template_key="payout_problem",
            priority="medium",
            channels={"push", "inbox"},
            recipient=User.objects.get(pk=user.pk),
            reference=payout.reference,
            link_part=f"/console/payouts/{payout.pk}/",
            locale=merchant.default_locale,
            secret_numbers=(number,),
        )
    assert Notification.objects.filter(subject_type="withdrawal").count() == 0


# --- alerts -------------------------------------------------------------------------------------------


def raise_p0(dedup_key: str = "channel_down:sandbox"):
    return alert_raise(
        tier="P0",
        kind="channel_down",
        dedup_key=dedup_key,
        subject_type="channel",
        subject_id="sandbox",
        summary="channel sandbox is down",
        channel="sandbox",
    )


def test_a_p0_alert_pages_the_oncall_user_by_sms_voice_and_inbox_once(settings):
    settings.ALERT_ONCALL_ROTA = ["oncall-first", "oncall-second"]
    settings.ALERT_P0_REPAGE_AFTER = timedelta(seconds=0)
    first = User.objects.create(username="oncall-first", phone="+8613900000006")
    second = User.objects.create(username="oncall-second", phone="+8613900000007")

    alert = raise_p0()
    raise_p0()  # the same fact again: counted, not paged again

    pages = list(Notification.objects.filter(template_key="p0_page").order_by("id"))
    assert_set(
        pages,
        template_key="p0_page",
        priority="critical",
        channels={"sms", "voice", "inbox"},
        recipient=first,
        reference="channel:sandbox",
        link_part=f"/console/alerts/{alert.pk}/",
        locale=settings.LANGUAGE_CODE,
    )
    assert all("channel sandbox is down" in n.body for n in pages)
    deliveries = AlertDelivery.objects.filter(alert=alert, channel__in=["sms", "voice"])
    assert sorted(deliveries.values_list("channel", "target", "status")) == [
        ("sms", "oncall-first", "queued"),
        ("voice", "oncall-first", "queued"),
    ]
    sms = next(n for n in pages if n.channel == "sms")
    assert list(SandboxMessage.objects.filter(channel="sms").values_list("notification_id", flat=True)) == [sms.pk]
    assert SandboxMessage.objects.filter(channel="voice").count() == 1

    assert alert_escalate(alert_id=alert.pk) is not None
    escalated = Notification.objects.filter(template_key="p0_page", user=second)
    assert {n.channel for n in escalated} == {"sms", "voice", "inbox"}
    assert Notification.objects.filter(template_key="p0_page").count() == 6
    assert SandboxMessage.objects.filter(channel="sms").count() == 2


def test_a_rota_naming_nobody_known_records_no_recipient_and_writes_nothing(settings):
    settings.ALERT_ONCALL_ROTA = ["nobody-by-this-name"]
    User.objects.create(username="someone-else", phone="+8613900000008")

    alert = raise_p0()

    deliveries = AlertDelivery.objects.filter(alert=alert, channel__in=["sms", "voice"])
    assert sorted(deliveries.values_list("channel", "status")) == [("sms", "no_recipient"), ("voice", "no_recipient")]
    assert Notification.objects.count() == 0
    assert SandboxMessage.objects.count() == 0


# --- commissions --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "key"),
    [("frozen", "commission_frozen"), ("clawed_back", "commission_clawed_back"), ("released", "commission_released")],
)
@pytest.mark.parametrize("locale", ["zh-hans", "en"])
def test_a_commission_change_is_told_to_the_distributor_at_medium_once(merchant, change, key, locale):
    from tests.factories import CustomerFactory

    distributor = CustomerFactory(merchant=merchant, locale=locale, phone="+8613900000009")
    link = "https://rg.example.com/r/c/abc/"

    def tell() -> int:
        return triggers.commission_changed(
            distributor=distributor,
            change=change,
            commission_id=77,
            order_reference="o-commission-1",
            amount=1990,
            currency="CNY",
            link=link,
            reason="refund approved" if locale == "en" else "退款已同意",
        )

    assert tell() == 2
    assert tell() == 0
    rows = list(Notification.objects.filter(subject_type="commission", subject_id=77))
    assert_set(
        rows,
        template_key=key,
        priority="medium",
        channels={"push", "inbox"},
        recipient=distributor,
        reference="o-commission-1",
        link_part="/r/c/",
        locale=locale,
    )
    amount = triggers.format_amount(1990, "CNY", locale)
    assert all(amount in n.body for n in rows)
