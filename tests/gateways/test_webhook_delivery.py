"""The sandbox bank POSTs signed webhooks over real HTTP to the receiver, which hands each event to
its owner exactly once, whatever order and however often they arrive."""

from __future__ import annotations

import pytest
from django.conf import settings

from apps.gateways.base import TransferStatus
from apps.gateways.models import InboundWebhook, SandboxEvent
from apps.gateways.sandbox.bank import sandbox_bank_deliver_webhooks
from apps.gateways.services import channel_submit
from apps.gateways.tasks import sandbox_bank_deliver_webhooks_task
from tests.gateways.conftest import http, later, transfer

pytestmark = pytest.mark.timeout(60)


def undelivered() -> int:
    return SandboxEvent.objects.filter(delivered_at__isnull=True).count()


def test_bank_delivers_each_state_change_once_when_it_happens(bank, refund_handler):
    channel_submit(channel=bank, request=transfer(1, "0000"))
    assert sandbox_bank_deliver_webhooks() == 1
    assert refund_handler.statuses == ["processing"]
    assert sandbox_bank_deliver_webhooks() == 0  # "succeeded" is not due yet

    with later(3):
        assert sandbox_bank_deliver_webhooks() == 1
        assert sandbox_bank_deliver_webhooks() == 0
    assert refund_handler.statuses == ["processing", "succeeded"]
    assert [source for _, _, source in refund_handler.calls] == ["webhook", "webhook"]
    assert InboundWebhook.objects.count() == 2
    assert set(InboundWebhook.objects.values_list("outcome", flat=True)) == {"applied"}
    assert undelivered() == 0
    assert set(SandboxEvent.objects.values_list("attempts", "last_http_status")) == {(1, 200)}


def test_0003_return_arrives_as_a_later_webhook_with_its_reason(bank, refund_handler):
    channel_submit(channel=bank, request=transfer(2, "0003"))
    sandbox_bank_deliver_webhooks()
    with later(3):
        sandbox_bank_deliver_webhooks()
    with later(3 + 61):
        sandbox_bank_deliver_webhooks()
    assert refund_handler.statuses == ["processing", "succeeded", "returned"]
    returned = refund_handler.calls[-1][0]
    assert returned.reason.code == "account_closed"
    assert returned.raw_code == "ACCOUNT_CLOSED"


def test_0008_each_webhook_arrives_twice_and_out_of_order_but_is_dispatched_once(bank, refund_handler):
    channel_submit(channel=bank, request=transfer(3, "0008"))
    assert sandbox_bank_deliver_webhooks() == 0  # this bank sends nothing until it settles
    with later(3):
        assert sandbox_bank_deliver_webhooks() == 4  # every delivery answered 2xx, duplicates included
    assert refund_handler.statuses == ["succeeded", "processing"]  # the owner must not move backwards
    assert InboundWebhook.objects.count() == 2
    assert SandboxEvent.objects.filter(delivered_at__isnull=False).count() == 4
    assert list(InboundWebhook.objects.order_by("id").values_list("status", flat=True)) == ["succeeded", "processing"]


def test_refused_delivery_is_retried_with_backoff_until_accepted(bank, refund_handler):
    channel_submit(channel=bank, request=transfer(4, "0000"))
    refund_handler.fail = True  # the receiver answers 500
    assert sandbox_bank_deliver_webhooks() == 0
    event = SandboxEvent.objects.get(status="processing")
    assert (event.attempts, event.last_http_status, event.delivered_at) == (1, 500, None)
    assert InboundWebhook.objects.count() == 0

    refund_handler.fail = False
    assert sandbox_bank_deliver_webhooks() == 0  # backing off
    with later(2.5):
        assert sandbox_bank_deliver_webhooks() == 2  # the retry, and "succeeded" now due
    assert refund_handler.statuses == ["processing", "succeeded"]
    assert SandboxEvent.objects.get(status="processing").attempts == 2


def test_unreachable_receiver_is_retried(bank, refund_handler, settings):
    channel_submit(channel=bank, request=transfer(5, "0000"))
    public = settings.PUBLIC_BASE_URL
    settings.PUBLIC_BASE_URL = "http://127.0.0.1:9"  # nothing listens on the discard port
    assert sandbox_bank_deliver_webhooks() == 0
    event = SandboxEvent.objects.get(status="processing")
    assert event.attempts == 1
    assert event.last_error == "ConnectionError"
    settings.PUBLIC_BASE_URL = public
    with later(2.5):
        assert sandbox_bank_deliver_webhooks() == 2
    assert refund_handler.statuses == ["processing", "succeeded"]


def test_bank_in_outage_sends_no_webhooks(bank, refund_handler, live_server):
    channel_submit(channel=bank, request=transfer(6, "0000"))
    http("POST", f"{live_server.url}/sandbox/bank/outage", json={"channel": "sandbox", "enabled": True})
    with later(3):
        assert sandbox_bank_deliver_webhooks() == 0
        http("POST", f"{live_server.url}/sandbox/bank/outage", json={"channel": "sandbox", "enabled": False})
        assert sandbox_bank_deliver_webhooks() == 2
    assert refund_handler.statuses == ["processing", "succeeded"]


def test_celery_task_delivers_due_webhooks(bank, refund_handler):
    result = channel_submit(channel=bank, request=transfer(7, "0000"))
    assert result.status == TransferStatus.PROCESSING
    sandbox_bank_deliver_webhooks_task.delay()
    assert refund_handler.statuses == ["processing"]
    assert undelivered() == 1


def test_task_does_nothing_when_the_sandbox_is_disabled(bank, refund_handler, settings):
    channel_submit(channel=bank, request=transfer(8, "0000"))
    settings.SANDBOX_BANK_ENABLED = False
    sandbox_bank_deliver_webhooks_task.delay()
    assert refund_handler.calls == []
    assert undelivered() == 2


def test_beat_runs_the_delivery_every_two_seconds():
    entry = settings.CELERY_BEAT_SCHEDULE["sandbox-bank-webhooks"]
    assert entry == {"task": "apps.gateways.tasks.sandbox_bank_deliver_webhooks_task", "schedule": 2.0}
    assert sandbox_bank_deliver_webhooks_task.name == entry["task"]
