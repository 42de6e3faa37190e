"""Races that only PostgreSQL can referee: concurrent duplicate webhooks, concurrent submits of one
request id, and two webhook deliverers running at once."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connections
from django.utils import timezone

from apps.gateways.adapters import get_adapter
from apps.gateways.base import TransferStatus
from apps.gateways.models import InboundWebhook, SandboxEvent, SandboxSubmission, SandboxTransfer
from apps.gateways.sandbox.bank import event_body, sandbox_bank_deliver_webhooks
from apps.gateways.services import channel_submit
from apps.gateways.signing import SIGNATURE_HEADER, signature_header
from tests.gateways.conftest import http, transfer

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(60)]

THREADS = 8


def test_same_event_delivered_concurrently_is_recorded_and_dispatched_once(bank, refund_handler, live_server):
    channel_submit(channel=bank, request=transfer(1, "0000"))
    body = event_body(SandboxEvent.objects.order_by("due_at", "id").first())
    header = signature_header(secret=bank.webhook_secret, timestamp=int(timezone.now().timestamp()), body=body)
    refund_handler.delay = 0.3  # hold the first insert uncommitted while the others arrive
    barrier = threading.Barrier(THREADS)

    def deliver(_):
        barrier.wait()
        return http(
            "POST",
            f"{live_server.url}/webhooks/channels/sandbox/",
            data=body,
            headers={SIGNATURE_HEADER: header, "Content-Type": "application/json"},
        )

    with ThreadPoolExecutor(THREADS) as pool:
        responses = list(pool.map(deliver, range(THREADS)))
    assert [r.status_code for r in responses] == [200] * THREADS
    assert sorted(r.json()["status"] for r in responses) == ["accepted"] + ["duplicate"] * (THREADS - 1)
    assert InboundWebhook.objects.count() == 1
    assert len(refund_handler.calls) == 1


def test_concurrent_submits_of_one_request_id_execute_once(bank):
    adapter = get_adapter(bank)
    request = transfer(2, "0000")
    barrier = threading.Barrier(THREADS)

    def submit(_):
        barrier.wait()
        return adapter.submit(request)

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(submit, range(THREADS)))
    assert {r.status for r in results} == {TransferStatus.PROCESSING}
    assert len({r.channel_reference for r in results}) == 1
    assert SandboxTransfer.objects.get().executions == 1
    outcomes = sorted(SandboxSubmission.objects.values_list("outcome", flat=True))
    assert outcomes == ["deduplicated"] * (THREADS - 1) + ["executed"]


def test_two_deliverers_at_once_send_each_event_once(bank, refund_handler):
    for number in range(10):
        channel_submit(channel=bank, request=transfer(100 + number, "0000"))
    barrier = threading.Barrier(2)

    def run(_):
        try:
            barrier.wait()
            return sandbox_bank_deliver_webhooks()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(2) as pool:
        delivered = list(pool.map(run, range(2)))
    assert sum(delivered) == 10
    assert set(SandboxEvent.objects.filter(status="processing").values_list("attempts", flat=True)) == {1}
    assert InboundWebhook.objects.count() == 10
    assert len(refund_handler.calls) == 10
