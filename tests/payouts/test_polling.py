"""The poller: batches of due rows, and recovery of work a crash interrupted (checks, a submit that
died between its commit and the bank call) without a second bank execution."""

from __future__ import annotations

import pytest

from apps.gateways.models import ChannelCall, SandboxTransfer
from apps.payouts import services
from apps.payouts.models import Disbursement
from apps.payouts.services import DISBURSEMENTS
from apps.payouts.tasks import payout_poll_due_task
from apps.transfers import services as transfer_services
from apps.transfers.poller import transfer_claim_due
from apps.transfers.services import transfer_resend
from tests.payouts.conftest import (
    POLL_INTERVAL,
    SETTLE_AFTER,
    UNKNOWN_QUERY_DELAY,
    account_body,
    calls,
    codes,
    customer_with_wallet,
    fund_merchant,
    in_flight,
    ledger_refs,
    run_poller,
)

pytestmark = pytest.mark.django_db

S = Disbursement.Status


@pytest.fixture
def auto(payout_settings):
    payout_settings.PAYOUT_REVIEW_NEW_DESTINATION = False
    return payout_settings


def payout(merchant, amount: int, *, reference: str) -> Disbursement:
    return services.payout_create(
        merchant=merchant,
        reference=reference,
        amount=amount,
        currency="CNY",
        destination_account=account_body(),
        settlement_lines=[{"reference": reference, "amount": amount}],
        actor="api-key:x",
    )


def test_the_beat_tick_claims_due_rows_in_chunks_and_queries_each_once(
    merchant, inproc_bank, auto, clock, django_capture_on_commit_callbacks
):
    auto.PAYOUT_POLL_CHUNK = 2
    fund_merchant(merchant, 30000)
    customer = customer_with_wallet(merchant, 10000)
    with django_capture_on_commit_callbacks(execute=True):
        rows = [payout(merchant, 10000, reference=f"r-{n}") for n in range(2)]
        rows.append(
            services.withdrawal_create(
                merchant=merchant,
                customer_external_id=customer.external_id,
                amount=10000,
                currency="CNY",
                destination_account=account_body(),
                actor="api-key:x",
            )
        )
    clock.advance(SETTLE_AFTER + POLL_INTERVAL)

    assert payout_poll_due_task.apply().result == 3

    for d in rows:
        d.refresh_from_db()
        assert d.status == S.PAID
        assert (calls(d, "submit"), calls(d, "query")) == (1, 1)
    assert transfer_claim_due(DISBURSEMENTS, limit=10) == []  # paid rows wait for their verification poll
    assert in_flight() == 0


def test_checks_a_crash_interrupted_are_run_again_by_the_poller(merchant, inproc_bank, auto, clock, monkeypatch):
    fund_merchant(merchant, 5000)
    real = services.run_prechecks

    def crash(*args, **kwargs):
        raise RuntimeError("worker killed")

    monkeypatch.setattr(services, "run_prechecks", crash)
    d = payout(merchant, 5000, reference="crashy")
    assert d.status == S.CHECKING
    assert d.prechecks.count() == 0
    monkeypatch.setattr(services, "run_prechecks", real)

    clock.advance(31)  # PAYOUT_SUBMIT_GRACE
    assert run_poller() == [d.pk]

    d.refresh_from_db()
    assert d.status == S.APPROVED
    assert d.prechecks.count() == 14
    assert codes(d) == ["created", "checking", "approved"]


def test_a_submit_that_died_before_the_bank_call_is_found_by_a_query_and_sent_once(
    merchant, inproc_bank, auto, clock, monkeypatch
):
    fund_merchant(merchant, 5000)
    d = payout(merchant, 5000, reference="lost-call")
    assert d.status == S.APPROVED

    def die(**kwargs):
        raise RuntimeError("process died before the call")

    monkeypatch.setattr(transfer_services, "channel_submit", die)
    with pytest.raises(RuntimeError):
        services.payout_submit(disbursement_id=d.pk)
    monkeypatch.undo()
    d.refresh_from_db()
    assert d.status == S.SUBMITTED
    assert d.has_funds_in_flight
    assert ChannelCall.objects.filter(action="submit").count() == 0
    # A redelivered task finds the call claimed and sends nothing.
    transfer_resend(DISBURSEMENTS, d.pk)
    assert ChannelCall.objects.filter(action="submit").count() == 0

    # Our own call's timeout (the channel's 5 s) and the query delay have passed: the call can no
    # longer be on its way.
    clock.advance(5 + UNKNOWN_QUERY_DELAY + 1)
    run_poller()  # query: never seen → unknown → resubmitted with the same request id → sent
    clock.advance(SETTLE_AFTER + POLL_INTERVAL)
    run_poller()

    d.refresh_from_db()
    assert d.status == S.PAID
    assert codes(d) == ["created", "checking", "approved", "submitted", "unknown", "resubmitted", "processing", "paid"]
    assert (calls(d, "submit"), calls(d, "query")) == (1, 2)
    assert SandboxTransfer.objects.get(request_id=d.request_id).executions == 1
    assert ledger_refs(d) == [f"payout:{d.pk}:inflight", f"payout:{d.pk}:paid"]


def test_a_balance_spent_between_the_checks_and_the_submission_holds_the_payout_with_nothing_posted_or_sent(
    merchant, inproc_bank, auto, anomalies, django_capture_on_commit_callbacks
):
    fund_merchant(merchant, 5000)
    d = payout(merchant, 5000, reference="spent-since")
    assert d.status == S.APPROVED
    fund_merchant(merchant, -3000)  # something else took 30.00 of the payable after the checks

    with django_capture_on_commit_callbacks(execute=True):
        services.payout_submit(disbursement_id=d.pk)

    d.refresh_from_db()
    assert d.status == S.HELD
    assert (d.hold_kind, d.hold_reason, d.next_poll_at) == (
        Disbursement.HoldKind.REVIEW,
        "insufficient_balance_at_submit",
        None,
    )
    assert not d.has_funds_in_flight
    assert codes(d)[-1] == "held"
    assert d.events.get(code="held").detail == {"held": ["balance_sufficient"], "owed": 2000}
    assert ledger_refs(d) == []
    assert calls(d, "submit") == 0
    assert in_flight() == 0
    assert anomalies.of(d.pk) == ["insufficient_funds_at_submit"]
    assert transfer_claim_due(DISBURSEMENTS, limit=10) == []  # a person releases it, not the poller
