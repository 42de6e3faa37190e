"""The sandbox bank in-process: the real `SandboxAdapter` and the bank's own code, with HTTP
intercepted at the transport by `responses` and each request handed to the bank's functions (or, for
webhooks, to the receiver) in the caller's own thread and transaction. No sockets, no sleeps: a
submit the bank answers too late raises the `requests` timeout the adapter would see.

`InprocBank` is one object per test so that a fault simulator can subclass it and step in at the
transport (tests/gateways/faults.py); `install_inproc_bank` keeps the plain wiring the payout tests
use.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from urllib.parse import unquote, urlsplit

import pytest
import requests
import responses

from apps.gateways.base import WebhookRejected
from apps.gateways.sandbox import bank as sandbox
from apps.gateways.services import ensure_sandbox_channel, webhook_receive

BANK_HOST = "http://bank.test"
CHANNEL_HEADER = "X-Sandbox-Channel"


def answer(bank_answer: sandbox.BankAnswer):
    """A `responses` callback result, or the timeout the client sees when the bank dawdles."""
    if bank_answer.sleep_seconds:
        # The bank dawdles past the adapter's timeout: the client gives up, whatever the bank did.
        return requests.ReadTimeout("the bank answered too late")
    return bank_answer.http_status, {"Content-Type": "application/json"}, json.dumps(bank_answer.body)


def channel_of(request) -> str:
    return sandbox.channel_from(request.headers.get(CHANNEL_HEADER))


def request_id_of(request, suffix: str = "") -> str:
    tail = urlsplit(request.url).path.split("/transfers/", 1)[1]
    return unquote(tail[: -len(suffix)] if suffix else tail)


class InprocBank:
    """Routes each intercepted request to the bank (or the receiver) and returns its answer."""

    def submit(self, request):
        try:
            channel = channel_of(request)
            if sandbox.in_outage(channel):
                return answer(sandbox.outage_answer())
            data = sandbox.parse_transfer(json.loads(request.body))
        except sandbox.InvalidRequest as exc:
            return answer(sandbox.invalid_answer(exc))
        return answer(sandbox.transfer_submit(channel=channel, data=data))

    def query(self, request):
        if sandbox.in_outage(channel_of(request)):
            return answer(sandbox.outage_answer())
        return answer(sandbox.transfer_query(request_id=request_id_of(request)))

    def recall(self, request):
        if sandbox.in_outage(channel_of(request)):
            return answer(sandbox.outage_answer())
        return answer(sandbox.transfer_recall(request_id=request_id_of(request, "/recall")))

    def verify(self, request):
        try:
            if sandbox.in_outage(channel_of(request)):
                return answer(sandbox.outage_answer())
            account = sandbox.parse_verify(json.loads(request.body))
        except sandbox.InvalidRequest as exc:
            return answer(sandbox.invalid_answer(exc))
        return answer(sandbox.account_verify(account=account))

    def webhook(self, request):
        code = urlsplit(request.url).path.rstrip("/").rsplit("/", 1)[1]
        body = request.body if isinstance(request.body, bytes) else request.body.encode()
        try:
            receipt = webhook_receive(channel_code=code, headers=request.headers, body=body)
        except WebhookRejected as exc:
            return 400, {}, json.dumps({"error": exc.code})
        return 200, {"Content-Type": "application/json"}, json.dumps({"status": receipt.status})

    def install(self, mock: responses.RequestsMock) -> None:
        base = re.escape(f"{BANK_HOST}/sandbox/bank")
        mock.add_callback("POST", re.compile(rf"{base}/transfers$"), callback=self.submit)
        mock.add_callback("POST", re.compile(rf"{base}/transfers/[^/]+/recall$"), callback=self.recall)
        mock.add_callback("GET", re.compile(rf"{base}/transfers/[^/]+$"), callback=self.query)
        mock.add_callback("POST", re.compile(rf"{base}/accounts/verify$"), callback=self.verify)
        hooks = re.compile(rf"{re.escape(BANK_HOST)}/webhooks/channels/[^/]+/$")
        mock.add_callback("POST", hooks, callback=self.webhook)


def install_inproc_bank(mock: responses.RequestsMock, bank: InprocBank | None = None) -> InprocBank:
    bank = bank or InprocBank()
    bank.install(mock)
    return bank


def point_settings_at_inproc_bank(settings) -> None:
    """Channels, webhooks and batch polls wired for the in-process bank."""
    settings.PUBLIC_BASE_URL = BANK_HOST
    settings.SANDBOX_BANK_URL = f"{BANK_HOST}/sandbox/bank"
    # Batch polls query from worker threads, whose database connections cannot see the test's
    # uncommitted rows: in-process, queries run one by one in the test's thread.
    settings.PAYOUT_POLL_CONCURRENCY = 1
    settings.REFUND_POLL_CONCURRENCY = 1


@pytest.fixture
def inproc_sandbox(db, sandbox_settings):
    """The sandbox channels, their adapter and the bank wired together in-process; yields the bank
    object (subclass `InprocBank` and install it yourself to step in at the transport)."""
    point_settings_at_inproc_bank(sandbox_settings)
    ensure_sandbox_channel()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield install_inproc_bank(mock)


@pytest.fixture
def bank_queries(monkeypatch) -> Counter:
    """Status queries the sandbox bank answered, by request id (counted at the bank itself)."""
    seen: Counter = Counter()
    answer_query = sandbox.transfer_query

    def counted(*, request_id: str):
        seen[request_id] += 1
        return answer_query(request_id=request_id)

    monkeypatch.setattr(sandbox, "transfer_query", counted)
    return seen
