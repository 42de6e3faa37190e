"""Request bodies the servers we run hand over in unusual shapes: sent chunked (Transfer-Encoding:
chunked, no Content-Length) and malformed multipart. Never silently read as empty.

Chunked bodies are tried against the REAL servers: gunicorn (production web, Procfile /
docker-compose) and daphne (`make run`, the WebSocket service), with raw `http.client` requests:
accepted within DATA_UPLOAD_MAX_MEMORY_SIZE, 413 above it. A WSGI server that does not promise a
terminated input (`wsgi.input_terminated`, e.g. wsgiref) cannot tell where the body ends: 411.
"""

from __future__ import annotations

import http.client
import json
import time

import pytest

from apps.accounts.models import Customer
from apps.accounts.services import api_key_create
from apps.gateways.models import InboundWebhook
from tests.factories import MerchantFactory
from tests.test_e2e_run import Stack, _free_port, served_env

LIMIT = 64 * 1024  # DATA_UPLOAD_MAX_MEMORY_SIZE for the served processes
SERVERS = {
    "gunicorn": ("-m", "gunicorn", "--bind", "127.0.0.1:{port}", "--workers", "1", "refundguard.wsgi:application"),
    "daphne": ("-m", "daphne", "-b", "127.0.0.1", "-p", "{port}", "refundguard.asgi:application"),
}


def _request(port: int, path: str, body: bytes, *, chunked: bool, headers: dict[str, str]) -> tuple[int, dict, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        if chunked:
            pieces = [body[i : i + 1000] for i in range(0, len(body), 1000)]
            connection.request("POST", path, body=iter(pieces), headers=headers, encode_chunked=True)
        else:
            connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), json.loads(response.read() or b"null")
    finally:
        connection.close()


@pytest.fixture(params=sorted(SERVERS))
def served(request, transactional_db, tmp_path, settings):
    """One real server process on the test database; yields (port, API key)."""
    merchant = MerchantFactory(name="Chunked")
    _, key = api_key_create(merchant=merchant)
    port = _free_port()
    env = served_env(settings, tmp_path, base=f"http://127.0.0.1:{port}", webhook_secret="whsec_chunked")
    env["DATA_UPLOAD_MAX_MEMORY_SIZE"] = str(LIMIT)
    stack = Stack(env, tmp_path)
    try:
        stack.start("web", *(arg.format(port=port) for arg in SERVERS[request.param]))
        deadline = time.monotonic() + 60
        while True:
            stack.check_alive()
            try:
                http.client.HTTPConnection("127.0.0.1", port, timeout=2).connect()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"{request.param} did not listen\n{stack.dump()}")
                time.sleep(0.3)
        yield port, key
    except BaseException:
        print(stack.dump())
        raise
    finally:
        stack.stop()


@pytest.mark.e2e
@pytest.mark.postgres  # the served processes share the test's committed PostgreSQL database (served_env)
@pytest.mark.timeout(180)
def test_chunked_bodies_are_read_within_the_limit_and_refused_above_it(served):
    port, key = served
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    body = json.dumps({"external_id": "chunked-1", "name": "王小明" * 10}).encode()
    status, _, answer = _request(port, "/api/v1/customers", body, chunked=True, headers=headers)
    assert status == 201, answer
    assert answer["external_id"] == "chunked-1"
    assert Customer.objects.filter(external_id="chunked-1").count() == 1

    too_big = json.dumps({"external_id": "chunked-2", "name": "x", "pad": "a" * LIMIT}).encode()
    status, _, answer = _request(port, "/api/v1/customers", too_big, chunked=True, headers=headers)
    assert status == 413, answer
    assert answer["error"]["code"] == "payload_too_large"
    assert not Customer.objects.filter(external_id="chunked-2").exists()

    # The webhook receiver sees the chunked bytes too: an unsigned body is refused as unsigned, not
    # as empty, and nothing is written.
    status, _, answer = _request(
        port,
        "/webhooks/channels/sandbox/",
        b'{"id": "evt_1"}',
        chunked=True,
        headers={"Content-Type": "application/json"},
    )
    assert status in (400, 404), answer
    assert answer["error"]["code"] in ("signature_missing", "unknown_channel")
    assert InboundWebhook.objects.count() == 0


@pytest.mark.django_db
def test_chunked_body_on_a_server_without_a_terminated_input_is_411(api):
    """The Django test client is a WSGI server without `wsgi.input_terminated`, like wsgiref."""
    response = api.generic(
        "POST",
        "/api/v1/customers",
        data=json.dumps({"external_id": "c-411", "name": "x"}),
        content_type="application/json",
        HTTP_TRANSFER_ENCODING="chunked",
        CONTENT_LENGTH="",
    )
    assert response.status_code == 411
    assert response.json()["error"]["code"] == "length_required"
    assert not Customer.objects.filter(external_id="c-411").exists()


MALFORMED_MULTIPART = {
    "unterminated part": b'--x\r\nContent-Disposition: form-data; name="a"\r\n\r\ngarbage without end',
    "no part headers": b"--x\r\nnoheaders\r\n\r\n--x--",
    "not multipart at all": b"\x00\xff garbage",
}


@pytest.mark.django_db
@pytest.mark.parametrize("content_type", ["multipart/form-data; boundary=x", "multipart/form-data; boundary="])
@pytest.mark.parametrize("body", MALFORMED_MULTIPART.values(), ids=MALFORMED_MULTIPART.keys())
@pytest.mark.parametrize("path", ["/api/v1/customers", "/webhooks/channels/sandbox/", "/webhooks/twilio/status/"])
def test_malformed_multipart_is_a_json_4xx(api, settings, path, body, content_type):
    settings.TWILIO_AUTH_TOKEN = "test-token"
    response = api.generic("POST", path, data=body, content_type=content_type, HTTP_X_TWILIO_SIGNATURE="forged")
    assert 400 <= response.status_code < 500, response.content
    assert response["Content-Type"] == "application/json"
    assert set(response.json()["error"]) == {"code", "message", "fields"}
    assert Customer.objects.count() == 0
    assert InboundWebhook.objects.count() == 0
