"""The webhook receiver refuses unsigned, stale or tampered deliveries before any write, and a
redelivered event is recorded and dispatched once (RELIABILITY.md G5, G6; bad inputs 12–15)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from apps.gateways.models import ChannelCall, InboundWebhook, SandboxEvent
from apps.gateways.sandbox import bank
from apps.gateways.signing import compute_signature, signature_header

URL = "/webhooks/channels/sandbox/"


def bank_event(request_id: str = "refund:1:submit", suffix: str = "0000") -> bytes:
    """The exact bytes the sandbox bank would send for the first event of a fresh transfer."""
    data = bank.parse_transfer(
        {
            "request_id": request_id,
            "amount": 19900,
            "currency": "CNY",
            "kind": "refund",
            "account": {"holder_name": "王小明", "bank": "ICBC", "number": f"622202000000{suffix}"},
        }
    )
    bank.transfer_submit(channel="sandbox", data=data)
    event = SandboxEvent.objects.filter(transfer__request_id=request_id).order_by("due_at", "id").first()
    return bank.event_body(event)


def now_ts() -> int:
    return int(timezone.now().timestamp())


def post(client, body: bytes, signature: str | None, url: str = URL):
    headers = {} if signature is None else {"X-RefundGuard-Signature": signature}
    return client.post(url, data=body, content_type="application/json", headers=headers)


def _sig(body: bytes, secret: str, t: int) -> str:
    return compute_signature(secret=secret, timestamp=t, body=body)


def _reserialized(body: bytes) -> bytes:
    return json.dumps(json.loads(body)).encode()  # same data, different bytes (spaces after ':' and ',')


def _tampered(body: bytes) -> bytes:
    return body.replace(b'"amount":19900', b'"amount":19901')


# name → (body to send, signature header, expected error code); signatures are made over the original body.
TAMPERINGS = {
    "header missing": lambda b, s, t: (b, None, "signature_missing"),
    "header empty": lambda b, s, t: (b, "", "signature_missing"),
    "header blank": lambda b, s, t: (b, "   ", "signature_missing"),
    "several v1 values": lambda b, s, t: (b, f"t={t},v1={_sig(b, s, t)},v1={_sig(b, s, t)}", "signature_malformed"),
    "several t values": lambda b, s, t: (b, f"t={t},t={t},v1={_sig(b, s, t)}", "signature_malformed"),
    "two headers joined": lambda b, s, t: (
        b,
        f"{signature_header(secret=s, timestamp=t, body=b)}, t={t}",
        "signature_malformed",
    ),
    "empty v1": lambda b, s, t: (b, f"t={t},v1=", "signature_malformed"),
    "wrong scheme v0": lambda b, s, t: (b, f"t={t},v0={_sig(b, s, t)}", "signature_scheme"),
    "wrong scheme sha256=": lambda b, s, t: (b, f"sha256={_sig(b, s, t)}", "signature_scheme"),
    "extra scheme": lambda b, s, t: (b, f"t={t},v1={_sig(b, s, t)},v2={_sig(b, s, t)}", "signature_scheme"),
    "301 s old": lambda b, s, t: (
        b,
        signature_header(secret=s, timestamp=t - 301, body=b),
        "timestamp_out_of_tolerance",
    ),
    "301 s in the future": lambda b, s, t: (
        b,
        signature_header(secret=s, timestamp=t + 301, body=b),
        "timestamp_out_of_tolerance",
    ),
    "timestamp not a number": lambda b, s, t: (b, f"t=abc,v1={_sig(b, s, t)}", "timestamp_invalid"),
    "timestamp as float": lambda b, s, t: (b, f"t={t}.0,v1={_sig(b, s, t)}", "timestamp_invalid"),
    "timestamp negative": lambda b, s, t: (b, f"t=-{t},v1={_sig(b, s, t)}", "timestamp_invalid"),
    "re-serialized body": lambda b, s, t: (
        _reserialized(b),
        signature_header(secret=s, timestamp=t, body=b),
        "signature_mismatch",
    ),
    "amount changed after signing": lambda b, s, t: (
        _tampered(b),
        signature_header(secret=s, timestamp=t, body=b),
        "signature_mismatch",
    ),
    "wrong secret": lambda b, s, t: (b, signature_header(secret=s + "x", timestamp=t, body=b), "signature_mismatch"),
    "signature for another timestamp": lambda b, s, t: (b, f"t={t},v1={_sig(b, s, t - 1)}", "signature_mismatch"),
    "signature not hex": lambda b, s, t: (b, f"t={t},v1={'z' * 64}", "signature_mismatch"),
}


@pytest.mark.parametrize("name", list(TAMPERINGS))
def test_tampered_or_stale_webhook_is_rejected_before_any_write(client, channel, refund_handler, name):
    original = bank_event()
    body, header, code = TAMPERINGS[name](original, channel.webhook_secret, now_ts())
    response = post(client, body, header)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert set(response.json()["error"]) == {"code", "message", "fields"}
    assert InboundWebhook.objects.count() == 0
    assert ChannelCall.objects.count() == 0
    assert refund_handler.calls == []


def test_signature_exactly_300_s_old_is_still_accepted(client, channel, refund_handler):
    body = bank_event()
    with time_machine.travel(timezone.now(), tick=False):
        header = signature_header(secret=channel.webhook_secret, timestamp=now_ts() - 300, body=body)
        assert post(client, body, header).status_code == 200
    assert InboundWebhook.objects.count() == 1


def test_valid_webhook_is_recorded_and_dispatched_once_to_the_owner(client, channel, refund_handler):
    body = bank_event()
    event = json.loads(body)
    response = post(client, body, signature_header(secret=channel.webhook_secret, timestamp=now_ts(), body=body))
    assert response.status_code == 200
    assert response.json() == {"status": "accepted", "events": {event["id"]: "applied"}}

    row = InboundWebhook.objects.get()
    assert (row.event_id, row.request_id, row.status, row.outcome) == (
        event["id"],
        "refund:1:submit",
        "processing",
        "applied",
    )
    assert row.payload == event
    [(result, channel_code, source)] = refund_handler.calls
    assert (channel_code, source) == ("sandbox", "webhook")
    assert result.request_id == "refund:1:submit"
    assert result.status == "processing"
    assert (result.amount, result.currency) == (19900, "CNY")
    assert result.channel_reference == event["data"]["transfer_id"]


def test_duplicate_delivery_now_and_days_later_dispatches_once(client, channel, refund_handler):
    body = bank_event()
    first = post(client, body, signature_header(secret=channel.webhook_secret, timestamp=now_ts(), body=body))
    again = post(client, body, signature_header(secret=channel.webhook_secret, timestamp=now_ts(), body=body))
    with time_machine.travel(timezone.now() + timedelta(days=3)):
        days_later = post(client, body, signature_header(secret=channel.webhook_secret, timestamp=now_ts(), body=body))
    assert [r.status_code for r in (first, again, days_later)] == [200, 200, 200]
    assert [r.json()["status"] for r in (first, again, days_later)] == ["accepted", "duplicate", "duplicate"]
    assert InboundWebhook.objects.count() == 1
    assert len(refund_handler.calls) == 1


def test_replayed_signature_days_later_is_stale(client, channel, refund_handler):
    body = bank_event()
    header = signature_header(secret=channel.webhook_secret, timestamp=now_ts(), body=body)
    with time_machine.travel(timezone.now() + timedelta(days=3)):
        response = post(client, body, header)
    assert response.status_code == 400
    assert InboundWebhook.objects.count() == 0
    assert refund_handler.calls == []


def test_unknown_reference_is_accepted_and_recorded_but_dispatched_to_nobody(client, channel, refund_handler):
    body = bank_event(request_id="nobody:7:submit")
    response = post(client, body, signature_header(secret=channel.webhook_secret, timestamp=now_ts(), body=body))
    assert response.status_code == 200
    assert InboundWebhook.objects.get().outcome == "unknown_reference"
    assert refund_handler.calls == []


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[]",
        b'{"id": "evt_1"}',
        b'{"id": "", "data": {"request_id": "refund:1:submit", "status": "succeeded"}}',
        b'{"id": "evt_1", "data": {"request_id": "refund:1:submit", "status": "teleported"}}',
        b'{"id": "evt_1", "data": {"request_id": "refund:1:submit", "status": "succeeded", "amount": "1.5"}}',
        b'{"id": "evt_1", "id": "evt_2", "data": {"request_id": "refund:1:submit", "status": "succeeded"}}',
        b"\xff\xfe",
    ],
)
def test_signed_but_malformed_event_is_rejected(client, channel, refund_handler, payload):
    response = post(client, payload, signature_header(secret=channel.webhook_secret, timestamp=now_ts(), body=payload))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "payload_invalid"
    assert InboundWebhook.objects.count() == 0
    assert refund_handler.calls == []


def test_unknown_channel_is_404_and_writes_nothing(client, channel, refund_handler):
    body = bank_event()
    header = signature_header(secret=channel.webhook_secret, timestamp=now_ts(), body=body)
    response = post(client, body, header, url="/webhooks/channels/nosuchbank/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_channel"
    assert post(client, body, header, url="/webhooks/channels/not a slug/").status_code == 404
    assert InboundWebhook.objects.count() == 0
    assert refund_handler.calls == []


@pytest.mark.parametrize("method", ["get", "put", "delete", "patch"])
def test_only_post_is_allowed(client, channel, refund_handler, method):
    response = getattr(client, method)(URL)
    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert InboundWebhook.objects.count() == 0


def _nested(depth: int) -> bytes:
    """A well-formed event whose `data` carries a value nested `depth` levels deep."""
    inner = b"[" * depth + b"]" * depth
    return b'{"id": "evt_deep", "data": {"request_id": "refund:1:submit", "status": "succeeded", "x": ' + inner + b"}}"


@pytest.mark.parametrize("depth", [17, 1000, 100_000])
def test_signed_but_deeply_nested_event_is_refused_before_parsing(client, channel, refund_handler, depth):
    body = _nested(depth)
    response = post(client, body, signature_header(secret=channel.webhook_secret, timestamp=now_ts(), body=body))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "payload_invalid"
    assert "nested" in response.json()["error"]["message"]
    assert InboundWebhook.objects.count() == 0
    assert refund_handler.calls == []


def test_signed_body_over_the_size_limit_is_refused(client, channel, refund_handler, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2048
    body = _nested(2).replace(b'"x": ', b'"pad": "' + b"a" * 4096 + b'", "x": ')
    response = post(client, body, signature_header(secret=channel.webhook_secret, timestamp=now_ts(), body=body))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert InboundWebhook.objects.count() == 0


def test_handler_failure_rolls_back_so_the_redelivery_is_applied_once(client, channel, refund_handler):
    body = bank_event()
    refund_handler.fail = True
    client.raise_request_exception = False
    failed = post(client, body, signature_header(secret=channel.webhook_secret, timestamp=now_ts(), body=body))
    assert failed.status_code == 500  # the bank retries anything but 2xx
    assert InboundWebhook.objects.count() == 0

    refund_handler.fail = False
    retried = post(client, body, signature_header(secret=channel.webhook_secret, timestamp=now_ts(), body=body))
    assert retried.json()["status"] == "accepted"
    assert InboundWebhook.objects.count() == 1
    assert len(refund_handler.calls) == 1
