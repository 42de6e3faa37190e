"""POST /api/v1/freezes: a merchant freezes one of its customers or a destination account. Strict
input; anything refused answers in the error shape and writes nothing. An account freeze holds the
account's number within the merchant (apps.accounts.selectors.freezes_active_for)."""

from __future__ import annotations

import pytest

from apps.accounts.models import AccountFreeze, BankAccount
from apps.accounts.selectors import bank_account_is_frozen, customer_is_frozen
from tests.factories import BankAccountFactory, CustomerFactory
from tests.support import count_rows

pytestmark = pytest.mark.django_db

FREEZES = "/api/v1/freezes"
NUMBER = "6222020000004321"
ACCOUNT = {"holder_name": "王小明", "bank": "ICBC", "account_number": NUMBER}


def rows() -> dict[str, int]:
    return count_rows((AccountFreeze, BankAccount))


def test_freeze_a_customer_by_external_id(api, merchant):
    customer = CustomerFactory(merchant=merchant, external_id="c-1001")

    response = api.post(FREEZES, {"customer": "c-1001", "reason": "chargeback dispute"}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["customer"], body["bank_account"], body["reason"], body["is_active"]) == (
        "c-1001",
        None,
        "chargeback dispute",
        True,
    )
    assert body["actor"].startswith("api-key:")
    assert customer_is_frozen(customer=customer) is True
    assert api.get(f"{FREEZES}/{body['id']}").json()["id"] == body["id"]


def test_freeze_an_account_by_details_holds_the_same_number_stored_for_any_customer(api, merchant):
    held = BankAccountFactory(customer=CustomerFactory(merchant=merchant), number=NUMBER)
    elsewhere = BankAccountFactory(customer=CustomerFactory(merchant=merchant), number="6222020000009999")
    before = rows()

    response = api.post(FREEZES, {"bank_account": ACCOUNT, "reason": "reported stolen"}, format="json")

    assert response.status_code == 201, response.content
    assert response.json()["bank_account"] == "**** 4321"
    assert NUMBER not in response.content.decode()
    assert rows() == {"AccountFreeze": before["AccountFreeze"] + 1, "BankAccount": before["BankAccount"] + 1}
    assert bank_account_is_frozen(bank_account=held) is True  # another row, same number
    assert bank_account_is_frozen(bank_account=elsewhere) is False


def test_freeze_a_stored_account_by_id(api, merchant):
    account = BankAccountFactory(customer=CustomerFactory(merchant=merchant), number=NUMBER)

    response = api.post(FREEZES, {"bank_account_id": account.pk, "reason": "fraud"}, format="json")

    assert response.status_code == 201, response.content
    assert AccountFreeze.objects.get(pk=response.json()["id"]).bank_account == account


def test_an_account_freeze_never_reaches_another_merchants_same_number(api, merchant, other_merchant):
    theirs = BankAccountFactory(customer=CustomerFactory(merchant=other_merchant), number=NUMBER)

    assert api.post(FREEZES, {"bank_account": ACCOUNT, "reason": "fraud"}, format="json").status_code == 201

    assert bank_account_is_frozen(bank_account=theirs) is False


@pytest.mark.parametrize(
    ("body", "field", "status"),
    [
        ({}, "reason", 400),
        ({"reason": "no subject"}, "customer", 422),  # one of three fields: a rule the schema cannot state
        ({"customer": "c-unknown", "reason": "r"}, "customer", 422),
        ({"customer": "c-theirs", "reason": "r"}, "customer", 422),  # another merchant's customer
        ({"customer": "c-1001", "reason": "r", "status": "lifted"}, "status", 400),  # mass assignment
        ({"customer": "c-1001", "reason": "r", "merchant": 1}, "merchant", 400),
        ({"bank_account_id": 10**9, "reason": "r"}, "bank_account_id", 422),
        ({"bank_account_id": "theirs", "reason": "r"}, "bank_account_id", 422),  # another merchant's account
        ({"bank_account": {**ACCOUNT, "account_number": "12ab"}, "reason": "r"}, "bank_account.account_number", 400),
        ({"bank_account": {**ACCOUNT, "iban": "x"}, "reason": "r"}, "bank_account.iban", 400),
        ({"bank_account": ACCOUNT, "bank_account_id": "mine", "reason": "r"}, "bank_account_id", 422),
        ({"customer": "c-1001", "reason": "x" * 501}, "reason", 400),
        ({"customer": "c-1001", "reason": ""}, "reason", 400),
    ],
)
def test_bad_input_is_refused_in_the_error_shape_and_writes_nothing(api, merchant, other_merchant, body, field, status):
    CustomerFactory(merchant=merchant, external_id="c-1001")
    CustomerFactory(merchant=other_merchant, external_id="c-theirs")
    mine = BankAccountFactory(customer=CustomerFactory(merchant=merchant))
    theirs = BankAccountFactory(customer=CustomerFactory(merchant=other_merchant))
    ids = {"mine": mine.pk, "theirs": theirs.pk}
    if body.get("bank_account_id") in ids:
        body = {**body, "bank_account_id": ids[body["bank_account_id"]]}
    before = rows()

    response = api.post(FREEZES, body, format="json")

    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert set(error) == {"code", "message", "fields"}
    assert field in error["fields"], error
    assert rows() == before


def test_another_merchants_freeze_is_not_found_and_cannot_be_lifted(api, other_api, merchant):
    CustomerFactory(merchant=merchant, external_id="c-1001")
    created = api.post(FREEZES, {"customer": "c-1001", "reason": "fraud"}, format="json").json()

    assert other_api.get(f"{FREEZES}/{created['id']}").status_code == 404
    lifted = other_api.post(f"{FREEZES}/{created['id']}/lift", {"reason": "mine now"}, format="json")

    assert lifted.status_code == 404
    assert set(lifted.json()["error"]) == {"code", "message", "fields"}
    assert AccountFreeze.objects.get(pk=created["id"]).is_active
