"""G17 for refunds: a freeze of the customer (or its account) holds money that has not left.

End to end over the sandbox bank on the live server: refunds approved but not yet sent, queued for
a retry after a channel failure, in `unknown` waiting for a query-then-resend, and failing over to
the backup channel are each held at their next submission attempt (0 submitted, 0 bank
executions, one `held_frozen` event, a P1 alert); lifting the freeze releases each exactly once.
"""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import AccountFreeze
from apps.accounts.signals import account_unfrozen
from apps.alerts.models import Alert
from apps.gateways.models import ChannelCall, SandboxTransfer
from apps.gateways.sandbox.bank import outage_set
from apps.ledger.models import LedgerAccount
from apps.refunds.models import Refund
from apps.refunds.services import refund_request
from tests.gateways.conftest import HOLDER
from tests.gateways.health_support import announced, health_settings  # noqa: F401 (fixtures)
from tests.refunds.conftest import RETRY_BASE, UNKNOWN_QUERY_DELAY, deliver_webhooks, run_poller
from tests.risk.support import make_rule, only_merchant_rules

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]

S = Refund.Status
SETTLE_AFTER = 3  # SANDBOX_BANK_SETTLE_SECONDS is 2
RECHECK = 60
_numbers = itertools.count(1)


@pytest.fixture
def freeze_settings(refund_settings):
    refund_settings.FREEZE_HOLD_RECHECK = timedelta(seconds=RECHECK)
    return refund_settings


def customer_with_orders(api, *suffixes: str, amount: int = 19900) -> tuple[str, list[str]]:
    """A customer and one paid order per suffix (the payer account, hence the bank's behaviour)."""
    n = next(_numbers)
    customer = f"c-frz-{n}"
    # A long-standing customer: several refunds in a row from a new one would each go to a person.
    since = (timezone.now() - timedelta(days=400)).isoformat()
    body = {"external_id": customer, "name": HOLDER, "locale": "en", "registered_at": since}
    created = api.post("/api/v1/customers", body, format="json")
    assert created.status_code == 201, created.content
    orders = []
    for i, suffix in enumerate(suffixes):
        sku = f"sku-frz-{n}-{i}"
        product = {"sku": sku, "name": "PPT course", "kind": "course", "price": amount, "currency": "CNY"}
        assert api.post("/api/v1/products", product, format="json").status_code == 201
        order = {
            "external_id": f"o-frz-{n}-{i}",
            "customer": customer,
            "product": sku,
            "amount": amount,
            "currency": "CNY",
            "paid_at": (timezone.now() - timedelta(minutes=5)).isoformat(),
            "payment_method": "card",
            "device_id": f"d-frz-{n}",
            "ip": "203.0.113.5",
            "payer_account": {"holder_name": HOLDER, "bank": "ICBC", "account_number": f"6222{n:04d}0{i:03d}{suffix}"},
        }
        response = api.post("/api/v1/orders", order, format="json")
        assert response.status_code == 201, response.content
        orders.append(order["external_id"])
    return customer, orders


def request(api, order: str, amount: int = 19900) -> Refund:
    response = api.post(
        "/api/v1/refunds",
        {"order": order, "amount": amount, "reason": "mistake", "reason_text": "bought twice"},
        format="json",
        HTTP_IDEMPOTENCY_KEY=f"idem-frz-{next(_numbers)}",
    )
    assert response.status_code == 201, response.content
    return Refund.objects.get(pk=response.json()["id"])


def submits(refund: Refund) -> list[tuple[str, str]]:
    return list(
        ChannelCall.objects.filter(reference=f"refund:{refund.pk}", action="submit")
        .order_by("id")
        .values_list("channel__code", "outcome")
    )


def executions(refund: Refund) -> int:
    return sum(SandboxTransfer.objects.filter(request_id=refund.request_id).values_list("executions", flat=True))


def codes(refund: Refund) -> list[str]:
    return list(refund.events.values_list("code", flat=True))


def hold_alerts(refund: Refund) -> list[tuple[str, str]]:
    rows = Alert.objects.filter(subject_type="refund", subject_id=str(refund.pk), kind="refund_held_frozen")
    return list(rows.values_list("tier", "status"))


def in_flight_balance() -> int:
    rows = LedgerAccount.objects.filter(owner="platform", kind=LedgerAccount.Kind.REFUNDS_IN_FLIGHT)
    return sum(rows.values_list("balance", flat=True))


def lift(api, freeze_id: int) -> None:
    response = api.post(f"/api/v1/freezes/{freeze_id}/lift", {"reason": "checked: genuine customer"}, format="json")
    assert response.status_code == 200, response.content


def assert_held(refund: Refund, submitted_before: list) -> None:
    refund.refresh_from_db()
    assert refund.status == S.HELD, codes(refund)
    assert codes(refund).count("held_frozen") == 1
    assert submits(refund) == submitted_before  # nothing sent since the freeze
    assert executions(refund) == 0
    assert hold_alerts(refund) == [("P1", "open")]


def test_a_customer_freeze_holds_approved_retrying_and_unknown_refunds_until_lifted_then_each_goes_once(
    api, merchant, bank, freeze_settings, clock
):
    customer, (o_retry, o_unknown, o_approved) = customer_with_orders(api, "0007", "0006", "0000")
    retrying = request(api, o_retry)  # the bank refuses the first submit: limit reached, retry queued
    unknown = request(api, o_unknown)  # the first submit times out unexecuted: query, then resend
    retrying.refresh_from_db()
    unknown.refresh_from_db()
    assert (retrying.status, unknown.status) == (S.FAILED, S.UNKNOWN)
    assert retrying.next_poll_at is not None

    # Staff freeze the customer just as a third refund is approved: its submission (after commit) meets the freeze.
    with transaction.atomic():
        approved = refund_request(
            merchant=merchant, order_external_id=o_approved, amount=19900, reason="mistake", actor="test"
        )
        assert approved.status == S.APPROVED, approved.decision
        frozen = api.post("/api/v1/freezes", {"customer": customer, "reason": "chargeback dispute"}, format="json")
        assert frozen.status_code == 201, frozen.content
    freeze_id = frozen.json()["id"]
    assert_held(approved, [])

    clock.advance(max(RETRY_BASE, UNKNOWN_QUERY_DELAY) + 1)
    run_poller()  # the retry is due; the unknown one is queried (never executed): both would be sent now
    assert_held(retrying, [("sandbox", "failed")])
    assert_held(unknown, [("sandbox", "timeout")])
    assert codes(unknown)[-3:] == ["submitted", "unknown", "held_frozen"]
    assert in_flight_balance() == 0  # the unknown one's in-flight posting was released when held
    clock.advance(RECHECK + 1)
    run_poller()  # the sweep finds the freeze still in force: nothing moves, nothing recorded again
    for refund in (approved, retrying, unknown):
        assert_held(refund, submits(refund))
    assert ChannelCall.objects.filter(action="submit").count() == 2

    lift(api, freeze_id)
    clock.advance(SETTLE_AFTER)
    deliver_webhooks()
    for refund in (approved, retrying, unknown):
        refund.refresh_from_db()
        assert refund.status == S.SUCCEEDED, codes(refund)
        assert executions(refund) == 1
        assert codes(refund).count("hold_released") == 1
        assert hold_alerts(refund) == [("P1", "resolved")]
    assert submits(approved) == [("sandbox", "processing")]
    assert submits(retrying) == [("sandbox", "failed"), ("sandbox", "processing")]
    assert submits(unknown) == [("sandbox", "timeout"), ("sandbox", "processing")]

    # A second lift signal and later sweeps send nothing more.
    freeze = AccountFreeze.objects.get(pk=freeze_id)
    account_unfrozen.send(
        sender=AccountFreeze,
        freeze_id=freeze.pk,
        merchant_id=merchant.pk,
        customer_id=freeze.customer_id,
        account_fingerprint="",
    )
    clock.advance(RECHECK + 1)
    run_poller()
    assert ChannelCall.objects.filter(action="submit").count() == 2 + 3
    assert sum(executions(refund) for refund in (approved, retrying, unknown)) == 3
    assert in_flight_balance() == 0


def test_a_refund_failing_over_to_the_backup_channel_is_held_then_leaves_once_through_the_backup(
    api,
    bank,
    freeze_settings,
    clock,
    health_settings,  # noqa: F811 (the imported fixture)
    announced,  # noqa: F811 (the imported fixture)
):
    customer, (order,) = customer_with_orders(api, "0000")
    outage_set(channel="sandbox", enabled=True)
    refund = request(api, order)
    refund.refresh_from_db()
    assert (refund.status, refund.failure_code) == (S.FAILED, "outage")

    frozen = api.post("/api/v1/freezes", {"customer": customer, "reason": "fraud report"}, format="json")
    assert frozen.status_code == 201, frozen.content
    clock.advance(RETRY_BASE + 1)
    run_poller()  # the retry would fail over to sandbox-backup
    assert_held(refund, [("sandbox", "error")])

    lift(api, frozen.json()["id"])
    refund.refresh_from_db()
    assert submits(refund) == [("sandbox", "error"), ("sandbox-backup", "processing")]
    assert list(SandboxTransfer.objects.filter(request_id=refund.request_id).values_list("channel", "executions")) == [
        ("sandbox-backup", 1)
    ]


def test_a_block_and_freeze_rule_on_a_later_request_holds_the_customers_earlier_approved_refund(
    api, merchant, bank, freeze_settings, clock
):
    only_merchant_rules(merchant)
    make_rule(api, expression="amount < 5000", action="block_and_freeze", mode="active")
    customer, (first_order, later_order) = customer_with_orders(api, "0007", "0000")
    earlier = request(api, first_order)  # approved; its first submit is refused (limit): retry queued
    earlier.refresh_from_db()
    assert earlier.status == S.FAILED

    later = request(api, later_order, amount=4000)
    assert later.status == S.REJECTED
    freeze = AccountFreeze.objects.get(customer__external_id=customer, lifted_at__isnull=True)
    assert freeze.actor_label == "risk"

    clock.advance(RETRY_BASE + 1)
    run_poller()
    assert_held(earlier, [("sandbox", "failed")])
    held = earlier.events.get(code="held_frozen")
    assert (held.responsible_party, held.detail["freeze_id"]) == ("platform", freeze.pk)
    assert submits(later) == []
