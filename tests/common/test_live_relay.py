"""The embedded setup's live path: an event published from another process (the Celery worker)
reaches a browser's WebSocket through the database relay of the process that serves WebSockets."""

from __future__ import annotations

import asyncio
import threading

import pytest
from asgiref.sync import sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.db import connection, connections

from apps.common import live
from apps.common.models import LiveEvent
from refundguard.routing import websocket_urlpatterns
from tests.factories import MerchantFactory, StaffFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def database_relay(settings, in_memory_layer):
    settings.LIVE_RELAY = "database"
    settings.LIVE_RELAY_POLL_SECONDS = 0.05
    live._relay = live._Relay()
    yield
    if live._relay.task is not None:
        live._relay.task.cancel()
    live._relay = live._Relay()


def publish_from_another_thread(group: str, message: dict) -> None:
    """As the worker does: a plain synchronous call on its own database connection."""

    def work():
        try:
            live.publish(group, message)
        finally:
            connection.close()

    t = threading.Thread(target=work)
    t.start()
    t.join()


def test_event_written_elsewhere_reaches_the_socket_once():
    async def scenario():
        staff = await sync_to_async(StaffFactory)(merchant=await sync_to_async(MerchantFactory)())
        socket = WebsocketCommunicator(URLRouter(websocket_urlpatterns), "/ws/notifications/")
        socket.scope["user"] = staff
        connected, _ = await socket.connect()
        assert connected
        await asyncio.sleep(0.2)  # the relay has taken its starting point

        payload = {"type": "notification", "id": 1, "body": "hello"}
        await sync_to_async(publish_from_another_thread)(
            f"notify.user.{staff.pk}", {"type": "notify.event", "payload": payload}
        )
        assert await sync_to_async(LiveEvent.objects.count)() == 1
        received = await socket.receive_json_from(timeout=3)
        assert received == payload
        assert await socket.receive_nothing(timeout=0.3)  # relayed once, not on every poll

        await socket.disconnect()
        await sync_to_async(connections.close_all)()

    asyncio.run(scenario())


def test_with_a_shared_channel_layer_nothing_is_written(settings):
    settings.LIVE_RELAY = "channel_layer"
    live.publish("notify.user.1", {"type": "notify.event", "payload": {}})
    assert LiveEvent.objects.count() == 0
