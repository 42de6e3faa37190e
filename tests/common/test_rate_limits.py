"""Rate limits on the API and the webhooks: a limited request gets 429 with Retry-After in the
error shape; each API key, client address and channel is counted on its own (apps/common/throttling.py)."""

from __future__ import annotations

import pytest
from django.test import RequestFactory
from rest_framework.test import APIClient

from apps.accounts.services import api_key_create
from apps.common.throttling import client_ip
from apps.gateways.services import ensure_sandbox_channel
from tests.support import send_at_once

pytestmark = pytest.mark.django_db

CUSTOMERS = "/api/v1/customers"


@pytest.fixture
def limits(settings):
    """Set some rates for the test, the others as configured."""

    def set_rates(**rates):
        settings.RATE_LIMITS = {**settings.RATE_LIMITS, **rates}

    return set_rates


def key_client(merchant, address: str = "203.0.113.10") -> APIClient:
    _, raw = api_key_create(merchant=merchant)
    client = APIClient(REMOTE_ADDR=address)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def assert_throttled(response) -> int:
    assert response.status_code == 429, response.content
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["error"]["code"] == "throttled"
    assert set(response.json()["error"]) == {"code", "message", "fields"}
    wait = int(response["Retry-After"])
    assert 1 <= wait <= 60
    return wait


def test_a_key_past_its_rate_gets_429_and_other_keys_do_not(limits, merchant, other_merchant):
    limits(api_key="3/min")
    first, second_key_same_merchant, other = key_client(merchant), key_client(merchant), key_client(other_merchant)

    assert [first.get(CUSTOMERS).status_code for _ in range(3)] == [200, 200, 200]
    assert_throttled(first.get(CUSTOMERS))
    assert_throttled(first.post(CUSTOMERS, {"external_id": "c-1", "name": "n"}, format="json"))

    assert second_key_same_merchant.get(CUSTOMERS).status_code == 200
    assert other.get(CUSTOMERS).status_code == 200
    assert merchant.customers.count() == 0


def test_a_merchants_own_rate_overrides_the_default(limits, merchant, other_merchant):
    limits(api_key="2/min")
    merchant.api_rate_per_minute = 5
    merchant.save()
    generous, default = key_client(merchant), key_client(other_merchant)

    assert [generous.get(CUSTOMERS).status_code for _ in range(6)] == [200] * 5 + [429]
    assert [default.get(CUSTOMERS).status_code for _ in range(3)] == [200, 200, 429]


def test_one_address_is_limited_across_keys_and_other_addresses_are_not(limits, merchant, other_merchant):
    limits(api_ip="4/min")
    statuses = [key_client(m, "198.51.100.7").get(CUSTOMERS).status_code for m in [merchant, other_merchant] * 3]
    assert statuses == [200, 200, 200, 200, 429, 429]
    assert key_client(merchant, "198.51.100.8").get(CUSTOMERS).status_code == 200


def test_requests_without_credentials_count_against_the_address(limits, merchant):
    limits(api_ip="3/min")
    anonymous = APIClient(REMOTE_ADDR="198.51.100.9")
    assert [anonymous.get(CUSTOMERS).status_code for _ in range(3)] == [401, 401, 401]
    assert_throttled(anonymous.get(CUSTOMERS))
    assert_throttled(key_client(merchant, "198.51.100.9").get(CUSTOMERS))
    assert key_client(merchant, "198.51.100.10").get(CUSTOMERS).status_code == 200


def test_80_bad_keys_from_one_address_get_at_most_the_limit_of_401s(limits, merchant):
    limits(api_auth_failure="10/min")
    statuses = []
    for n in range(80):
        client = APIClient(REMOTE_ADDR="192.0.2.66")
        client.credentials(HTTP_AUTHORIZATION=f"Bearer rg_live_guess{n:04d}")
        response = client.get(CUSTOMERS)
        statuses.append(response.status_code)
        if response.status_code == 429:
            assert_throttled(response)
    assert statuses.count(401) == 10
    assert statuses.count(429) == 70
    assert statuses[:10] == [401] * 10

    # the guessing address is refused even with a right key; another address is not
    assert key_client(merchant, "192.0.2.66").get(CUSTOMERS).status_code == 429
    assert key_client(merchant, "192.0.2.67").get(CUSTOMERS).status_code == 200


def test_the_client_address_comes_from_forwarded_for_only_behind_configured_proxies(settings):
    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="1.1.1.1, 203.0.113.9")
    settings.NUM_PROXIES = 0
    assert client_ip(request) == "10.0.0.2"
    settings.NUM_PROXIES = 1
    assert client_ip(request) == "203.0.113.9"  # what our proxy appended, not what the client sent
    settings.NUM_PROXIES = 2
    assert client_ip(request) == "1.1.1.1"
    settings.NUM_PROXIES = 1
    assert client_ip(RequestFactory().get("/", HTTP_X_FORWARDED_FOR="<script>", REMOTE_ADDR="10.0.0.2")) is None


def test_a_forged_forwarded_for_does_not_escape_the_address_limit(limits, settings, merchant):
    limits(api_ip="2/min")
    settings.NUM_PROXIES = 1
    statuses = []
    for n in range(3):
        response = key_client(merchant, "10.0.0.2").get(CUSTOMERS, HTTP_X_FORWARDED_FOR=f"1.1.1.{n}, 203.0.113.9")
        statuses.append(response.status_code)
    assert statuses == [200, 200, 429]


def test_webhooks_are_limited_per_channel(limits, client):
    limits(webhook_channel="3/min")
    ensure_sandbox_channel()
    url = "/webhooks/channels/sandbox/"
    unsigned = [client.post(url, data=b"{}", content_type="application/json").status_code for _ in range(3)]
    assert unsigned == [400, 400, 400]
    assert_throttled(client.post(url, data=b"{}", content_type="application/json"))

    other = client.post("/webhooks/channels/other-bank/", data=b"{}", content_type="application/json")
    assert other.status_code == 404
    twilio = client.post("/webhooks/twilio/status/", {"MessageSid": "SM1", "MessageStatus": "delivered"})
    assert twilio.status_code == 403


def test_twilio_status_callbacks_are_limited(limits, client):
    limits(webhook_channel="2/min")
    data = {"MessageSid": "SM1", "MessageStatus": "delivered"}
    assert [client.post("/webhooks/twilio/status/", data).status_code for _ in range(2)] == [403, 403]
    assert_throttled(client.post("/webhooks/twilio/status/", data))


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_thirty_parallel_requests_of_one_key_pass_exactly_the_limit(limits, api):
    """The overshoot of a limit under parallel requests (RELIABILITY G14): none. A day's window, so
    the test cannot straddle a window's end."""
    limits(api_key="10/day")
    answers = send_at_once(api, 30, lambda client: client.get(CUSTOMERS))
    statuses = sorted(status for status, _, _ in answers)
    assert statuses == [200] * 10 + [429] * 20
