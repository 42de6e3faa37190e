"""Live updates for the merchant console: one group per merchant, joined by signed-in staff only."""

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from apps.common.live import ensure_relay


def merchant_group(merchant_id: int) -> str:
    return f"console.merchant.{merchant_id}"


class ConsoleConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        user = self.scope.get("user")
        merchant_id = getattr(user, "merchant_id", None) if user is not None and user.is_authenticated else None
        if merchant_id is None:
            await self.close(code=4401)
            return
        self.group = merchant_group(merchant_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await ensure_relay()  # without Redis: relay events raised in other processes (apps.common.live)

    async def disconnect(self, code):
        if getattr(self, "group", None):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def console_event(self, event):
        """Relay an event sent to the merchant's group (`type: console.event`) to the browser."""
        await self.send_json(event["payload"])
