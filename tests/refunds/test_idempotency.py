"""G2: one Idempotency-Key → one side effect and one stored response (RELIABILITY.md).

Twenty parallel identical requests, for refunds as for payouts and withdrawals, are in
tests/transfers/test_idempotency.py.

Tests that count channel calls run the sandbox bank on the live server (`bank`), so the approved
refund really goes out over HTTP once; the others need no channel.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.utils import timezone
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from apps.common.errors import UnprocessableError
from apps.common.idempotency import idempotency_purge, idempotent
from apps.common.models import IdempotencyRecord
from apps.gateways.models import ChannelCall
from apps.refunds.models import Refund
from tests.refunds.support import body, make_order, new_key, post_refund, row_counts


def _submits() -> int:
    return ChannelCall.objects.filter(action=ChannelCall.Action.SUBMIT).count()


@pytest.mark.django_db(transaction=True)
def test_same_key_same_body_replays_the_first_response_and_submits_once(api, merchant, bank):
    order = make_order(merchant, amount=10000)
    key = new_key()

    first = post_refund(api, body(order), key=key)
    second = post_refund(api, body(order), key=key)

    assert first.status_code == 201, first.content
    assert "Idempotent-Replayed" not in first
    assert second.status_code == 201
    assert second["Idempotent-Replayed"] == "true"
    assert second.json() == first.json()
    assert Refund.objects.count() == 1
    assert _submits() == 1
    assert IdempotencyRecord.objects.filter(key=key).count() == 1


@pytest.mark.django_db
def test_same_key_different_amount_is_422_and_writes_nothing(api, merchant):
    order = make_order(merchant, amount=10000)
    key = new_key()
    assert post_refund(api, body(order, amount=3000), key=key).status_code == 201
    before = row_counts()

    response = post_refund(api, body(order, amount=3001), key=key)

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert row_counts() == before


@pytest.mark.django_db
def test_same_key_on_another_endpoint_is_422(api, merchant):
    order = make_order(merchant, amount=10000)
    key = new_key()
    data = body(order)
    assert post_refund(api, data, key=key).status_code == 201
    request = Request(
        APIRequestFactory().post("/api/v1/payouts", data, format="json", HTTP_IDEMPOTENCY_KEY=key),
        parsers=[JSONParser()],
    )
    calls = []
    before = row_counts()

    with pytest.raises(UnprocessableError) as refused:
        idempotent(
            request=request, scope=f"merchant:{merchant.pk}", endpoint="payouts.create", handler=lambda: calls.append(1)
        )

    assert refused.value.code == "idempotency_key_reused"
    assert calls == []
    assert row_counts() == before


@pytest.mark.django_db
def test_keys_are_scoped_per_merchant(api, other_api, merchant, other_merchant):
    key = new_key()
    mine = post_refund(api, body(make_order(merchant)), key=key)

    theirs = post_refund(other_api, body(make_order(other_merchant)), key=key)

    assert mine.status_code == 201
    assert theirs.status_code == 201
    assert "Idempotent-Replayed" not in theirs
    assert theirs.json()["id"] != mine.json()["id"]
    assert Refund.objects.filter(merchant=other_merchant).count() == 1
    assert IdempotencyRecord.objects.filter(key=key).count() == 2


@pytest.mark.django_db
def test_replay_after_23h59m_returns_the_stored_response(api, merchant):
    order = make_order(merchant, amount=10000)
    key = new_key()
    first = post_refund(api, body(order), key=key)

    with time_machine.travel(timezone.now() + timedelta(hours=23, minutes=59)):
        Refund.objects.filter(pk=first.json()["id"]).update(status="cancelled")  # the world moved on
        replay = post_refund(api, body(order), key=key)

    assert replay.status_code == 201
    assert replay["Idempotent-Replayed"] == "true"
    assert replay.json() == first.json()
    assert Refund.objects.count() == 1


@pytest.mark.django_db
def test_business_refusal_is_replayed_too(api, merchant):
    order = make_order(merchant, amount=10000)
    key = new_key()
    first = post_refund(api, body(order, amount=10001), key=key)

    second = post_refund(api, body(order, amount=10001), key=key)

    assert first.status_code == second.status_code == 422
    assert second["Idempotent-Replayed"] == "true"
    assert second.json() == first.json()


@pytest.mark.django_db
def test_key_in_progress_is_409(api, merchant):
    order = make_order(merchant, amount=10000)
    key = new_key()
    assert post_refund(api, body(order), key=key).status_code == 201
    IdempotencyRecord.objects.filter(key=key).update(
        response_status=None, response_body=None, claimed_at=timezone.now()
    )
    before = row_counts()

    response = post_refund(api, body(order), key=key)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_in_progress"
    assert row_counts() == before


@pytest.mark.django_db
def test_purge_forgets_old_keys_and_keeps_young_ones(merchant):
    now = timezone.now()
    ttl = settings.IDEMPOTENCY_TTL
    assert ttl >= timedelta(hours=24)
    ages = {
        "old": ttl + timedelta(seconds=1),
        "much-older": ttl * 3,
        "young": ttl - timedelta(minutes=1),
        "new": timedelta(),
    }
    for key, age in ages.items():
        IdempotencyRecord.objects.create(
            scope=f"merchant:{merchant.pk}", key=key, endpoint="refunds.create", fingerprint="f", claimed_at=now - age
        )

    deleted = idempotency_purge()

    assert deleted == 2
    assert set(IdempotencyRecord.objects.values_list("key", flat=True)) == {"young", "new"}
