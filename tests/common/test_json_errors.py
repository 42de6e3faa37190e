"""Every error under /api/ and /webhooks/ is JSON in the error shape, DEBUG on or off
(RELIABILITY.md); an outage of the database or broker is a 503 with Retry-After; pages elsewhere
keep Django's HTML."""

from __future__ import annotations

from unittest import mock

import pytest
from django.db import OperationalError
from django.test import Client
from kombu.exceptions import OperationalError as BrokerError

from tests.common.boom_urls import SECRET

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.common.boom_urls")]


@pytest.fixture(params=[False, True], ids=["debug-off", "debug-on"])
def debug(request, settings):
    settings.DEBUG = request.param
    return request.param


@pytest.fixture
def client() -> Client:
    # Django's test client re-raises a view's exception by default; a real client gets the answer.
    return Client(raise_request_exception=False)


def _assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "fields"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert SECRET not in response.content.decode()
    assert "Traceback" not in response.content.decode()
    return body


@pytest.mark.parametrize("url", ["/api/v1/_boom", "/api/v1/_drf_boom", "/webhooks/_boom"])
def test_an_uncaught_exception_is_a_json_500_without_its_text(client, debug, url):
    _assert_error(client.get(url), 500, "server_error")


def test_a_database_outage_in_a_view_is_a_503_with_retry_after(client, debug):
    response = client.get("/api/v1/_db_down")

    _assert_error(response, 503, "service_unavailable")
    assert int(response["Retry-After"]) > 0


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("get", "/api/v1/refunds"),  # authentication reads the API key
        ("post", "/webhooks/channels/sandbox/"),  # the receiver looks the channel up
    ],
)
def test_a_database_that_refuses_every_query_is_a_503_with_retry_after(client, debug, method, url):
    fail = mock.patch(
        "django.db.backends.utils.CursorWrapper.execute", side_effect=OperationalError("server closed the connection")
    )
    with fail:
        response = getattr(client, method)(url, HTTP_AUTHORIZATION="Bearer rg_live_x")

    _assert_error(response, 503, "service_unavailable")
    assert int(response["Retry-After"]) > 0


def test_an_unreachable_broker_on_a_publish_in_the_request_is_a_503(client, debug):
    with mock.patch("celery.app.task.Task.apply_async", side_effect=BrokerError("Error 111 connecting")):
        response = client.post("/api/v1/_publish")

    _assert_error(response, 503, "service_unavailable")
    assert int(response["Retry-After"]) > 0


def test_a_json_503_of_a_view_gets_retry_after(client, debug):
    response = client.get("/webhooks/_json_503")

    _assert_error(response, 503, "channel_misconfigured")
    assert int(response["Retry-After"]) > 0


@pytest.mark.parametrize(
    "url", ["/api/v1/nope", "/api/nope", "/api/v1/refunds/abc", "/webhooks/nope", "/webhooks/channels/a/b/c"]
)
def test_an_unknown_url_is_a_json_404(client, debug, url):
    _assert_error(client.get(url), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("get", "/webhooks/channels/sandbox/"),
        ("put", "/webhooks/channels/sandbox/"),
        ("get", "/webhooks/twilio/status/"),
        ("delete", "/webhooks/twilio/status/"),
        ("put", "/api/v1/refunds"),
    ],
)
def test_a_wrong_method_is_a_json_405_that_names_the_allowed_ones(client, debug, api, method, url):
    response = getattr(api if url.startswith("/api/") else client, method)(url)

    body = _assert_error(response, 405, "method_not_allowed")
    assert method.upper() in body["error"]["message"]
    assert "POST" in response["Allow"]


def test_any_other_non_json_error_under_the_api_gets_the_shape(client, debug):
    _assert_error(client.get("/api/v1/_gone"), 410, "gone")


@pytest.mark.parametrize("url", ["/console/_boom", "/console/no-such-page/"])
def test_pages_outside_the_api_keep_django_html(client, debug, url):
    response = client.get(url)

    assert response.status_code in (404, 500)
    assert response["Content-Type"].startswith("text/")
