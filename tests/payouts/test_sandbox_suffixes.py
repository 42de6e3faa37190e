"""Every sandbox account suffix, for a payout and a withdrawal side by side: API → pre-checks →
approval → payout FSM → sandbox bank over real HTTP (live server) → signed webhooks and the poller
→ final state, timeline, channel calls, bank executions, ledger. The 0000 case then recalls the
payout through the bank's recall endpoint."""

from __future__ import annotations

import pytest

from apps.accounts.models import User
from apps.gateways.models import InboundWebhook, SandboxTransfer
from apps.payouts.models import Disbursement
from tests.payouts.conftest import (
    INCIDENTS,
    PAYOUTS,
    POLL_INTERVAL,
    RETRY_BASE,
    SETTLE_AFTER,
    UNKNOWN_QUERY_DELAY,
    WITHDRAWALS,
    calls,
    codes,
    customer_with_wallet,
    deliver_webhooks,
    executions,
    fund_merchant,
    in_flight,
    ledger_refs,
    ledger_unbalanced,
    payable,
    payout_body,
    post,
    run_poller,
    signed_in,
    staff,
    wallet,
    withdrawal_body,
)

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(90)]

S = Disbursement.Status
PAYOUT_AMOUNT, WALLET, WITHDRAWAL_AMOUNT = 500000, 20000, 10000
APPROVED = ["created", "checking", "pending_approval", "approved"]


def start(api, url: str, body: dict) -> Disbursement:
    """Create through the API and, as a first payment to a new account is reviewed, approve it."""
    created = post(api, url, body)
    assert created.status_code == 201, created.content
    data = created.json()
    number = body["destination_account"]["account_number"]
    assert number not in created.content.decode()  # masked: "**** 1234"
    assert data["destination_account"]["account_number"] == f"**** {number[-4:]}"
    if data["status"] == "pending_approval":
        assert data["review_reasons"] == ["new_destination"]
        checker = User.objects.get(username="checker")
        approved = signed_in(checker).post(f"{url}/{data['id']}/approve", {}, format="json")
        assert approved.status_code == 200, approved.content
    return Disbursement.objects.get(pk=data["id"])


def drive(suffix: str, clock) -> None:
    """What the world does after the submission, per suffix."""
    if suffix == "0001":
        clock.advance(24 * 3600)
        run_poller()
        for d in Disbursement.objects.all():
            assert d.status == S.PROCESSING  # still on its way after a day
        clock.advance(6 * 3600 + 1)  # the bank's 30 h delay has passed
        run_poller()
    elif suffix == "0003":
        clock.advance(SETTLE_AFTER)
        deliver_webhooks()
        assert set(Disbursement.objects.values_list("status", flat=True)) == {S.PAID}, [
            (d.kind, d.status, d.hold_reason, codes(d), list(d.prechecks.values_list("name", "result", "detail")))
            for d in Disbursement.objects.all()
        ]
        clock.advance(61)  # SANDBOX_BANK_RETURN_SECONDS
        deliver_webhooks()
    elif suffix == "0005":
        assert set(Disbursement.objects.values_list("status", flat=True)) == {S.UNKNOWN}
        clock.advance(SETTLE_AFTER)
        run_poller()
    elif suffix == "0006":
        assert set(Disbursement.objects.values_list("status", flat=True)) == {S.UNKNOWN}
        clock.advance(UNKNOWN_QUERY_DELAY)
        run_poller()  # the bank never saw it: resent once with the same request id
        clock.advance(SETTLE_AFTER + POLL_INTERVAL)
        run_poller()
    elif suffix == "0007":
        assert set(Disbursement.objects.values_list("status", flat=True)) == {S.FAILED}
        clock.advance(RETRY_BASE + 1)
        run_poller()
        clock.advance(SETTLE_AFTER)
        deliver_webhooks()
    elif suffix == "0009":
        clock.advance(SETTLE_AFTER)
        deliver_webhooks()
        clock.advance(POLL_INTERVAL)
        run_poller()  # sees the hold again: records nothing new
    else:
        clock.advance(SETTLE_AFTER)
        deliver_webhooks()


# suffix: (final status, events after approval, submits, queries, bank executions, ledger steps,
#          source restored (True) or paid out (False))
EXPECTED = {
    "0000": (S.PAID, ["submitted", "processing", "paid"], 1, 0, 1, ["inflight", "paid"], False),
    "0001": (S.PAID, ["submitted", "processing", "paid"], 1, 2, 1, ["inflight", "paid"], False),
    "0002": (S.FAILED, ["submitted", "processing", "failed"], 1, 0, 0, ["inflight", "release"], True),
    "0003": (
        S.RETURNED,
        ["submitted", "processing", "paid", "returned"],
        1,
        0,
        1,
        ["inflight", "paid", "returned"],
        True,
    ),
    "0004": (S.FAILED, None, 0, 0, 0, [], True),
    "0005": (S.PAID, ["submitted", "unknown", "paid"], 1, 1, 1, ["inflight", "paid"], False),
    "0006": (
        S.PAID,
        ["submitted", "unknown", "resubmitted", "processing", "paid"],
        2,
        2,
        1,
        ["inflight", "paid"],
        False,
    ),
    "0007": (
        S.PAID,
        ["submitted", "failed", "retrying", "submitted", "processing", "paid"],
        2,
        0,
        1,
        ["inflight", "paid"],
        False,
    ),
    "0008": (S.PAID, ["submitted", "processing", "paid"], 1, 0, 1, ["inflight", "paid"], False),
    "0009": (S.PROCESSING, ["submitted", "processing", "held_by_bank"], 1, 1, 0, ["inflight"], None),
}


@pytest.mark.parametrize("suffix", sorted(EXPECTED))
def test_each_sandbox_suffix_for_a_payout_and_a_withdrawal(
    api, merchant, bank, payout_settings, clock, anomalies, suffix
):
    staff(merchant, "checker")
    fund_merchant(merchant, PAYOUT_AMOUNT)
    customer = customer_with_wallet(merchant, WALLET)
    payout = start(api, PAYOUTS, payout_body(PAYOUT_AMOUNT, suffix=suffix))
    withdrawal = start(api, WITHDRAWALS, withdrawal_body(customer, WITHDRAWAL_AMOUNT, suffix=suffix))

    drive(suffix, clock)

    status, after, submits, queries, executed, steps, restored = EXPECTED[suffix]
    for d, source in ((payout, lambda: payable(merchant)), (withdrawal, lambda: wallet(customer))):
        d.refresh_from_db()
        assert d.status == status, (d.kind, d.status, codes(d))
        if after is None:
            assert codes(d) == ["created", "checking", "precheck_failed"]
            assert d.failure_code == "precheck_account_verification"
            assert calls(d, "verify") == 1
        else:
            assert codes(d) == APPROVED + after, d.kind
            assert calls(d, "verify") == 1
        assert (calls(d, "submit"), calls(d, "query")) == (submits, queries), d.kind
        assert executions(d) == executed, d.kind
        assert ledger_refs(d) == [f"{d.kind}:{d.pk}:{step}" for step in steps], d.kind
        before = PAYOUT_AMOUNT if d.kind == "payout" else WALLET
        if restored is True:
            assert source() == before, d.kind
        elif restored is False:
            assert source() == before - d.amount, d.kind
        if executed:
            transfer = SandboxTransfer.objects.get(request_id=f"{d.kind}:{d.pk}:submit")
            assert (transfer.kind, transfer.amount) == (d.kind, d.amount)
            assert d.channel_reference == transfer.transfer_id
    if suffix == "0002":
        assert {payout.failure_code, withdrawal.failure_code} == {"account_frozen"}
        assert {payout.responsible_party, withdrawal.responsible_party} == {"customer"}
    if suffix == "0003":
        assert sorted(anomaly for _, anomaly, _ in anomalies.seen) == ["reversed", "reversed"]
    if suffix == "0007":
        assert (payout.retry_count, withdrawal.retry_count) == (1, 1)
    if suffix == "0008":
        hooks = InboundWebhook.objects.filter(request_id=payout.request_id).order_by("id")
        assert list(hooks.values_list("status", "outcome")) == [
            ("succeeded", "applied"),
            ("processing", "ignored_stale"),
        ]
    if suffix == "0009":
        assert in_flight() == PAYOUT_AMOUNT + WITHDRAWAL_AMOUNT  # neither settled nor released
    else:
        assert in_flight() == 0
    assert ledger_unbalanced() == []
    if suffix == "0000":
        recall_over_http(api, payout, merchant)


def recall_over_http(api, payout: Disbursement, merchant) -> None:
    """The paid payout was sent to the wrong account: an incident recalls it through the channel's
    recall endpoint (over HTTP), and the money goes back to the merchant's payable."""
    incident = api.post(INCIDENTS, {"payout": payout.pk, "summary": "paid to last month's account"}, format="json")
    assert incident.status_code == 201, incident.content
    recall = api.post(f"{INCIDENTS}/{incident.json()['id']}/recall", {"notes": "asked the bank"}, format="json")
    assert recall.status_code == 200, recall.content

    payout.refresh_from_db()
    assert payout.status == S.RECALLED
    assert calls(payout, "recall") == 1
    assert ledger_refs(payout) == [f"payout:{payout.pk}:{step}" for step in ("inflight", "paid", "recalled")]
    assert payable(merchant) == PAYOUT_AMOUNT
    body = api.get(f"{INCIDENTS}/{incident.json()['id']}").json()
    assert [step["action"] for step in body["steps"]] == ["opened", "recall_requested", "recall_succeeded"]
    assert (body["status"], body["amount_recovered"]) == ("recovering", PAYOUT_AMOUNT)
    assert ledger_unbalanced() == []
