"""The payouts and withdrawals API: idempotent creation, refusals that write nothing, responses that
never show an account number, detail with timeline and pre-checks, cancel and release."""

from __future__ import annotations

import json
import logging

import pytest

from apps.accounts.models import BankAccount
from apps.common.models import IdempotencyRecord
from apps.gateways.models import ChannelCall
from apps.ledger.models import LedgerTransaction
from apps.payouts.models import Approval, Disbursement, DisbursementEvent, PrecheckResult
from tests.payouts.conftest import (
    PAYOUTS,
    WITHDRAWALS,
    account_body,
    customer_with_wallet,
    fund_merchant,
    payable,
    payout_body,
    post,
    signed_in,
    staff,
    withdrawal_body,
)
from tests.support import count_rows

pytestmark = pytest.mark.django_db

S = Disbursement.Status
COUNTED = (
    Disbursement,
    DisbursementEvent,
    PrecheckResult,
    Approval,
    BankAccount,
    IdempotencyRecord,
    LedgerTransaction,
    ChannelCall,
)


def rows() -> dict[str, int]:
    return count_rows(COUNTED)


def test_same_key_same_body_replays_and_a_different_body_is_422_with_one_payout(
    api, merchant, inproc_bank, payout_settings
):
    fund_merchant(merchant, 500000)
    body = payout_body(500000)
    first = post(api, PAYOUTS, body, key="k-1")
    assert first.status_code == 201, first.content
    replay = post(api, PAYOUTS, body, key="k-1")
    assert replay.status_code == 201
    assert replay["Idempotent-Replayed"] == "true"
    assert replay.json() == first.json()
    before = rows()

    changed = post(api, PAYOUTS, {**body, "amount": 500001}, key="k-1")

    assert changed.status_code == 422
    assert changed.json()["error"]["code"] == "idempotency_key_reused"
    assert rows() == before
    assert Disbursement.objects.count() == 1
    assert ChannelCall.objects.filter(action="verify").count() == 1
    # Another key with the same merchant reference is a conflict, not a second payout.
    again = post(api, PAYOUTS, body, key="k-2")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "duplicate_reference"
    assert Disbursement.objects.count() == 1


@pytest.mark.parametrize(
    ("url", "change", "status", "field"),
    [
        (PAYOUTS, {"amount": 0}, 400, "amount"),
        (PAYOUTS, {"amount": -1}, 400, "amount"),
        (PAYOUTS, {"amount": 10.5}, 400, "amount"),
        (PAYOUTS, {"amount": "100"}, 400, "amount"),
        (PAYOUTS, {"currency": "usd"}, 400, "currency"),
        (PAYOUTS, {"currency": "XXX"}, 400, "currency"),
        (PAYOUTS, {"status": "paid"}, 400, "status"),
        (PAYOUTS, {"merchant": 1}, 400, "merchant"),
        (PAYOUTS, {"reference": "x\r\nINFO forged"}, 400, "reference"),
        (
            PAYOUTS,
            {"destination_account": {"holder_name": "A", "bank": "B", "account_number": "12ab"}},
            400,
            "destination_account.account_number",
        ),
        (PAYOUTS, {"destination_account": {**account_body(), "country": "China"}}, 400, "destination_account.country"),
        (PAYOUTS, {"settlement_lines": [{"reference": "l", "amount": 0}]}, 400, "settlement_lines.0.amount"),
        (WITHDRAWALS, {"customer": "nobody"}, 422, "customer"),  # well-formed, unknown: a rule
        (WITHDRAWALS, {"amount": 2**63}, 400, "amount"),
        (WITHDRAWALS, {"source_currency": "ABC"}, 400, "source_currency"),
        (WITHDRAWALS, {"destination_account": None}, 400, "destination_account"),
    ],
)
def test_bad_input_is_refused_with_the_error_shape_and_writes_nothing(
    api, merchant, inproc_bank, payout_settings, url, change, status, field
):
    customer = customer_with_wallet(merchant, 20000, external_id="c-1001")
    fund_merchant(merchant, 500000)
    body = payout_body(500000) if url == PAYOUTS else withdrawal_body(customer, 10000)
    body.update(change)
    before = rows()

    response = post(api, url, body)

    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert set(error) == {"code", "message", "fields"}
    assert any(name == field or name.startswith(f"{field}.") for name in error["fields"]), error
    assert rows() == before


@pytest.mark.parametrize("key", [None, "", "k" * 256, "ключ"], ids=["missing", "empty", "too-long", "non-ascii"])
def test_a_bad_idempotency_key_is_refused_and_writes_nothing(api, merchant, inproc_bank, payout_settings, key):
    fund_merchant(merchant, 500000)
    before = rows()
    headers = {} if key is None else {"HTTP_IDEMPOTENCY_KEY": key}
    if key == "ключ":
        headers = {"HTTP_IDEMPOTENCY_KEY": key.encode().decode("latin-1")}

    response = api.generic("POST", PAYOUTS, json.dumps(payout_body(500000)), content_type="application/json", **headers)

    assert response.status_code == 400
    assert response.json()["error"]["code"] in {"idempotency_key_missing", "idempotency_key_invalid"}
    assert rows() == before


def test_responses_and_logs_never_show_the_account_number_and_the_detail_has_timeline_and_prechecks(
    api, merchant, inproc_bank, payout_settings, caplog, django_capture_on_commit_callbacks
):
    fund_merchant(merchant, 500000)
    body = payout_body(500000)
    number = body["destination_account"]["account_number"]
    with caplog.at_level(logging.DEBUG), django_capture_on_commit_callbacks(execute=True):
        created = post(api, PAYOUTS, body)
        pk = created.json()["id"]
        approved = signed_in(staff(merchant, "checker")).post(f"{PAYOUTS}/{pk}/approve", {}, format="json")
    detail = api.get(f"{PAYOUTS}/{pk}")
    listing = api.get(PAYOUTS)

    for response in (created, approved, detail, listing):
        assert response.status_code in (200, 201)
        assert number not in response.content.decode()
    assert number not in caplog.text
    data = detail.json()
    assert data["destination_account"] == {
        "holder_name": body["destination_account"]["holder_name"],
        "bank": "ICBC",
        "account_number": f"**** {number[-4:]}",
        "country": "CN",
        "currency": "CNY",
    }
    assert [event["code"] for event in data["events"]] == [
        "created",
        "checking",
        "pending_approval",
        "approved",
        "submitted",
        "processing",
    ]
    assert {check["name"]: check["result"] for check in data["prechecks"]}["new_destination"] == "review"
    assert [row["id"] for row in listing.json()["results"]] == [pk]
    stored = BankAccount.objects.get(pk=Disbursement.objects.get(pk=pk).destination_account_id)
    assert number not in stored.number_encrypted
    assert stored.reveal_number() == number


def test_cancel_before_the_bank_and_refusal_after(api, merchant, inproc_bank, payout_settings):
    fund_merchant(merchant, 500000)
    created = post(api, PAYOUTS, payout_body(500000)).json()
    assert created["status"] == "pending_approval"

    cancelled = api.post(f"{PAYOUTS}/{created['id']}/cancel", {"note": "wrong account"}, format="json")

    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["events"][-1]["detail"] == {"note": "wrong account"}
    again = api.post(f"{PAYOUTS}/{created['id']}/cancel", {}, format="json")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "invalid_state"
    # Reserved money is free again: a new payout of the whole payable passes the balance checks.
    fresh = post(api, PAYOUTS, payout_body(500000)).json()
    assert {c["name"]: c["result"] for c in fresh["prechecks"]}["balance_sufficient"] == "passed"
    assert payable(merchant) == 500000


def test_a_held_duplicate_is_released_to_approval_by_a_person(
    api, merchant, inproc_bank, payout_settings, django_capture_on_commit_callbacks
):
    customer = customer_with_wallet(merchant, 50000)
    number = account_body()["account_number"]
    first = post(api, WITHDRAWALS, withdrawal_body(customer, 10000, number=number)).json()
    second = post(api, WITHDRAWALS, withdrawal_body(customer, 10000, number=number)).json()
    assert (first["status"], second["status"]) == ("pending_approval", "held")

    released = api.post(f"{WITHDRAWALS}/{second['id']}/release", {"note": "two separate requests"}, format="json")

    assert released.status_code == 200
    assert released.json()["status"] == "pending_approval"
    assert released.json()["required_approvals"] == 1
    assert "released_from_hold" in released.json()["review_reasons"]
    checker = signed_in(staff(merchant, "checker"))
    with django_capture_on_commit_callbacks(execute=True):
        approved = checker.post(f"{WITHDRAWALS}/{second['id']}/approve", {}, format="json")
    assert approved.json()["status"] == "approved"
    assert Disbursement.objects.get(pk=second["id"]).status == S.PROCESSING


def test_lists_filter_by_status_and_other_merchants_see_nothing(api, other_api, merchant, inproc_bank, payout_settings):
    fund_merchant(merchant, 500000)
    created = post(api, PAYOUTS, payout_body(500000)).json()

    assert [row["id"] for row in api.get(PAYOUTS, {"status": "pending_approval"}).json()["results"]] == [created["id"]]
    assert api.get(PAYOUTS, {"status": "paid"}).json()["results"] == []
    assert other_api.get(PAYOUTS).json()["results"] == []
    assert other_api.get(f"{PAYOUTS}/{created['id']}").status_code == 404
    assert api.get(f"{WITHDRAWALS}/{created['id']}").status_code == 404  # a payout is no withdrawal
    before = rows()
    for action in ("approve", "cancel", "release"):
        response = other_api.post(f"{PAYOUTS}/{created['id']}/{action}", {}, format="json")
        assert response.status_code == 404
    assert rows() == before
