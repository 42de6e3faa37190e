"""Wrong-payee interception (错款拦截) and G18 for refunds: a refund to a destination the customer
named instead of the way the money came is verified with the channel before it is sent; one the
channel refuses is never sent and waits for the customer's fix; a known number named under another
holder is a new payee record, shown and sent under the name the request gave.

The bank is the sandbox bank in-process (`inproc_bank`: the real adapter, HTTP intercepted at the
transport); what the bank received is read from the bank's own functions."""

from __future__ import annotations

import itertools

import pytest

from apps.accounts.models import BankAccount
from apps.gateways.models import ChannelCall, SandboxTransfer
from apps.gateways.sandbox import bank as sandbox
from apps.ledger.models import LedgerTransaction
from apps.orders.models import Order
from apps.refunds.models import Refund
from apps.refunds.services import refund_update_destination
from apps.refunds.tasks import refund_poll_due_task
from tests.gateways.conftest import HOLDER
from tests.payouts.conftest import inproc_bank, payout_settings  # noqa: F401 (fixtures)
from tests.refunds.conftest import open_order

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("inproc_bank")]

S = Refund.Status
SETTLE_AFTER = 3  # SANDBOX_BANK_SETTLE_SECONDS is 2
_keys = itertools.count(1)


@pytest.fixture
def sent_to(monkeypatch) -> list[tuple[str, str]]:
    """(holder name, last four) of every transfer the bank was asked to make."""
    seen: list[tuple[str, str]] = []
    submit = sandbox.transfer_submit

    def recorded(*, channel: str, data: dict):
        seen.append((data["account"]["holder_name"], data["account"]["number"][-4:]))
        return submit(channel=channel, data=data)

    monkeypatch.setattr(sandbox, "transfer_submit", recorded)
    return seen


def _refund(api, order: str, amount: int, destination: dict | None = None) -> Refund:
    body = {"order": order, "amount": amount, "reason": "mistake", "reason_text": "bought twice"}
    if destination is not None:
        body["destination_account"] = destination
    response = api.post("/api/v1/refunds", body, format="json", HTTP_IDEMPOTENCY_KEY=f"k-{next(_keys)}")
    assert response.status_code == 201, response.content
    return Refund.objects.select_related("destination_account").get(pk=response.json()["id"])


def _calls(refund: Refund, action: str) -> int:
    return ChannelCall.objects.filter(reference=f"refund:{refund.pk}", action=action).count()


def _codes(refund: Refund) -> list[str]:
    return list(refund.events.order_by("created_at", "id").values_list("code", flat=True))


def test_a_new_destination_the_channel_refuses_is_never_sent_and_waits_for_the_customers_fix(
    api, refund_settings, clock, sent_to, django_capture_on_commit_callbacks
):
    refund_settings.REFUND_POLL_CONCURRENCY = 1
    order = open_order(api, "0000")
    wrong = {"holder_name": "李四", "bank": "ICBC", "account_number": "6222020000990004"}  # 0004: name mismatch
    with django_capture_on_commit_callbacks(execute=True):
        refund = _refund(api, order, 19900, wrong)

    refund.refresh_from_db()
    assert refund.status == S.NEEDS_ACTION
    assert (refund.failure_code, refund.responsible_party, refund.next_poll_at) == (
        "holder_name_mismatch",
        "customer",
        None,
    )
    assert _codes(refund) == ["requested", "approved", "needs_action"]
    why = refund.events.get(code="needs_action")
    assert why.message_key == "refund.needs_action.holder_name_mismatch"
    assert why.detail["check"] == "account_verification"
    assert (_calls(refund, "verify"), _calls(refund, "submit")) == (1, 0)
    assert sent_to == []
    assert SandboxTransfer.objects.count() == 0
    assert not LedgerTransaction.objects.filter(reference__startswith=f"refund:{refund.pk}:").exists()
    shown = api.get(f"/api/v1/refunds/{refund.pk}").json()["destination_account"]
    assert shown == {"holder_name": "李四", "bank": "ICBC", "account_number": "**** 0004"}
    assert refund_poll_due_task.apply().result == 0  # nothing is due: the customer must act

    fixed = {"holder_name": "李四", "bank": "ICBC", "account_number": "6222020000990000"}
    with django_capture_on_commit_callbacks(execute=True):
        refund_update_destination(refund_id=refund.pk, destination_account=fixed, actor="customer:progress_link")
    clock.advance(SETTLE_AFTER + refund_settings.REFUND_POLL_INTERVAL.total_seconds())
    refund_poll_due_task.apply()

    refund.refresh_from_db()
    assert refund.status == S.SUCCEEDED
    assert (_calls(refund, "verify"), _calls(refund, "submit")) == (2, 1)
    assert sent_to == [("李四", "0000")]
    assert SandboxTransfer.objects.get().executions == 1


def test_the_payers_number_under_another_holder_is_a_new_payee_verified_once_and_sent_under_that_name(
    api, refund_settings, sent_to, django_capture_on_commit_callbacks
):
    # Three refunds of one order: keep the customer out of the "watch" trust tier (manual review).
    refund_settings.REFUND_TRUST = {**refund_settings.REFUND_TRUST, "watch_min_refunds": 10}
    order = open_order(api, "0000")
    payer = Order.objects.get(external_id=order).payer_account
    named = {"holder_name": "王小明的店", "bank": "ICBC", "account_number": payer.reveal_number()}
    with django_capture_on_commit_callbacks(execute=True):
        first = _refund(api, order, 5000, named)
        second = _refund(api, order, 5000, named)
        by_payer_route = _refund(api, order, 5000)

    for refund in (first, second, by_payer_route):
        refund.refresh_from_db()
        assert refund.status == S.PROCESSING
    assert first.destination_account_id == second.destination_account_id != payer.pk
    assert by_payer_route.destination_account_id == payer.pk
    destination = BankAccount.objects.get(pk=first.destination_account_id)
    assert (destination.holder_name, destination.fingerprint) == ("王小明的店", payer.fingerprint)
    assert destination.verified_at is not None
    payer.refresh_from_db()
    assert payer.holder_name == HOLDER  # the order's payer is not renamed
    # One verification for the new payee, none for the way the money came.
    assert [_calls(r, "verify") for r in (first, second, by_payer_route)] == [1, 0, 0]
    assert sent_to == [("王小明的店", "0000"), ("王小明的店", "0000"), (HOLDER, "0000")]
    for refund, holder in ((first, "王小明的店"), (by_payer_route, HOLDER)):
        assert api.get(f"/api/v1/refunds/{refund.pk}").json()["destination_account"]["holder_name"] == holder


def test_a_verification_the_channel_cannot_answer_is_asked_again_before_anything_is_sent(
    api, refund_settings, clock, sent_to, monkeypatch, django_capture_on_commit_callbacks
):
    refund_settings.REFUND_POLL_CONCURRENCY = 1
    order = open_order(api, "0000")
    verify, bank_down = sandbox.account_verify, [True]
    monkeypatch.setattr(
        sandbox,
        "account_verify",
        lambda *, account: sandbox.outage_answer() if bank_down[0] else verify(account=account),
    )
    with django_capture_on_commit_callbacks(execute=True):
        refund = _refund(
            api, order, 19900, {"holder_name": "李四", "bank": "ICBC", "account_number": "6222020000880000"}
        )

    refund.refresh_from_db()
    assert refund.status == S.APPROVED
    assert _codes(refund) == ["requested", "approved", "verification_unanswered"]
    assert (_calls(refund, "verify"), _calls(refund, "submit")) == (1, 0)
    assert sent_to == []

    bank_down[0] = False
    clock.advance(refund_settings.REFUND_RETRY_BASE.total_seconds() + 1)
    with django_capture_on_commit_callbacks(execute=True):
        refund_poll_due_task.apply()

    refund.refresh_from_db()
    assert refund.status == S.PROCESSING
    assert (_calls(refund, "verify"), _calls(refund, "submit")) == (2, 1)
    assert sent_to == [("李四", "0000")]
