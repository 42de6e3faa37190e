"""Live notifications over WebSocket: what `providers._push` sends to a recipient's group reaches
the pages they have open.

    /ws/r/<token>/         a customer, authenticated by their refund's progress token; joins
                           `notify.customer.<customer_id>` and relays only messages about that
                           refund (close 4404 for a tampered or expired link)
    /ws/r/w/<token>/       the same for a withdrawal's progress token
    /ws/notifications/     signed-in staff; joins `notify.user.<user_id>` (close 4401 otherwise)

Read-only: the socket only relays; marking read goes through HTTP. A push message relayed to an
open page is recorded as delivered (the server saw the send succeed; the browser writes nothing).
"""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from apps.common.live import ensure_relay
from apps.notifications import services
from apps.notifications.providers import customer_group, user_group
from apps.payouts.services import withdrawal_get_by_progress_token
from apps.refunds.services import refund_get_by_progress_token

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404


@database_sync_to_async
def _subject_for(kind: str, token: str) -> tuple[int, dict] | None:
    """(customer id, subject) a progress link shows: one refund or one withdrawal."""
    if kind == "withdrawal":
        withdrawal = withdrawal_get_by_progress_token(token)
        return (withdrawal.customer_id, {"type": "withdrawal", "id": withdrawal.pk}) if withdrawal else None
    refund = refund_get_by_progress_token(token)
    return (refund.customer_id, {"type": "refund", "id": refund.pk}) if refund is not None else None


@database_sync_to_async
def _shown(notification_id: int) -> None:
    services.notification_mark_shown(notification_id=notification_id)


class NotificationConsumer(AsyncJsonWebsocketConsumer):
    group: str | None = None
    # A progress link shows one refund or withdrawal: messages about anything else of the customer
    # stay away.
    only_subject: dict | None = None

    async def connect(self):
        kwargs = self.scope.get("url_route", {}).get("kwargs", {})
        token = kwargs.get("token")
        if token is not None:
            found = await _subject_for(kwargs.get("kind", "refund"), token)
            if found is None:
                await self.close(code=CLOSE_NOT_FOUND)
                return
            customer_id, self.only_subject = found
            self.group = customer_group(customer_id)
        else:
            user = self.scope.get("user")
            if user is None or not user.is_authenticated:
                await self.close(code=CLOSE_UNAUTHENTICATED)
                return
            self.group = user_group(user.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await ensure_relay()
        await self.accept()

    async def disconnect(self, code):
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content, **kwargs):
        """Nothing is accepted from the browser."""

    async def notify_event(self, event):
        """Relay a message sent to the recipient's group (`type: notify.event`) to the browser."""
        payload = event["payload"]
        if self.only_subject is not None and payload.get("subject") != self.only_subject:
            return
        await self.send_json(payload)
        if payload.get("event") == "push" and payload.get("id"):
            await _shown(payload["id"])
