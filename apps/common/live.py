"""Live updates to browsers, from whichever process the change happened in.

`publish(group, message)` is how services' listeners (the console's alert pusher, the notification
push provider) reach WebSocket groups. With Redis every process shares the channel layer and the
message goes straight to it. The embedded setup (`make run`, no Redis) has only in-memory layers,
one per process: a message sent from the Celery worker would reach nobody. There `publish` writes a
`LiveEvent` row instead, and the process serving WebSockets runs a relay — started by the first
socket that connects — that reads new rows in id order every `LIVE_RELAY_POLL_SECONDS` and sends
them to its own groups, then deletes rows older than a minute. README says which path each setup
uses (`LIVE_RELAY`).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from apps.common.models import LiveEvent

logger = logging.getLogger(__name__)

KEEP = timedelta(minutes=1)


def publish(group: str, message: dict) -> None:
    """Send `message` (a Channels event: {"type": ..., ...}) to `group`, from any process."""
    if settings.LIVE_RELAY == "database":
        LiveEvent.objects.create(group=group, message=message)
        return
    layer = get_channel_layer()
    if layer is not None:
        async_to_sync(layer.group_send)(group, message)


class _Relay:
    def __init__(self) -> None:
        self.task: asyncio.Task | None = None
        self.cursor: int | None = None

    def _fetch(self) -> list[tuple[int, str, dict]]:
        close_old_connections()
        try:
            if self.cursor is None:
                # Start a few seconds back (a page rendered just before its socket connected has not
                # missed them), not from the beginning (older events were for pages gone by now).
                since = timezone.now() - timedelta(seconds=5)
                last = LiveEvent.objects.filter(created_at__lt=since).order_by("-id").values_list("id", flat=True)
                self.cursor = last.first() or 0
            rows = list(
                LiveEvent.objects.filter(id__gt=self.cursor).order_by("id").values_list("id", "group", "message")[:500]
            )
            if rows:
                self.cursor = rows[-1][0]
            LiveEvent.objects.filter(created_at__lt=timezone.now() - KEEP).delete()
            return rows
        finally:
            close_old_connections()

    async def run(self) -> None:
        layer = get_channel_layer()
        while True:
            try:
                for _, group, message in await sync_to_async(self._fetch, thread_sensitive=False)():
                    await layer.group_send(group, message)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("live relay: could not relay events; retrying")
            await asyncio.sleep(settings.LIVE_RELAY_POLL_SECONDS)

    def ensure_started(self) -> None:
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self.run())


_relay = _Relay()


async def ensure_relay() -> None:
    """Called by WebSocket consumers on connect: in the database-relay setup, make sure this
    process relays live events to its groups."""
    if settings.LIVE_RELAY == "database":
        _relay.ensure_started()
