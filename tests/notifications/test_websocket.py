"""Live push: a customer's message reaches the progress pages of that customer only (joined with
the refund's link at /ws/r/<token>/), a staff member's reaches their console socket
(/ws/notifications/) only; a bad link or an anonymous staff socket is refused."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
import time_machine
from asgiref.sync import sync_to_async
from channels.layers import channel_layers
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.db import connections
from django.utils import timezone

from apps.notifications import services
from apps.notifications.models import Notification
from apps.refunds.models import Refund
from apps.refunds.services import refund_progress_token
from refundguard.routing import websocket_urlpatterns
from tests.factories import CustomerFactory, MerchantFactory, OrderFactory, StaffFactory

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("in_memory_layer"),
]

CONTEXT = {"amount": "¥199.00", "party": "bank", "bank": "工商银行"}


def app():
    return URLRouter(websocket_urlpatterns)


def progress_token(customer) -> str:
    order = OrderFactory(merchant=customer.merchant, customer=customer, amount=19900)
    refund = Refund.objects.create(
        merchant=customer.merchant,
        order=order,
        customer=customer,
        amount=19900,
        currency="CNY",
        reason="mistake",
        status="submitted",
    )
    token = refund_progress_token(refund)
    REFUND_OF[token] = refund.pk
    return token


# progress token → the refund it shows
REFUND_OF: dict[str, int] = {}


def notify(recipient, event_key: str, *, priority: str = "medium", refund_id: int | None = None) -> int:
    """Write the messages and dispatch them (as the after-commit task does; a second run is a no-op)."""
    written = services.notify(
        recipient=recipient,
        template_key="refund_delayed",
        priority=priority,
        event_key=event_key,
        context=CONTEXT,
        subject_type="refund" if refund_id else "",
        subject_id=refund_id,
        reference="o-1",
        link="http://x/r/t/",
    )
    services.notification_dispatch_event(event_key=event_key)
    return written


async def open_socket(path: str, user=None) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(app(), path)
    communicator.scope["user"] = user or AnonymousUser()
    connected, code = await communicator.connect()
    assert connected, code
    return communicator


async def refused_with(path: str, user=None) -> int:
    communicator = WebsocketCommunicator(app(), path)
    communicator.scope["user"] = user or AnonymousUser()
    connected, code = await communicator.connect()
    assert not connected
    return code


async def settled(read, push_status: str, timeout: float = 5.0):
    """`read()` once the push row has `push_status` (the consumer records it after relaying)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        rows = await sync_to_async(read)()
        if rows.get("push") == push_status or asyncio.get_running_loop().time() > deadline:
            return rows
        await asyncio.sleep(0.05)


async def receive_all(communicator: WebsocketCommunicator, n: int) -> list[dict]:
    return [await communicator.receive_json_from(timeout=5) for _ in range(n)]


def world():
    merchant = MerchantFactory()
    erin = CustomerFactory(merchant=merchant, external_id="erin", locale="en")
    frank = CustomerFactory(merchant=merchant, external_id="frank", locale="en")
    staff = StaffFactory(merchant=merchant)
    return erin, frank, staff, progress_token(erin), progress_token(frank)


def test_customer_message_reaches_that_customers_pages_only():
    async def scenario():
        erin, _frank, staff, erin_token, frank_token = await sync_to_async(world)()
        erin_page = await open_socket(f"/ws/r/{erin_token}/")
        erin_second_tab = await open_socket(f"/ws/r/{erin_token}/")
        frank_page = await open_socket(f"/ws/r/{frank_token}/")
        console = await open_socket("/ws/notifications/", staff)

        # medium: push + inbox
        written = await sync_to_async(notify)(erin, "refund:1:delayed", refund_id=REFUND_OF[erin_token])

        assert written == 2
        for page in (erin_page, erin_second_tab):
            messages = await receive_all(page, 2)
            assert sorted(m["event"] for m in messages) == ["inbox", "push"]
            assert sorted(m["channel"] for m in messages) == ["inbox", "push"]
            for m in messages:
                assert m["type"] == "notification"
                assert m["reference"] == "o-1"
                assert m["title"] == "Your refund is delayed"
                assert "¥199.00" in m["body"]
                assert m["link"] == "http://x/r/t/"
            assert await page.receive_nothing(timeout=0.2)
        assert await frank_page.receive_nothing(timeout=0.3)
        assert await console.receive_nothing(timeout=0.1)

        # The push reached open pages: recorded as delivered by the consumer that relayed it.
        rows = await settled(lambda: dict(Notification.objects.values_list("channel", "status")), "delivered")
        assert rows == {"push": "delivered", "inbox": "delivered"}
        push = await sync_to_async(Notification.objects.get)(channel="push")
        assert (push.provider, push.sent_at is not None, push.delivered_at is not None) == ("channels", True, True)
        again = await sync_to_async(services.notification_dispatch_event)(event_key="refund:1:delayed")
        assert again == 0
        assert await erin_page.receive_nothing(timeout=0.2)
        # A message about something else of Erin's never shows on this refund's page (one link, one object).
        assert await sync_to_async(notify)(erin, "withdrawal:7:held") == 2
        assert await erin_page.receive_nothing(timeout=0.3)

        for c in (erin_page, erin_second_tab, frank_page, console):
            await c.disconnect()
        await sync_to_async(connections.close_all)()

    asyncio.run(scenario())


def test_staff_message_reaches_that_staff_members_socket_only():
    async def scenario():
        _erin, _frank, staff, erin_token, _ = await sync_to_async(world)()
        colleague = await sync_to_async(StaffFactory)(merchant=staff.merchant)
        mine = await open_socket("/ws/notifications/", staff)
        theirs = await open_socket("/ws/notifications/", colleague)
        customer_page = await open_socket(f"/ws/r/{erin_token}/")

        written = await sync_to_async(notify)(staff, "alert:1:raised", priority="medium")

        assert written == 2
        messages = await receive_all(mine, 2)
        assert sorted(m["event"] for m in messages) == ["inbox", "push"]
        assert await theirs.receive_nothing(timeout=0.3)
        assert await customer_page.receive_nothing(timeout=0.1)

        for c in (mine, theirs, customer_page):
            await c.disconnect()
        await sync_to_async(connections.close_all)()

    asyncio.run(scenario())


def test_socket_after_disconnect_gets_nothing():
    async def scenario():
        erin, _frank, _staff, erin_token, _ = await sync_to_async(world)()
        page = await open_socket(f"/ws/r/{erin_token}/")
        await page.disconnect()
        layer = channel_layers["default"]

        await sync_to_async(notify)(erin, "refund:2:delayed")

        assert layer.groups.get(f"notify.customer.{erin.pk}", {}) == {}
        # No page was open: the push was handed over but shown to nobody.
        rows = await sync_to_async(lambda: dict(Notification.objects.values_list("channel", "status")))()
        assert rows == {"push": "sent", "inbox": "delivered"}
        await sync_to_async(connections.close_all)()

    asyncio.run(scenario())


def test_bad_link_is_refused_with_4404():
    async def scenario():
        assert await refused_with("/ws/r/not-a-token/") == 4404
        assert await refused_with("/ws/r/eyJhIjoxfQ:1abc:forged/") == 4404
        await sync_to_async(connections.close_all)()

    asyncio.run(scenario())


def test_expired_link_is_refused_with_4404():
    async def scenario():
        _erin, _frank, _staff, erin_token, _ = await sync_to_async(world)()
        later = timezone.now() + settings.REFUND_LINK_MAX_AGE + dt.timedelta(minutes=1)
        with time_machine.travel(later):
            code = await refused_with(f"/ws/r/{erin_token}/")
        assert code == 4404
        await sync_to_async(connections.close_all)()

    asyncio.run(scenario())


def test_anonymous_staff_socket_is_refused_with_4401():
    async def scenario():
        assert await refused_with("/ws/notifications/") == 4401
        await sync_to_async(connections.close_all)()

    asyncio.run(scenario())


def withdrawal_link(customer) -> tuple[str, int]:
    from apps.payouts.models import Disbursement
    from apps.payouts.services import withdrawal_progress_url
    from tests.factories import BankAccountFactory

    d = Disbursement.objects.create(
        kind="withdrawal",
        merchant=customer.merchant,
        customer=customer,
        amount=10000,
        currency="CNY",
        source_amount=10000,
        source_currency="CNY",
        destination_account=BankAccountFactory(customer=customer),
        destination_country="CN",
        destination_currency="CNY",
        created_by="test",
    )
    return withdrawal_progress_url(d).rstrip("/").rsplit("/", 1)[-1], d.pk


def test_withdrawal_link_gets_that_withdrawals_messages_only():
    async def scenario():
        erin, _frank, _staff, _erin_token, _ = await sync_to_async(world)()
        token, withdrawal_id = await sync_to_async(withdrawal_link)(erin)
        page = await open_socket(f"/ws/r/w/{token}/")

        def about(event_key: str, subject_type: str, subject_id: int) -> int:
            written = services.notify(
                recipient=erin,
                template_key="withdrawal_delayed",
                priority="medium",
                event_key=event_key,
                context=CONTEXT,
                subject_type=subject_type,
                subject_id=subject_id,
                reference=f"W{subject_id:08d}",
                link="http://x/r/w/t/",
            )
            services.notification_dispatch_event(event_key=event_key)
            return written

        assert await sync_to_async(about)("withdrawal:delayed", "withdrawal", withdrawal_id) == 2
        messages = await receive_all(page, 2)
        assert {m["subject"]["type"] for m in messages} == {"withdrawal"}
        assert {m["reference"] for m in messages} == {f"W{withdrawal_id:08d}"}
        # Erin's refund (another subject) stays off this page.
        assert await sync_to_async(about)("refund:delayed", "refund", 4242) == 2
        assert await page.receive_nothing(timeout=0.3)
        assert await refused_with(f"/ws/r/w/{token}x/") == 4404

        await page.disconnect()
        await sync_to_async(connections.close_all)()

    asyncio.run(scenario())
