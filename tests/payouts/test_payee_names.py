"""G18 for payouts and withdrawals: a payout to a known account number under another holder name is
stored, shown, verified and sent under the name the request gave; the record of the first name stays
as it was. The incident: a payout to "深圳某某科技有限公司" was stored and shown as "链动小铺", the name
the number was first paid under. The bank is the sandbox bank in-process (see conftest)."""

from __future__ import annotations

import pytest

from apps.accounts.models import BankAccount
from apps.gateways.models import SandboxTransfer
from apps.gateways.sandbox import bank as sandbox
from apps.payouts.models import Disbursement
from tests.payouts.conftest import PAYOUTS, WITHDRAWALS, calls, customer_with_wallet, fund_merchant, post

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("inproc_bank")]

S = Disbursement.Status
NUMBER = "6222020000770000"


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


def _create(api, url: str, body: dict, capture) -> dict:
    with capture(execute=True):
        response = post(api, url, body)
    assert response.status_code == 201, response.content
    return response.json()


def test_a_known_number_paid_under_another_holder_name_is_shown_verified_and_sent_under_that_name(
    api, merchant, payout_settings, sent_to, django_capture_on_commit_callbacks
):
    payout_settings.PAYOUT_REVIEW_NEW_DESTINATION = False
    fund_merchant(merchant, 22000)
    bodies = [
        {
            "reference": f"settle-{holder}",
            "amount": amount,
            "currency": "CNY",
            "destination_account": {"holder_name": holder, "bank": "ICBC", "account_number": NUMBER},
            "settlement_lines": [{"reference": f"orders-{holder}", "amount": amount}],
        }
        # Two amounts: the same amount to the same number within a day is held as a duplicate.
        for holder, amount in (("链动小铺", 10000), ("深圳某某科技有限公司", 12000))
    ]
    first = _create(api, PAYOUTS, bodies[0], django_capture_on_commit_callbacks)
    second = _create(api, PAYOUTS, bodies[1], django_capture_on_commit_callbacks)

    destination = second["destination_account"]
    assert (destination["holder_name"], destination["bank"], destination["account_number"]) == (
        "深圳某某科技有限公司",
        "ICBC",
        "**** 0000",
    )
    shown = api.get(f"{PAYOUTS}/{second['id']}").json()["destination_account"]["holder_name"]
    assert shown == "深圳某某科技有限公司"
    assert api.get(f"{PAYOUTS}/{first['id']}").json()["destination_account"]["holder_name"] == "链动小铺"
    rows = Disbursement.objects.in_bulk([first["id"], second["id"]])
    assert {d.status for d in rows.values()} == {S.PROCESSING}
    assert rows[first["id"]].destination_account_id != rows[second["id"]].destination_account_id
    assert sorted(BankAccount.objects.values_list("holder_name", flat=True)) == sorted(
        ["链动小铺", "深圳某某科技有限公司"]
    )
    assert [calls(rows[pk], "verify") for pk in (first["id"], second["id"])] == [1, 1]
    assert sent_to == [("链动小铺", "0000"), ("深圳某某科技有限公司", "0000")]
    assert SandboxTransfer.objects.count() == 2
    assert NUMBER not in f"{first}{second}"  # G12: the answers carry the last four only


def test_a_withdrawal_under_another_holder_name_for_a_refused_number_is_stopped_under_that_name(
    api, merchant, payout_settings, sent_to, django_capture_on_commit_callbacks
):
    """0004 (verification refuses the holder): the renamed payee is checked, not the stored one."""
    payout_settings.PAYOUT_REVIEW_NEW_DESTINATION = False
    customer = customer_with_wallet(merchant, 10000)
    body = {
        "customer": customer.external_id,
        "amount": 10000,
        "currency": "CNY",
        "destination_account": {"holder_name": "王小明", "bank": "ICBC", "account_number": "6222020000770004"},
    }
    withdrawal = _create(api, WITHDRAWALS, body, django_capture_on_commit_callbacks)

    d = Disbursement.objects.get(pk=withdrawal["id"])
    assert d.status == S.FAILED
    assert d.failure_code == "precheck_account_verification"
    assert withdrawal["destination_account"]["holder_name"] == "王小明"
    assert (calls(d, "verify"), calls(d, "submit")) == (1, 0)
    assert sent_to == []
