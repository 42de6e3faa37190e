"""Every sandbox account suffix end to end: API → refund FSM → sandbox bank over real HTTP →
signed webhooks and the poller → final state, timeline, channel calls, bank executions, ledger."""

from __future__ import annotations

import functools

import pytest
from django.utils.html import escape

from apps.gateways.models import ChannelCall, InboundWebhook, SandboxTransfer
from apps.gateways.sandbox.bank import outage_set
from apps.ledger.models import LedgerAccount, LedgerTransaction
from apps.refunds.models import Refund
from apps.refunds.services import REFUNDS, refund_update_destination
from apps.refunds.tasks import refund_poll_due_task
from apps.track.messages import step_text
from apps.transfers import services as transfer_services
from apps.transfers.poller import transfer_poll
from tests.gateways.conftest import HOLDER, bank_event_body, post_webhook
from tests.refunds.conftest import (
    AMOUNT,
    POLL_INTERVAL,
    RETRY_BASE,
    UNKNOWN_QUERY_DELAY,
    deliver_webhooks,
    open_order,
    request_refund,
    run_poller,
)

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(90)]

SETTLE_AFTER = 3  # SANDBOX_BANK_SETTLE_SECONDS is 2


# --- what the tests look at -----------------------------------------------------------------------


def codes(refund_id: int) -> list[str]:
    return list(Refund.objects.get(pk=refund_id).events.order_by("created_at", "id").values_list("code", flat=True))


def calls(refund_id: int, action: str) -> int:
    return ChannelCall.objects.filter(reference=f"refund:{refund_id}", action=action).count()


def executions(request_id: str) -> int:
    return SandboxTransfer.objects.filter(request_id=request_id).values_list("executions", flat=True).first() or 0


def balance(owner: str, kind: str) -> int:
    row = LedgerAccount.objects.filter(owner=owner, kind=kind, currency="CNY").values_list("balance", flat=True)
    return row.first() or 0


def payable(refund: Refund) -> int:
    """What the platform owes the merchant (merchant_payable is a credit balance)."""
    return -balance(f"merchant:{refund.merchant_id}", LedgerAccount.Kind.MERCHANT_PAYABLE)


def in_flight() -> int:
    """Money sent to banks and not yet confirmed (refunds_in_flight is a credit balance)."""
    return -balance("platform", LedgerAccount.Kind.REFUNDS_IN_FLIGHT)


def ledger_kinds(refund_id: int) -> list[str]:
    return list(
        LedgerTransaction.objects.filter(reference__startswith=f"refund:{refund_id}:")
        .order_by("id")
        .values_list("reference", flat=True)
    )


def api_view(api, refund_id: int) -> tuple[dict, list[str]]:
    detail = api.get(f"/api/v1/refunds/{refund_id}")
    assert detail.status_code == 200
    events = api.get(f"/api/v1/refunds/{refund_id}/events", {"limit": 100})
    assert events.status_code == 200
    body = events.json()
    items = body["results"] if isinstance(body, dict) else body
    return detail.json(), [item["code"] for item in items]


def start(api, suffix: str) -> tuple[Refund, int]:
    """Open an order on an account ending in `suffix`, note what the merchant is owed, refund it all."""
    order = open_order(api, suffix)
    owed = -balance(f"merchant:{api.merchant.pk}", LedgerAccount.Kind.MERCHANT_PAYABLE)
    body = request_refund(api, order)
    assert body["status"] == "approved"
    assert body["decision"]["outcome"] == "approved"
    return Refund.objects.get(pk=body["id"]), owed


def assert_succeeded_books(refund: Refund, owed_before: int) -> None:
    assert in_flight() == 0
    assert payable(refund) == owed_before - refund.amount


def assert_restored_books(refund: Refund, owed_before: int) -> None:
    assert in_flight() == 0
    assert payable(refund) == owed_before


def assert_visible(api, client, refund_id: int) -> None:
    """The API and the customer's progress page say what the database says."""
    refund = Refund.objects.get(pk=refund_id)
    detail, event_codes = api_view(api, refund_id)
    assert detail["status"] == refund.status
    assert event_codes == codes(refund_id)
    url = detail["progress_url"]
    path = url[url.index("/r/") :]
    page = client.get(path)
    assert page.status_code == 200
    assert escape(step_text(event_codes[-1], refund.customer.locale)) in page.content.decode()
    token = path.split("/")[2]
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert client.get(f"/r/{tampered}/").status_code == 404


# --- one test per suffix ---------------------------------------------------------------------------


def test_0000_succeeds_shortly_after_submission_by_webhook(api, client, bank, refund_settings, clock, anomalies):
    refund, owed = start(api, "0000")
    assert refund.status == Refund.Status.PROCESSING  # the submit answer, applied in the request

    deliver_webhooks()
    clock.advance(SETTLE_AFTER)
    deliver_webhooks()

    refund.refresh_from_db()
    assert refund.status == Refund.Status.SUCCEEDED
    assert codes(refund.pk) == ["requested", "approved", "submitted", "processing", "succeeded"]
    assert (calls(refund.pk, "submit"), calls(refund.pk, "query")) == (1, 0)
    assert executions(refund.request_id) == 1
    assert refund.channel_reference == SandboxTransfer.objects.get(request_id=refund.request_id).transfer_id
    assert ledger_kinds(refund.pk) == [f"refund:{refund.pk}:inflight:1", f"refund:{refund.pk}:settle"]
    assert_succeeded_books(refund, owed)
    assert anomalies.kinds(refund.pk) == []
    assert_visible(api, client, refund.pk)


def test_0001_is_still_processing_after_24_hours_then_succeeds_after_the_delay(
    api, client, bank, refund_settings, clock
):
    refund, owed = start(api, "0001")
    clock.advance(24 * 3600)
    assert run_poller() == [refund.pk]
    refund.refresh_from_db()
    assert refund.status == Refund.Status.PROCESSING
    assert in_flight() == refund.amount

    clock.advance(6 * 3600 + 1)  # the bank's 30 h delay has passed
    run_poller()

    refund.refresh_from_db()
    assert refund.status == Refund.Status.SUCCEEDED
    assert codes(refund.pk) == ["requested", "approved", "submitted", "processing", "succeeded"]
    assert (calls(refund.pk, "submit"), calls(refund.pk, "query")) == (1, 2)
    assert executions(refund.request_id) == 1
    assert_succeeded_books(refund, owed)
    assert_visible(api, client, refund.pk)


def test_0002_account_frozen_needs_the_customers_action_and_restores_the_merchants_money(
    api, client, bank, refund_settings, clock
):
    refund, owed = start(api, "0002")
    clock.advance(SETTLE_AFTER)
    deliver_webhooks()

    refund.refresh_from_db()
    assert refund.status == Refund.Status.NEEDS_ACTION
    assert refund.failure_code == "account_frozen"
    assert refund.responsible_party == "customer"
    assert refund.next_poll_at is None
    assert codes(refund.pk) == ["requested", "approved", "submitted", "processing", "failed", "needs_action"]
    assert (calls(refund.pk, "submit"), calls(refund.pk, "query")) == (1, 0)
    assert executions(refund.request_id) == 0
    assert ledger_kinds(refund.pk) == [f"refund:{refund.pk}:inflight:1", f"refund:{refund.pk}:release:1"]
    assert_restored_books(refund, owed)
    assert run_poller() == []  # nothing to poll: the customer must act
    assert_visible(api, client, refund.pk)


def test_0003_succeeds_then_is_reversed_and_the_customer_balance_holds_the_money(
    api, client, bank, refund_settings, clock, anomalies
):
    refund, owed = start(api, "0003")
    clock.advance(SETTLE_AFTER)
    deliver_webhooks()
    refund.refresh_from_db()
    assert refund.status == Refund.Status.SUCCEEDED
    assert_succeeded_books(refund, owed)

    clock.advance(61)  # SANDBOX_BANK_RETURN_SECONDS
    deliver_webhooks()
    run_poller()  # a verification poll after the webhook changes nothing
    deliver_webhooks()

    refund.refresh_from_db()
    assert refund.status == Refund.Status.REVERSED
    assert refund.failure_code == "account_closed"
    assert refund.responsible_party == "customer"
    assert codes(refund.pk) == ["requested", "approved", "submitted", "processing", "succeeded", "reversed"]
    assert calls(refund.pk, "submit") == 1
    assert executions(refund.request_id) == 1
    assert ledger_kinds(refund.pk) == [
        f"refund:{refund.pk}:inflight:1",
        f"refund:{refund.pk}:settle",
        f"refund:{refund.pk}:returned",
    ]
    assert in_flight() == 0
    assert payable(refund) == owed - refund.amount  # the merchant still paid the refund
    assert balance(f"customer:{refund.customer_id}", LedgerAccount.Kind.CUSTOMER_BALANCE) == -refund.amount
    assert anomalies.kinds(refund.pk) == ["reversed_after_success"]
    assert_visible(api, client, refund.pk)


def test_0004_name_mismatch_needs_action_then_a_fixed_account_gets_a_new_request_id_and_succeeds(
    api, client, bank, refund_settings, clock
):
    refund, owed = start(api, "0004")
    refund.refresh_from_db()
    assert refund.status == Refund.Status.NEEDS_ACTION
    assert refund.failure_code == "holder_name_mismatch"
    assert refund.responsible_party == "customer"
    first_request_id = refund.request_id
    assert_restored_books(refund, owed)

    refund_update_destination(
        refund_id=refund.pk,
        destination_account={"holder_name": HOLDER, "bank": "ICBC", "account_number": "6222021111110000"},
        actor="customer",
    )
    refund.refresh_from_db()
    assert refund.request_id != first_request_id
    assert refund.status == Refund.Status.PROCESSING
    clock.advance(SETTLE_AFTER)
    deliver_webhooks()

    refund.refresh_from_db()
    assert refund.status == Refund.Status.SUCCEEDED
    assert codes(refund.pk) == [
        "requested",
        "approved",
        "submitted",
        "failed",
        "needs_action",
        "account_updated",
        "submitted",
        "processing",
        "succeeded",
    ]
    assert (calls(refund.pk, "submit"), calls(refund.pk, "query")) == (2, 0)
    assert executions(first_request_id) == 0
    assert executions(refund.request_id) == 1
    assert ledger_kinds(refund.pk) == [
        f"refund:{refund.pk}:inflight:1",
        f"refund:{refund.pk}:release:1",
        f"refund:{refund.pk}:inflight:2",
        f"refund:{refund.pk}:settle",
    ]
    assert_succeeded_books(refund, owed)
    assert_visible(api, client, refund.pk)


def test_0002_late_webhooks_for_the_old_request_id_do_not_touch_the_fixed_refund(
    api, client, bank, refund_settings, clock
):
    refund, owed = start(api, "0002")
    clock.advance(SETTLE_AFTER + POLL_INTERVAL)
    run_poller()  # the poller finds the frozen account before any webhook arrives
    refund.refresh_from_db()
    assert refund.status == Refund.Status.NEEDS_ACTION
    old_request_id = refund.request_id

    refund_update_destination(
        refund_id=refund.pk,
        destination_account={"holder_name": HOLDER, "bank": "ICBC", "account_number": "6222021111110000"},
        actor="customer",
    )
    clock.advance(SETTLE_AFTER)
    deliver_webhooks()  # the old request's processing + failed, the new one's processing + succeeded

    refund.refresh_from_db()
    assert refund.status == Refund.Status.SUCCEEDED
    old_hooks = InboundWebhook.objects.filter(request_id=old_request_id)
    assert set(old_hooks.values_list("outcome", flat=True)) == {"ignored_stale"}
    assert old_hooks.count() == 2
    assert codes(refund.pk) == [
        "requested",
        "approved",
        "submitted",
        "processing",
        "failed",
        "needs_action",
        "account_updated",
        "submitted",
        "processing",
        "succeeded",
    ]
    assert executions(old_request_id) == 0
    assert executions(refund.request_id) == 1
    assert_succeeded_books(refund, owed)


def test_0005_timeout_after_execution_is_queried_not_resent_and_pays_once(api, client, bank, refund_settings, clock):
    refund, owed = start(api, "0005")
    refund.refresh_from_db()
    assert refund.status == Refund.Status.UNKNOWN
    assert executions(refund.request_id) == 1

    clock.advance(SETTLE_AFTER)
    run_poller()

    refund.refresh_from_db()
    assert refund.status == Refund.Status.SUCCEEDED
    assert codes(refund.pk) == ["requested", "approved", "submitted", "unknown", "succeeded"]
    assert (calls(refund.pk, "submit"), calls(refund.pk, "query")) == (1, 1)
    assert executions(refund.request_id) == 1
    assert_succeeded_books(refund, owed)
    deliver_webhooks()  # the bank's own webhooks, late, change nothing
    assert codes(refund.pk)[-1] == "succeeded"
    assert_visible(api, client, refund.pk)


def test_0006_timeout_without_execution_is_queried_then_resent_once_with_the_same_request_id(
    api, client, bank, refund_settings, clock
):
    refund, owed = start(api, "0006")
    refund.refresh_from_db()
    assert refund.status == Refund.Status.UNKNOWN
    assert executions(refund.request_id) == 0

    clock.advance(UNKNOWN_QUERY_DELAY)
    run_poller()
    refund.refresh_from_db()
    assert refund.status == Refund.Status.PROCESSING
    clock.advance(SETTLE_AFTER + POLL_INTERVAL)
    run_poller()

    refund.refresh_from_db()
    assert refund.status == Refund.Status.SUCCEEDED
    assert codes(refund.pk) == [
        "requested",
        "approved",
        "submitted",
        "unknown",
        "resubmitted",
        "processing",
        "succeeded",
    ]
    assert (calls(refund.pk, "submit"), calls(refund.pk, "query")) == (2, 2)
    assert set(ChannelCall.objects.filter(reference=f"refund:{refund.pk}").values_list("request_id", flat=True)) == {
        refund.request_id
    }
    assert executions(refund.request_id) == 1
    assert_succeeded_books(refund, owed)
    assert_visible(api, client, refund.pk)


def test_0007_channel_limit_fails_retryably_then_the_retry_succeeds(api, client, bank, refund_settings, clock):
    refund, owed = start(api, "0007")
    refund.refresh_from_db()
    assert refund.status == Refund.Status.FAILED
    assert refund.failure_code == "channel_limit"
    assert refund.responsible_party == "bank"
    assert refund.next_poll_at is not None
    assert_restored_books(refund, owed)

    clock.advance(RETRY_BASE + 1)
    run_poller()
    refund.refresh_from_db()
    assert refund.status == Refund.Status.PROCESSING
    clock.advance(SETTLE_AFTER)
    deliver_webhooks()

    refund.refresh_from_db()
    assert refund.status == Refund.Status.SUCCEEDED
    assert refund.retry_count == 1
    assert codes(refund.pk) == [
        "requested",
        "approved",
        "submitted",
        "failed",
        "retrying",
        "submitted",
        "processing",
        "succeeded",
    ]
    assert (calls(refund.pk, "submit"), calls(refund.pk, "query")) == (2, 0)
    assert executions(refund.request_id) == 1
    assert ledger_kinds(refund.pk) == [
        f"refund:{refund.pk}:inflight:1",
        f"refund:{refund.pk}:release:1",
        f"refund:{refund.pk}:inflight:2",
        f"refund:{refund.pk}:settle",
    ]
    assert_succeeded_books(refund, owed)
    assert_visible(api, client, refund.pk)


def test_0008_duplicate_out_of_order_webhooks_settle_once_and_never_move_backwards(
    api, client, bank, refund_settings, clock
):
    refund, owed = start(api, "0008")
    clock.advance(SETTLE_AFTER)
    assert deliver_webhooks() == 4  # succeeded, processing, then each again

    refund.refresh_from_db()
    assert refund.status == Refund.Status.SUCCEEDED
    assert codes(refund.pk) == ["requested", "approved", "submitted", "processing", "succeeded"]
    assert codes(refund.pk).count("succeeded") == 1
    hooks = InboundWebhook.objects.filter(request_id=refund.request_id).order_by("id")
    assert list(hooks.values_list("status", "outcome")) == [("succeeded", "applied"), ("processing", "ignored_stale")]
    assert (calls(refund.pk, "submit"), calls(refund.pk, "query")) == (1, 0)
    assert executions(refund.request_id) == 1
    assert LedgerTransaction.objects.filter(reference=f"refund:{refund.pk}:settle").count() == 1
    assert_succeeded_books(refund, owed)
    assert_visible(api, client, refund.pk)


def test_0009_held_by_the_banks_risk_control_stays_processing_with_a_held_event(
    api, client, bank, refund_settings, clock
):
    refund, owed = start(api, "0009")
    clock.advance(SETTLE_AFTER)
    deliver_webhooks()
    clock.advance(POLL_INTERVAL)
    run_poller()  # a poll that sees the hold again records nothing new

    refund.refresh_from_db()
    assert refund.status == Refund.Status.PROCESSING
    assert codes(refund.pk) == ["requested", "approved", "submitted", "processing", "held_by_bank"]
    assert (calls(refund.pk, "submit"), calls(refund.pk, "query")) == (1, 1)
    assert executions(refund.request_id) == 0
    assert in_flight() == refund.amount  # still on its way: neither settled nor released
    assert payable(refund) == owed - refund.amount
    assert_visible(api, client, refund.pk)


def test_outage_fails_retryably_then_the_retry_fails_over_to_the_backup_channel(
    api, client, bank, refund_settings, clock
):
    outage_set(channel="sandbox", enabled=True)
    refund, owed = start(api, "0000")
    refund.refresh_from_db()
    assert refund.status == Refund.Status.FAILED
    assert refund.failure_code == "outage"
    assert refund.responsible_party == "bank"
    assert refund.next_poll_at is not None
    assert_restored_books(refund, owed)

    clock.advance(RETRY_BASE + 1)
    run_poller()
    refund.refresh_from_db()
    assert refund.status == Refund.Status.PROCESSING
    assert refund.channel.code == "sandbox-backup"
    clock.advance(SETTLE_AFTER)
    deliver_webhooks()

    refund.refresh_from_db()
    assert refund.status == Refund.Status.SUCCEEDED
    assert refund.retry_count == 1
    assert codes(refund.pk) == [
        "requested",
        "approved",
        "submitted",
        "failed",
        "retrying",
        "submitted",
        "processing",
        "succeeded",
    ]
    submits = ChannelCall.objects.filter(reference=f"refund:{refund.pk}", action="submit").order_by("id")
    assert list(submits.values_list("channel__code", "outcome")) == [
        ("sandbox", "error"),
        ("sandbox-backup", "processing"),
    ]
    assert calls(refund.pk, "query") == 0
    assert SandboxTransfer.objects.get(request_id=refund.request_id).channel == "sandbox-backup"
    assert executions(refund.request_id) == 1
    assert InboundWebhook.objects.filter(channel__code="sandbox-backup", request_id=refund.request_id).count() == 2
    assert_succeeded_books(refund, owed)
    assert_visible(api, client, refund.pk)


# --- webhook safety at the refund level (G5, G6) ----------------------------------------------------


def send_event(
    client, refund: Refund, status: str, *, event_id: str, amount: int | None = None, code: str = "", currency="CNY"
):
    body = bank_event_body(
        event_id=event_id,
        request_id=refund.request_id,
        status=status,
        amount=refund.amount if amount is None else amount,
        code=code,
        currency=currency,
    )
    response = post_webhook(client, body)
    assert response.status_code == 200, response.content
    return response.json()["events"][event_id]


def snapshot(refund_id: int) -> tuple:
    refund = Refund.objects.get(pk=refund_id)
    return (
        refund.status,
        codes(refund_id),
        InboundWebhook.objects.count(),
        LedgerTransaction.objects.count(),
        in_flight(),
    )


def test_unknown_reference_is_acknowledged_and_changes_no_refund(api, client, bank, refund_settings):
    refund, _ = start(api, "0000")
    before = snapshot(refund.pk)
    body = bank_event_body(event_id="evt_nobody", request_id="refund:999999:1", status="succeeded", amount=AMOUNT)
    response = post_webhook(client, body)
    assert response.status_code == 200
    assert response.json()["events"] == {"evt_nobody": "unknown_reference"}
    assert snapshot(refund.pk)[:2] == before[:2]
    assert snapshot(refund.pk)[3:] == before[3:]


def test_processing_after_succeeded_is_ignored(api, client, bank, refund_settings):
    refund, owed = start(api, "0000")
    assert send_event(client, refund, "succeeded", event_id="evt_ok") == "applied"
    before = snapshot(refund.pk)
    assert send_event(client, refund, "processing", event_id="evt_late") == "ignored_stale"
    assert snapshot(refund.pk)[:2] == before[:2]
    assert Refund.objects.get(pk=refund.pk).status == Refund.Status.SUCCEEDED
    assert_succeeded_books(refund, owed)


def test_failed_after_succeeded_is_ignored_and_raised_as_an_anomaly(api, client, bank, refund_settings, anomalies):
    refund, owed = start(api, "0000")
    assert send_event(client, refund, "succeeded", event_id="evt_ok") == "applied"
    ledger_before = ledger_kinds(refund.pk)
    outcome = send_event(client, refund, "failed", event_id="evt_late_fail", code="ACCOUNT_FROZEN")
    assert outcome == "ignored_stale"
    assert send_event(client, refund, "failed", event_id="evt_late_fail") == "duplicate"
    refund.refresh_from_db()
    assert refund.status == Refund.Status.SUCCEEDED
    assert refund.failure_code == ""
    assert codes(refund.pk).count("failed") == 0
    assert ledger_kinds(refund.pk) == ledger_before  # no release of money that has arrived
    assert anomalies.kinds(refund.pk) == ["late_failure_after_success"]
    assert_succeeded_books(refund, owed)


def test_webhook_with_another_amount_or_currency_is_not_applied(api, client, bank, refund_settings, anomalies):
    refund, owed = start(api, "0000")
    refund.refresh_from_db()
    before = snapshot(refund.pk)
    outcome = send_event(client, refund, "succeeded", event_id="evt_wrong_amount", amount=refund.amount + 1)
    assert outcome == "rejected_mismatch"
    after = snapshot(refund.pk)
    assert (after[0], after[1], after[3], after[4]) == (before[0], before[1], before[3], before[4])
    outcome = send_event(client, refund, "succeeded", event_id="evt_wrong_currency", currency="USD")
    assert outcome == "rejected_mismatch"
    assert Refund.objects.get(pk=refund.pk).status == before[0]
    assert anomalies.kinds(refund.pk) == ["amount_mismatch", "amount_mismatch"]
    assert not LedgerTransaction.objects.filter(reference=f"refund:{refund.pk}:settle").exists()

    assert send_event(client, refund, "succeeded", event_id="evt_right_amount") == "applied"
    assert Refund.objects.get(pk=refund.pk).status == Refund.Status.SUCCEEDED
    assert_succeeded_books(refund, owed)


# --- the same outcomes when no webhook ever arrives: the beat task and its poll tasks alone -----------


@pytest.mark.parametrize(
    ("suffix", "status", "timeline"),
    [
        ("0000", "succeeded", ["requested", "approved", "submitted", "processing", "succeeded"]),
        ("0002", "needs_action", ["requested", "approved", "submitted", "processing", "failed", "needs_action"]),
        ("0003", "reversed", ["requested", "approved", "submitted", "processing", "succeeded", "reversed"]),
    ],
)
def test_without_webhooks_the_poller_alone_reaches_the_same_outcome(
    api, client, bank, refund_settings, clock, anomalies, suffix, status, timeline
):
    refund, owed = start(api, suffix)
    clock.advance(SETTLE_AFTER + POLL_INTERVAL)
    assert refund_poll_due_task.apply().result == 1
    clock.advance(61)  # past the 0003 return; verification polls keep looking for it
    refund_poll_due_task.delay()

    refund.refresh_from_db()
    assert refund.status == status
    assert codes(refund.pk) == timeline
    assert calls(refund.pk, "submit") == 1
    assert calls(refund.pk, "query") == (1 if suffix == "0002" else 2)
    assert InboundWebhook.objects.count() == 0
    assert in_flight() == 0
    if status == "needs_action":
        assert payable(refund) == owed
    else:
        assert payable(refund) == owed - refund.amount
    assert anomalies.kinds(refund.pk) == (["reversed_after_success"] if suffix == "0003" else [])
    assert_visible(api, client, refund.pk)


def test_a_crash_between_commit_and_call_is_found_by_a_query_and_sent_once(
    api, client, bank, refund_settings, clock, monkeypatch
):
    """G3, "after save, before call": the refund is committed `submitted` but the bank never hears
    of it. The poller's query finds nothing, so it is sent again, once, under the same request id."""
    monkeypatch.setattr(transfer_services, "_send", lambda policy, refund: refund)  # the worker dies right after commit
    refund, owed = start(api, "0000")
    monkeypatch.undo()
    refund.refresh_from_db()
    assert refund.status == Refund.Status.SUBMITTED
    assert calls(refund.pk, "submit") == 0

    clock.advance(POLL_INTERVAL)
    run_poller()
    clock.advance(SETTLE_AFTER + POLL_INTERVAL)
    run_poller()

    refund.refresh_from_db()
    assert refund.status == Refund.Status.SUCCEEDED
    assert codes(refund.pk) == [
        "requested",
        "approved",
        "submitted",
        "unknown",
        "resubmitted",
        "processing",
        "succeeded",
    ]
    assert (calls(refund.pk, "submit"), calls(refund.pk, "query")) == (1, 2)
    assert executions(refund.request_id) == 1
    assert_succeeded_books(refund, owed)


def test_a_submitted_refund_whose_call_may_still_be_running_is_not_resent(api, bank, refund_settings, monkeypatch):
    monkeypatch.setattr(transfer_services, "_send", lambda policy, refund: refund)
    refund, _ = start(api, "0000")
    monkeypatch.undo()
    refund = transfer_poll(REFUNDS, refund.pk)  # at once: the call could still be on its way

    refund.refresh_from_db()
    assert refund.status == Refund.Status.SUBMITTED
    assert codes(refund.pk) == ["requested", "approved", "submitted"]
    assert (calls(refund.pk, "submit"), calls(refund.pk, "query")) == (0, 1)


def test_two_workers_holding_the_same_submitted_refund_call_the_bank_once(
    api, client, bank, refund_settings, monkeypatch
):
    """G3/G7: a send task delivered twice (broker redelivery, racing workers) makes one call:
    both copies loaded the refund as `submitted`, only one wins the claim on the owed send."""
    real_send = functools.partial(transfer_services._send, REFUNDS)
    monkeypatch.setattr(transfer_services, "_send", lambda policy, refund: refund)  # commit `submitted`, send nothing
    refund, _owed = start(api, "0000")
    monkeypatch.undo()
    first_copy = Refund.objects.select_related("channel", "destination_account").get(pk=refund.pk)
    second_copy = Refund.objects.select_related("channel", "destination_account").get(pk=refund.pk)

    real_send(first_copy)
    real_send(second_copy)

    refund.refresh_from_db()
    assert calls(refund.pk, "submit") == 1
    assert (refund.send_seq, refund.sent_seq) == (1, 1)
    assert refund.status == Refund.Status.PROCESSING
