"""Live push: an alert raised for a merchant reaches its signed-in staff over the console WebSocket,
and never another merchant's."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections

from apps.alerts.services import alert_raise
from apps.console.consumers import ConsoleConsumer
from tests.factories import MerchantFactory, StaffFactory

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("in_memory_layer"),
]


async def connect(user) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(ConsoleConsumer.as_asgi(), "/ws/console/")
    communicator.scope["user"] = user
    connected, _ = await communicator.connect()
    assert connected
    return communicator


def test_alert_reaches_its_merchants_console_only():
    async def scenario():
        merchant, other = await sync_to_async(MerchantFactory)(), await sync_to_async(MerchantFactory)()
        staff = await sync_to_async(StaffFactory)(merchant=merchant)
        outsider = await sync_to_async(StaffFactory)(merchant=other)
        mine, theirs = await connect(staff), await connect(outsider)

        alert = await sync_to_async(alert_raise)(
            tier="P0",
            kind="refund_large_failed",
            dedup_key="refund:1:large_failed",
            subject_type="refund",
            subject_id=1,
            merchant=merchant,
            summary="Large refund 1 failed",
        )

        message = await mine.receive_json_from(timeout=5)
        assert message == {
            "type": "alert",
            "action": "raised",
            "id": alert.pk,
            "severity": "P0",
            "kind": "refund_large_failed",
            "status": "open",
            "summary": "Large refund 1 failed",
            "subject": {"type": "refund", "id": "1"},
            "occurrence_count": 1,
        }
        assert await theirs.receive_nothing(timeout=0.3)
        await mine.disconnect()
        await theirs.disconnect()
        await sync_to_async(connections.close_all)()  # the worker thread's connection, before teardown

    asyncio.run(scenario())
