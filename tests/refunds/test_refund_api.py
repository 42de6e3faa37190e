"""The refund API contract: create, read, events, cancel, review, tenancy and bad inputs.

No channel exists in these tests, so an approved refund waits in `approved` (no bank call): the
API's own behaviour is what is under test. Every refusal asserts that nothing was written.
"""

from __future__ import annotations

import json

import pytest
from django.conf import settings

from apps.accounts.services import account_freeze
from apps.common.models import IdempotencyRecord
from apps.refunds.models import Refund, RefundEvent
from tests.refunds.support import REFUNDS, body, make_order, new_key, post_refund, row_counts

pytestmark = pytest.mark.django_db


def _results(response) -> list:
    data = response.json()
    return data["results"] if isinstance(data, dict) and "results" in data else data


def _error(response) -> dict:
    payload = response.json()
    assert set(payload) == {"error"}, payload
    assert {"code", "message", "fields"} <= set(payload["error"])
    return payload["error"]


@pytest.fixture
def order(merchant):
    return make_order(merchant, amount=10000, last4="1234")


@pytest.fixture
def frozen_order(merchant):
    order = make_order(merchant, amount=10000)
    account_freeze(merchant=merchant, customer=order.customer, reason="chargeback investigation")
    return order


def _create(api, order, **overrides) -> dict:
    response = post_refund(api, body(order, **overrides))
    assert response.status_code == 201, response.content
    return response.json()


# --- create and read ------------------------------------------------------------------------------


def test_create_answers_the_contract_shape(api, order):
    response = post_refund(api, body(order, amount=3000))

    assert response.status_code == 201, response.content
    data = response.json()
    assert isinstance(data["id"], int)
    assert data["status"] == "approved"
    assert data["amount"] == 3000
    assert data["currency"] == "CNY"
    assert data["order"] == order.external_id
    assert data["decision"]["outcome"] == "approved"
    assert isinstance(data["decision"]["explanation"], str)
    assert data["decision"]["explanation"]
    assert data["progress_url"].startswith(settings.PUBLIC_BASE_URL.rstrip("/") + "/r/")
    assert data["expected_arrival_at"]
    assert data["destination_account"]["account_number"] == "**** 1234"
    assert order.payer_account.reveal_number() not in response.content.decode()
    refund = Refund.objects.get(pk=data["id"])
    assert (refund.merchant_id, refund.order_id, refund.amount) == (order.merchant_id, order.pk, 3000)


def test_written_out_response_matches_the_declared_fields(api, merchant, frozen_order):
    """RefundOutSerializer writes its response out by hand (speed); it must say exactly what the
    generic ModelSerializer would from the declared fields: every outcome, empty and set
    timestamps, with and without a support ticket."""
    from django.utils import timezone
    from rest_framework import serializers

    from apps.refunds.api import RefundOutSerializer
    from apps.refunds.selectors import refund_list_for_merchant

    ids = [
        _create(api, make_order(merchant))["id"],  # approved
        _create(api, make_order(merchant, locale="zh-hans"), reason="cannot_use", reason_text="视频无法播放")["id"],
        _create(api, frozen_order)["id"],  # manual review
    ]
    Refund.objects.filter(pk=ids[0]).update(submitted_at=timezone.now(), succeeded_at=timezone.now())
    refunds = list(refund_list_for_merchant(merchant=merchant).filter(pk__in=ids).order_by("pk"))

    assert [r.decision["outcome"] for r in refunds] == ["approved", "tech_support", "manual_review"]
    assert refunds[1].support_ticket is not None
    for refund in refunds:
        serializer = RefundOutSerializer(refund)
        generic = serializers.ModelSerializer.to_representation(serializer, refund)
        assert serializer.data == generic
        assert list(serializer.data) == list(generic) == list(RefundOutSerializer.Meta.fields)
    assert RefundOutSerializer(refunds[0]).data["succeeded_at"].endswith("Z")
    assert RefundOutSerializer(refunds[1]).data["support_ticket"]["guidance"]


def test_detail_returns_the_same_refund(api, order):
    created = _create(api, order)

    response = api.get(f"{REFUNDS}/{created['id']}")

    assert response.status_code == 200
    data = response.json()
    assert {k: data[k] for k in ("id", "status", "amount", "decision", "destination_account")} == {
        k: created[k] for k in ("id", "status", "amount", "decision", "destination_account")
    }


def test_list_shows_only_own_refunds(api, other_api, order, other_merchant):
    mine = _create(api, order)
    theirs = _create(other_api, make_order(other_merchant))

    ids = [item["id"] for item in _results(api.get(REFUNDS))]

    assert mine["id"] in ids
    assert theirs["id"] not in ids


def test_events_list_the_timeline_in_order(api, order):
    created = _create(api, order)

    response = api.get(f"{REFUNDS}/{created['id']}/events")

    assert response.status_code == 200
    events = _results(response)
    assert [e["code"] for e in events] == ["requested", "approved"]
    assert events[-1]["to_status"] == "approved"
    assert events[-1]["from_status"] == "requested"
    assert {e["responsible_party"] for e in events} <= {"customer", "platform"}


# --- cancel ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["requested", "approved", "manual_review", "needs_action"])
def test_cancel_allowed_before_the_bank(api, order, state):
    created = _create(api, order)
    Refund.objects.filter(pk=created["id"]).update(status=state)

    response = api.post(f"{REFUNDS}/{created['id']}/cancel")

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "cancelled"
    refund = Refund.objects.get(pk=created["id"])
    assert refund.status == "cancelled"
    assert refund.next_poll_at is None
    last = refund.events.last()
    assert (last.code, last.from_status, last.to_status) == ("cancelled", state, "cancelled")


@pytest.mark.parametrize(
    "state",
    ["submitted", "processing", "unknown", "succeeded", "failed", "reversed", "rejected", "tech_support", "cancelled"],
)
def test_cancel_refused_once_out_of_reach(api, order, state):
    created = _create(api, order)
    Refund.objects.filter(pk=created["id"]).update(status=state)
    before = row_counts()

    response = api.post(f"{REFUNDS}/{created['id']}/cancel")

    assert response.status_code == 409
    assert _error(response)["code"] == "invalid_state"
    assert Refund.objects.get(pk=created["id"]).status == state
    assert row_counts() == before


def test_cancel_releases_the_reservation(api, order):
    first = _create(api, order, amount=10000)
    assert post_refund(api, body(order, amount=1)).status_code == 422

    assert api.post(f"{REFUNDS}/{first['id']}/cancel").status_code == 200

    assert post_refund(api, body(order, amount=10000)).status_code == 201


# --- manual review --------------------------------------------------------------------------------


def test_frozen_customer_goes_to_manual_review(api, frozen_order):
    data = _create(api, frozen_order)

    assert data["status"] == "manual_review"
    assert data["decision"]["outcome"] == "manual_review"
    assert data["decision"]["explanation"]


def test_approve_in_manual_review(api, frozen_order):
    created = _create(api, frozen_order)

    response = api.post(f"{REFUNDS}/{created['id']}/approve", {"note": "checked"}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "approved"
    last = RefundEvent.objects.filter(refund_id=created["id"]).last()
    assert (last.code, last.from_status, last.responsible_party) == ("approved", "manual_review", "merchant")


def test_reject_in_manual_review_releases_the_money(api, frozen_order):
    created = _create(api, frozen_order, amount=10000)

    response = api.post(f"{REFUNDS}/{created['id']}/reject", {"note": "fraud"}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "rejected"
    assert Refund.objects.get(pk=created["id"]).status == "rejected"


@pytest.mark.parametrize("action", ["approve", "reject"])
@pytest.mark.parametrize("state", ["approved", "requested", "submitted", "succeeded", "rejected", "cancelled"])
def test_review_refused_outside_manual_review(api, order, action, state):
    created = _create(api, order)
    Refund.objects.filter(pk=created["id"]).update(status=state)
    before = row_counts()

    response = api.post(f"{REFUNDS}/{created['id']}/{action}", {}, format="json")

    assert response.status_code == 409
    assert _error(response)["code"] == "invalid_state"
    assert Refund.objects.get(pk=created["id"]).status == state
    assert row_counts() == before


def test_review_refuses_unknown_fields(api, frozen_order):
    created = _create(api, frozen_order)

    response = api.post(f"{REFUNDS}/{created['id']}/approve", {"status": "succeeded"}, format="json")

    assert response.status_code == 400
    assert Refund.objects.get(pk=created["id"]).status == "manual_review"


# --- tenant isolation -----------------------------------------------------------------------------

ENDPOINTS = [
    ("get", ""),
    ("get", "/events"),
    ("post", "/cancel"),
    ("post", "/approve"),
    ("post", "/reject"),
]


@pytest.mark.parametrize(("method", "suffix"), ENDPOINTS)
def test_other_merchant_gets_404_and_changes_nothing(api, other_api, frozen_order, method, suffix):
    created = _create(api, frozen_order)
    before = row_counts()

    response = getattr(other_api, method)(f"{REFUNDS}/{created['id']}{suffix}", {}, format="json")

    assert response.status_code == 404
    assert _error(response)["code"] == "not_found"
    assert str(frozen_order.amount) not in response.content.decode()
    assert Refund.objects.get(pk=created["id"]).status == "manual_review"
    assert row_counts() == before


@pytest.mark.parametrize(("method", "suffix"), ENDPOINTS)
def test_walked_ids_reveal_nothing(other_api, method, suffix):
    for pk in (1, 2, 3, 999_999, 2**31):
        response = getattr(other_api, method)(f"{REFUNDS}/{pk}{suffix}", {}, format="json")
        assert response.status_code == 404


def test_list_filter_by_other_merchants_order_is_empty(api, other_api, order):
    _create(api, order)

    response = other_api.get(REFUNDS, {"order": order.external_id})

    assert response.status_code == 200
    assert _results(response) == []


def test_refund_against_other_merchants_order_is_refused(api, other_merchant):
    theirs = make_order(other_merchant)
    before = row_counts()

    response = post_refund(api, body(theirs))

    assert response.status_code == 422
    assert _error(response)["fields"] == {"order": ["No such order."]}
    assert row_counts() == before


# --- bad inputs (RELIABILITY.md 1–6) ---------------------------------------------------------------

BAD_AMOUNTS = [
    "0",
    "-1",
    "-0",
    "10.5",
    "1.0",
    '"3000"',
    '"abc"',
    "NaN",
    "Infinity",
    "-Infinity",
    "1e309",
    "true",
    "null",
]


@pytest.mark.parametrize("literal", BAD_AMOUNTS)
def test_bad_amount_is_refused_and_writes_nothing(api, order, literal):
    raw = json.dumps(body(order, amount="__X__")).replace('"__X__"', literal)
    before = row_counts()

    response = post_refund(api, raw)

    assert response.status_code == 400, (literal, response.content)
    assert _error(response)["code"] in ("validation_error", "parse_error")
    assert row_counts() == before


def test_one_unit_over_refundable_is_422(api, order):
    _create(api, order, amount=4000)
    before = row_counts()

    response = post_refund(api, body(order, amount=6001))

    assert response.status_code == 422
    error = _error(response)
    assert error["code"] == "amount_exceeds_refundable"
    assert error["fields"] == {"amount": ["At most 6000."]}
    # The refusal is remembered under its key (same key, same body → same refusal); nothing else.
    after = row_counts()
    assert after.pop("IdempotencyRecord") == before.pop("IdempotencyRecord") + 1
    assert after == before


def test_exactly_the_remaining_amount_passes(api, order):
    _create(api, order, amount=4000)

    response = post_refund(api, body(order, amount=6000))

    assert response.status_code == 201
    assert post_refund(api, body(order, amount=1)).status_code == 422


@pytest.mark.parametrize(
    ("currency", "field"),
    [
        ("cny", "currency"),
        ("XXX", "currency"),
        ("usd", "currency"),
        ("USD", "currency"),
        ("", "currency"),
        (7, "currency"),
    ],
)
def test_bad_currency_is_refused(api, order, currency, field):
    before = row_counts()

    response = post_refund(api, body(order, currency=currency))

    # "USD" is a currency the API supports, only not this order's: a rule, not the schema (422).
    assert response.status_code == (422 if currency == "USD" else 400), response.content
    assert field in _error(response)["fields"]
    assert row_counts() == before


def test_matching_currency_is_accepted(api, order):
    assert post_refund(api, body(order, currency="CNY")).status_code == 201


@pytest.mark.parametrize("order_id", ["o-does-not-exist", "9223372036854775808", "1"])
def test_unknown_order_is_refused(api, order, order_id):
    before = row_counts()

    response = post_refund(api, {**body(order), "order": order_id})

    assert response.status_code == 422
    assert "order" in _error(response)["fields"]
    assert row_counts() == before


def test_order_as_huge_number_is_refused(api, order):
    before = row_counts()

    response = post_refund(api, {**body(order), "order": 2**63})

    assert response.status_code == 400
    assert row_counts() == before


@pytest.mark.parametrize(
    "key",
    [None, "", " ", "k" * 256, "clé-ü", "キー", "line\nbreak", " padded"],
    ids=["missing", "empty", "blank", "256", "latin1", "cjk", "newline", "padded"],
)
def test_bad_idempotency_key_is_400(api, order, key):
    before = row_counts()
    if key is None:
        response = post_refund(api, body(order), key=None)
    else:
        # The test client passes headers through META untouched, as WSGI would decode them.
        response = api.generic(
            "POST", REFUNDS, data=json.dumps(body(order)), content_type="application/json", HTTP_IDEMPOTENCY_KEY=key
        )

    assert response.status_code == 400, response.content
    assert _error(response)["code"] in ("idempotency_key_missing", "idempotency_key_invalid")
    assert row_counts() == before


def test_idempotency_key_of_255_characters_is_accepted(api, order):
    assert post_refund(api, body(order), key="k" * 255).status_code == 201


@pytest.mark.parametrize(
    "extra",
    [
        {"status": "succeeded"},
        {"merchant": 1},
        {"refunded_amount": 0},
        {"id": 1},
        {"decision": {"outcome": "approved"}},
        {"customer": "c-1"},
    ],
)
def test_mass_assignment_is_refused(api, order, extra):
    before = row_counts()

    response = post_refund(api, {**body(order), **extra})

    assert response.status_code == 400
    assert set(extra) <= set(_error(response)["fields"])
    assert row_counts() == before


def test_duplicate_json_keys_are_refused(api, order):
    raw = json.dumps(body(order, amount=1)).rstrip("}") + ', "amount": 10000}'
    before = row_counts()

    response = post_refund(api, raw)

    assert response.status_code == 400
    assert row_counts() == before


def test_missing_required_fields(api, order):
    before = row_counts()

    response = post_refund(api, {"order": order.external_id})

    assert response.status_code == 400
    assert {"amount", "reason"} <= set(_error(response)["fields"])
    assert row_counts() == before


def test_validation_refusal_does_not_burn_the_key(api, order):
    key = new_key()
    assert post_refund(api, body(order, amount=0), key=key).status_code == 400
    assert not IdempotencyRecord.objects.filter(key=key).exists()

    response = post_refund(api, body(order, amount=100), key=key)

    assert response.status_code == 201


def test_unknown_order_refusal_does_not_burn_the_key(api, order):
    key = new_key()
    assert post_refund(api, {**body(order), "order": "o-typo"}, key=key).status_code == 422

    response = post_refund(api, body(order), key=key)

    assert response.status_code == 201
