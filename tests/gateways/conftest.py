"""Gateway fixtures: the sandbox bank served for real by pytest-django's `live_server`, so the
adapter talks HTTP to it and the bank POSTs its webhooks back to the receiver over HTTP.

Timeouts are shrunk (adapter 1.5 s, the bank's deliberate slowness 2.5 s; a normal answer must fit
in the adapter's timeout even on a busy 2-core machine, or a test meets a timeout nobody planted)
and the bank's clock is moved with time-machine, which patches the whole process, server threads
included.
"""

from __future__ import annotations

import json
import threading
import time
from contextlib import contextmanager
from datetime import timedelta

import pytest
import requests
import time_machine
from django.utils import timezone

from apps.gateways import registry
from apps.gateways.base import Account, ChannelResult, TransferRequest
from apps.gateways.models import Channel
from apps.gateways.services import ensure_sandbox_channel
from apps.gateways.signing import signature_header
from tests.gateways.health_support import announced, health_settings  # noqa: F401 (fixtures)

ADAPTER_TIMEOUT = 1.5
BANK_SLEEP = 2.5
SETTLE = 2.0
HOLDER = "王小明"
WEBHOOK_URL = "/webhooks/channels/sandbox/"


def bank_event_body(
    *, event_id: str, request_id: str, status: str, amount: int, code: str = "", currency: str = "CNY", kind="refund"
) -> bytes:
    """A bank event shaped exactly as the sandbox bank sends it (compact JSON, keys sorted)."""
    now = timezone.now().isoformat()
    payload = {
        "id": event_id,
        "type": f"transfer.{status}",
        "created_at": now,
        "data": {
            "transfer_id": "sbx_test",
            "request_id": request_id,
            "status": status,
            "code": code,
            "amount": amount,
            "currency": currency,
            "kind": kind,
            "occurred_at": now,
        },
    }
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def post_webhook(client, body: bytes, *, header: str | None = "sign", secret: str | None = None, skew: int = 0):
    """POST `body` to the sandbox channel's receiver, signed with the channel's secret (or
    `secret`, `skew` seconds off) unless `header` is given (None: no signature at all)."""
    headers = {}
    if header == "sign":
        secret = secret or Channel.objects.get(code="sandbox").webhook_secret
        timestamp = int(timezone.now().timestamp()) + skew
        headers["HTTP_X_REFUNDGUARD_SIGNATURE"] = signature_header(secret=secret, timestamp=timestamp, body=body)
    elif header is not None:
        headers["HTTP_X_REFUNDGUARD_SIGNATURE"] = header
    return client.post(WEBHOOK_URL, data=body, content_type="application/json", **headers)


def account(suffix: str) -> Account:
    return Account(holder_name=HOLDER, bank="ICBC", number=f"622202000000{suffix}")


def transfer(number: int, suffix: str, *, amount: int = 19900, currency: str = "CNY") -> TransferRequest:
    return TransferRequest(
        request_id=f"refund:{number}:submit",
        reference=f"refund:{number}",
        amount=amount,
        currency=currency,
        account=account(suffix),
    )


def http(method: str, url: str, **kwargs) -> requests.Response:
    """A one-off HTTP call that closes its connection, so the live server's thread (and its
    database connection) ends with the request instead of waiting on a kept-alive socket."""
    headers = {"Connection": "close", **kwargs.pop("headers", {})}
    return requests.request(method, url, headers=headers, timeout=kwargs.pop("timeout", 5), **kwargs)


@contextmanager
def later(seconds: float):
    """The bank's clock (and ours) `seconds` ahead, still ticking."""
    with time_machine.travel(timezone.now() + timedelta(seconds=seconds)):
        yield


class RecordingHandler:
    """A stand-in for the refunds app: counts what the registry hands it."""

    def __init__(self, outcome: str = "applied") -> None:
        self.calls: list[tuple[ChannelResult, str, str]] = []
        self.outcome = outcome
        self.fail = False
        self.delay = 0.0
        self._lock = threading.Lock()

    def __call__(self, result: ChannelResult, *, channel_code: str, source: str) -> str:
        if self.fail:
            raise RuntimeError("handler down")
        if self.delay:
            time.sleep(self.delay)
        with self._lock:
            self.calls.append((result, channel_code, source))
        return self.outcome

    @property
    def statuses(self) -> list[str]:
        return [result.status.value for result, _, _ in self.calls]


@pytest.fixture
def refund_handler():
    """Registers a fake "refund" owner for the test only, restoring whatever was there before."""
    handler = RecordingHandler()
    previous = registry.register("refund", handler)
    yield handler
    if previous is None:
        registry.unregister("refund")
    else:
        registry.register("refund", previous)


@pytest.fixture
def sandbox_settings(settings):
    settings.SANDBOX_BANK_ENABLED = True
    # The live server is torn down between tests: a kept-alive socket would hold one of its threads,
    # and that thread's database connection, past the test (and break the test database teardown).
    settings.CHANNEL_HTTP_KEEPALIVE = False
    settings.SANDBOX_BANK_TIMEOUT_SLEEP = BANK_SLEEP
    settings.SANDBOX_BANK_SETTLE_SECONDS = SETTLE
    settings.SANDBOX_BANK_DELAY_SECONDS = 30 * 3600.0
    settings.SANDBOX_BANK_RETURN_SECONDS = 60.0
    settings.SANDBOX_BANK_WEBHOOK_TIMEOUT = 5.0
    settings.CHANNEL_WEBHOOK_TOLERANCE_SECONDS = 300
    return settings


@pytest.fixture
def channel(db, sandbox_settings) -> Channel:
    """The sandbox channels, without a live server (for receiver-only tests)."""
    return ensure_sandbox_channel()


@pytest.fixture
def bank(live_server, sandbox_settings) -> Channel:
    """The sandbox bank on a live HTTP server and the "sandbox" channel pointing at it."""
    sandbox_settings.PUBLIC_BASE_URL = live_server.url
    sandbox_settings.SANDBOX_BANK_URL = f"{live_server.url}/sandbox/bank"
    ensure_sandbox_channel()
    Channel.objects.update(timeout_seconds=ADAPTER_TIMEOUT)
    yield Channel.objects.get(code="sandbox")
    # A request the client gave up on (0005, 0006) is still sleeping in the server: let it finish
    # inside this test, before the database is flushed under it.
    deadline = time.monotonic() + BANK_SLEEP + 5
    while time.monotonic() < deadline and any(
        "process_request_thread" in thread.name for thread in threading.enumerate()
    ):
        time.sleep(0.02)
