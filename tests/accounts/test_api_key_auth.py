"""`Authorization: Bearer <api key>`: who gets in, who does not, and how keys are kept."""

from __future__ import annotations

import hashlib
from io import StringIO

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from apps.accounts.models import ApiKey, Customer, Merchant, User
from apps.accounts.services import api_key_create, api_key_revoke
from tests.factories import CustomerFactory, StaffFactory

pytestmark = pytest.mark.django_db

CUSTOMERS = "/api/v1/customers"


def _client(authorization: str | None = None) -> APIClient:
    client = APIClient()
    if authorization is not None:
        client.credentials(HTTP_AUTHORIZATION=authorization)
    return client


def _assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "fields"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    assert body["error"]["fields"] == {}
    return body


@pytest.fixture
def key(merchant):
    """A fresh key of merchant A: (ApiKey row, raw key)."""
    return api_key_create(merchant=merchant)


def test_no_authorization_header_is_401_with_error_shape(merchant):
    CustomerFactory(merchant=merchant)

    response = _client().get(CUSTOMERS)

    _assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == "Bearer"


def test_empty_authorization_header_is_401(merchant):
    response = _client("").get(CUSTOMERS)

    _assert_error(response, 401, "not_authenticated")


@pytest.mark.parametrize(
    "template",
    [
        "Token {key}",
        "Basic {key}",
        "Bearer",
        "Bearer ",
        "Bearer {key} extra",
        "Bearer a b",
        "{key}",
        "Bearer:{key}",
        "BearerX {key}",
    ],
    ids=[
        "token-scheme",
        "basic-scheme",
        "bearer-alone",
        "bearer-space",
        "three-parts",
        "bearer-a-b",
        "bare-key",
        "colon",
        "wrong-keyword",
    ],
)
def test_malformed_authorization_is_401(key, template):
    _, raw = key

    response = _client(template.format(key=raw)).get(CUSTOMERS)

    assert response.status_code == 401, response.content
    assert response.json()["error"]["code"] in {"authentication_failed", "not_authenticated"}
    assert response.json()["error"]["fields"] == {}


@pytest.mark.parametrize(
    "raw",
    ["rg_unknown", "rg_" + "A" * 43, "", "x" * 5000],
    ids=["short-unknown", "key-shaped-unknown", "empty", "very-long"],
)
def test_unknown_key_is_401(key, raw):
    response = _client(f"Bearer {raw}").get(CUSTOMERS)

    assert response.status_code == 401
    assert response.json()["error"]["code"] in {"authentication_failed", "not_authenticated"}


def test_key_with_one_character_changed_is_401(key):
    _, raw = key
    tampered = raw[:-1] + ("A" if raw[-1] != "A" else "B")

    _assert_error(_client(f"Bearer {tampered}").get(CUSTOMERS), 401, "authentication_failed")


def test_revoked_key_is_401_and_other_keys_still_work(merchant, key):
    row, raw = key
    _, other_raw = api_key_create(merchant=merchant, name="second")
    assert _client(f"Bearer {raw}").get(CUSTOMERS).status_code == 200

    api_key_revoke(api_key=row)

    _assert_error(_client(f"Bearer {raw}").get(CUSTOMERS), 401, "authentication_failed")
    assert _client(f"Bearer {other_raw}").get(CUSTOMERS).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_a_known_key_is_not_read_again_until_it_changes(merchant, key):
    """Each process keeps the keys it read (apps.common.caching): a repeat request reads no key,
    and a change made through the models (the admin) is seen by the next request. (Committed
    transactions: inside an open one the writer reads around its own cache, by design.)"""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    row, raw = key
    client = _client(f"Bearer {raw}")
    assert client.get(CUSTOMERS).status_code == 200

    with CaptureQueriesContext(connection) as queries:
        assert client.get(CUSTOMERS).status_code == 200
    assert not [q for q in queries.captured_queries if "accounts_apikey" in q["sql"]]

    merchant.name = "Renamed"
    merchant.save()
    with CaptureQueriesContext(connection) as queries:
        assert client.get(CUSTOMERS).status_code == 200
    assert len([q for q in queries.captured_queries if "accounts_apikey" in q["sql"]]) == 1

    row.revoked_at = row.created_at
    row.save()
    _assert_error(client.get(CUSTOMERS), 401, "authentication_failed")


def test_merchant_deactivated_after_use_is_401_at_once(merchant, key):
    _, raw = key
    client = _client(f"Bearer {raw}")
    assert client.get(CUSTOMERS).status_code == 200

    merchant.is_active = False
    merchant.save()

    _assert_error(client.get(CUSTOMERS), 401, "authentication_failed")


def test_inactive_merchant_key_is_401(merchant, key):
    _, raw = key
    Merchant.objects.filter(pk=merchant.pk).update(is_active=False)

    _assert_error(_client(f"Bearer {raw}").get(CUSTOMERS), 401, "authentication_failed")


def test_inactive_merchant_cannot_write(merchant, key):
    _, raw = key
    Merchant.objects.filter(pk=merchant.pk).update(is_active=False)

    response = _client(f"Bearer {raw}").post(CUSTOMERS, {"external_id": "c-1", "name": "n"}, format="json")

    _assert_error(response, 401, "authentication_failed")
    assert Customer.objects.count() == 0


@pytest.mark.parametrize(
    "header",
    [
        # What a WSGI/ASGI server hands Django for UTF-8 bytes: the bytes decoded as latin-1.
        "Bearer " + "ключ".encode().decode("latin-1"),
        "Bearer caf\u00e9",
        "B\u00e9arer rg_x",
    ],
    ids=["utf8-bytes", "latin1-key", "latin1-scheme"],
)
def test_non_ascii_authorization_header_is_401(key, header):
    _assert_error(_client(header).get(CUSTOMERS), 401, "authentication_failed")


def test_valid_key_reads_own_customers(merchant, other_merchant, key):
    _, raw = key
    mine = CustomerFactory(merchant=merchant)
    CustomerFactory(merchant=other_merchant)

    response = _client(f"Bearer {raw}").get(CUSTOMERS)

    assert response.status_code == 200
    assert [c["id"] for c in response.json()["results"]] == [mine.pk]


def test_valid_key_can_write(key):
    _, raw = key

    response = _client(f"Bearer {raw}").post(CUSTOMERS, {"external_id": "c-1", "name": "n"}, format="json")

    assert response.status_code == 201, response.json()
    assert Customer.objects.get().merchant_id == key[0].merchant_id


def test_key_use_is_recorded(key):
    row, raw = key
    assert row.last_used_at is None

    assert _client(f"Bearer {raw}").get(CUSTOMERS).status_code == 200

    row.refresh_from_db()
    assert row.last_used_at is not None


def test_keys_are_stored_hashed_never_raw(merchant):
    row, raw = api_key_create(merchant=merchant)

    stored = ApiKey.objects.filter(pk=row.pk).values().get()
    for column, value in stored.items():
        assert raw not in str(value), f"raw key found in column {column}"
    assert stored["key_hash"] == hashlib.sha256(raw.encode()).hexdigest()
    assert len(stored["prefix"]) < len(raw)
    assert raw.startswith(stored["prefix"])


def test_two_keys_never_share_a_hash(merchant):
    _, first = api_key_create(merchant=merchant)
    _, second = api_key_create(merchant=merchant)

    assert first != second
    assert ApiKey.objects.filter(merchant=merchant).values("key_hash").distinct().count() == 2


def test_create_merchant_prints_exactly_one_working_key():
    out, err = StringIO(), StringIO()

    call_command("create_merchant", "Acme Courses", stdout=out, stderr=err)

    lines = out.getvalue().splitlines()
    assert len(lines) == 1, out.getvalue()
    raw = lines[0]
    assert raw == raw.strip()
    assert raw not in err.getvalue()
    merchant = Merchant.objects.get(name="Acme Courses")
    assert ApiKey.objects.filter(merchant=merchant).count() == 1
    for column, value in ApiKey.objects.filter(merchant=merchant).values().get().items():
        assert raw not in str(value), f"raw key found in column {column}"

    client = _client(f"Bearer {raw}")
    created = client.post(CUSTOMERS, {"external_id": "c-1", "name": "n"}, format="json")
    assert created.status_code == 201, created.content
    assert Customer.objects.get().merchant == merchant
    assert client.get(CUSTOMERS).json()["count"] == 1


def test_session_staff_of_merchant_reads_only_its_customers(merchant, other_merchant):
    staff = StaffFactory(merchant=merchant)
    mine = CustomerFactory(merchant=merchant)
    theirs = CustomerFactory(merchant=other_merchant)
    client = APIClient()
    client.force_login(staff)

    listed = client.get(CUSTOMERS)
    assert listed.status_code == 200, listed.content
    assert [c["id"] for c in listed.json()["results"]] == [mine.pk]
    assert client.get(f"{CUSTOMERS}/{mine.pk}").status_code == 200
    _assert_error(client.get(f"{CUSTOMERS}/{theirs.pk}"), 404, "not_found")


def test_session_write_without_csrf_token_is_refused(merchant):
    staff = StaffFactory(merchant=merchant)
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(staff)

    response = client.post(CUSTOMERS, {"external_id": "c-1", "name": "n"}, format="json")

    _assert_error(response, 403, "permission_denied")
    assert Customer.objects.count() == 0


def test_session_user_without_merchant_is_refused(merchant):
    CustomerFactory(merchant=merchant)
    operator = User.objects.create_user(username="operator", password="pw-for-tests-only", is_staff=True)
    client = APIClient()
    client.force_login(operator)

    _assert_error(client.get(CUSTOMERS), 403, "permission_denied")
    response = client.post(CUSTOMERS, {"external_id": "c-1", "name": "n"}, format="json")
    assert response.status_code == 403
    assert Customer.objects.count() == 1


def test_superuser_without_merchant_is_refused(merchant):
    CustomerFactory(merchant=merchant)
    admin = User.objects.create_superuser(username="root", password="pw-for-tests-only")
    client = APIClient()
    client.force_login(admin)

    _assert_error(client.get(CUSTOMERS), 403, "permission_denied")
