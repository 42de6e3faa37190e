"""Where a notification leaves RefundGuard: one interface, one provider per channel.

- `sms`, `voice`: Twilio through the official client when `TWILIO_ACCOUNT_SID`/`TWILIO_AUTH_TOKEN`/
  `TWILIO_FROM_NUMBER` are set; otherwise the sandbox provider, which records the message in
  `SandboxMessage` and sends nothing.
- `email`: Django's email backend (console in the embedded setup).
- `push`, `inbox`: the inbox is the `Notification` row itself; both are pushed live over Django
  Channels to the recipient's group (the customer's progress page, the staff console).

Providers do I/O only; they never touch a `Notification`'s status (apps.notifications.services does).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from xml.sax.saxutils import escape

from django.conf import settings
from django.core.mail import EmailMessage
from django.urls import reverse

from apps.common.live import publish
from apps.notifications.models import Channel, Notification, SandboxMessage

logger = logging.getLogger(__name__)


class ProviderError(Exception):
    """The provider refused or could not be reached. `retryable`: try again later (network, 5xx,
    429); otherwise the message cannot be sent this way (bad number, unsubscribed)."""

    def __init__(self, message: str, *, retryable: bool, code: str = "") -> None:
        super().__init__(message)
        self.retryable = retryable
        self.code = code


@dataclass(frozen=True, slots=True)
class SendResult:
    provider: str
    provider_id: str = ""
    # True when handing over is delivery (the inbox row exists; nothing reports back later).
    delivered: bool = False
    # True when a status callback will follow (Twilio).
    reports_back: bool = False


def customer_group(customer_id: int) -> str:
    """The Channels group a customer's open progress pages join (apps.notifications.consumers)."""
    return f"notify.customer.{customer_id}"


def user_group(user_id: int) -> str:
    """The Channels group a staff member's open console pages join."""
    return f"notify.user.{user_id}"


def recipient_group(notification: Notification) -> str:
    if notification.customer_id:
        return customer_group(notification.customer_id)
    return user_group(notification.user_id)


def status_callback_url(notification: Notification) -> str:
    """Where Twilio reports on this message. The URL names the row: a report can arrive before the
    dispatch has recorded the sid Twilio answered with (a batch records its results after its last
    send), and Twilio does not repeat a report it could not deliver. Twilio signs the whole URL,
    so the row named cannot be changed by a caller."""
    path = reverse("notifications:twilio-status")
    return f"{settings.PUBLIC_BASE_URL.rstrip('/')}{path}?n={notification.pk}"


class Provider:
    name = ""
    # Whether `find_sent` can tell if an interrupted send reached the provider.
    can_query = False

    def send(self, notification: Notification) -> SendResult:
        raise NotImplementedError

    def find_sent(self, notification: Notification) -> str | None:
        """The provider's id for this notification if it was handed over already, else None."""
        return None


class SandboxProvider(Provider):
    """SMS and voice without credentials: recorded, not sent (`make run`, tests, demos)."""

    name = "sandbox"
    can_query = True

    def send(self, notification: Notification) -> SendResult:
        prefix = "CA" if notification.channel == Channel.VOICE else "SM"
        sid = prefix + uuid.uuid4().hex
        SandboxMessage.objects.create(
            sid=sid,
            channel=notification.channel,
            to=notification.address,
            body=notification.body,
            notification_id=notification.pk,
        )
        return SendResult(provider=self.name, provider_id=sid)

    def find_sent(self, notification: Notification) -> str | None:
        found = SandboxMessage.objects.filter(notification_id=notification.pk).values_list("sid", flat=True).first()
        return found


_VOICE_LANGUAGE = {"zh-hans": "cmn-CN", "en": "en-US"}


def voice_twiml(notification: Notification) -> str:
    """What the callee hears: the message read twice (a page is easy to miss the first time)."""
    language = _VOICE_LANGUAGE.get(notification.locale, "en-US")
    said = f'<Say language="{language}">{escape(notification.body)}</Say>'
    return f'<Response>{said}<Pause length="1"/>{said}</Response>'


# Seconds a Twilio request may take. The client's default is no timeout: a hung connection would
# outlive NOTIFY_SENDING_LEASE and the sweep would look the message up and send it again while the
# first worker still waits. Well below the lease (120 s).
TWILIO_TIMEOUT_SECONDS = 15


class TwilioProvider(Provider):
    """SMS and voice through Twilio's REST API (the official `twilio` client)."""

    name = "twilio"

    def __init__(self, channel: str = Channel.SMS) -> None:
        from twilio.http.http_client import TwilioHttpClient
        from twilio.rest import Client

        self.client = Client(
            settings.TWILIO_ACCOUNT_SID,
            settings.TWILIO_AUTH_TOKEN,
            http_client=TwilioHttpClient(timeout=TWILIO_TIMEOUT_SECONDS),
        )
        self.from_number = settings.TWILIO_FROM_NUMBER
        # An interrupted send (a timeout, a 5xx, a worker that died) is looked up before it is
        # repeated, SMS by number and body, a call by number and time (`find_sent`).
        self.can_query = channel in (Channel.SMS, Channel.VOICE)

    def send(self, notification: Notification) -> SendResult:
        from twilio.base.exceptions import TwilioException, TwilioRestException

        if notification.attempts > 1 and self.can_query:
            # An earlier attempt may have reached Twilio before it failed (a read timeout, a 5xx
            # after accepting): ask before sending a second copy.
            sid = self.find_sent(notification)
            if sid:
                return SendResult(provider=self.name, provider_id=sid, reports_back=True)
        try:
            if notification.channel == Channel.VOICE:
                resource = self.client.calls.create(
                    to=notification.address,
                    from_=self.from_number,
                    twiml=voice_twiml(notification),
                    status_callback=status_callback_url(notification),
                    status_callback_event=["completed"],
                )
            else:
                resource = self.client.messages.create(
                    to=notification.address,
                    from_=self.from_number,
                    body=notification.body,
                    status_callback=status_callback_url(notification),
                )
        except TwilioRestException as exc:
            retryable = exc.status == 429 or exc.status >= 500
            raise ProviderError(
                f"twilio {exc.status} {exc.code}: {exc.msg}", retryable=retryable, code=str(exc.code)
            ) from exc
        except (TwilioException, OSError) as exc:  # transport errors: requests' exceptions are OSErrors
            raise ProviderError(f"twilio unreachable: {type(exc).__name__}", retryable=True) from exc
        return SendResult(provider=self.name, provider_id=resource.sid, reports_back=True)

    def find_sent(self, notification: Notification) -> str | None:
        """Twilio has no idempotency key: look among the latest messages (or calls) to the same
        number for one created since this notification was written. A message must have the same
        body; a call has no content to compare, so it is the earliest such call whose sid no other
        notification has recorded (two pages to one person within the same seconds could be taken
        for each other: then one is marked sent instead of ringing again). (`DateSent` stays empty
        while a message waits in Twilio's queue, so the lists are not filtered by it.)"""
        if notification.channel not in (Channel.SMS, Channel.VOICE):
            return None
        since = notification.created_at.replace(microsecond=0)
        listed = self.client.calls if notification.channel == Channel.VOICE else self.client.messages
        try:
            recent = [
                item
                for item in listed.list(to=notification.address, from_=self.from_number, limit=50)
                if item.date_created is None or item.date_created >= since
            ]
        except Exception:
            logger.exception("notifications: cannot query Twilio for notification %s", notification.pk)
            raise ProviderError("twilio query failed", retryable=True) from None
        if notification.channel == Channel.SMS:
            return next((m.sid for m in recent if m.body == notification.body), None)
        taken = set(
            Notification.objects.filter(provider=self.name, provider_id__in=[c.sid for c in recent])
            .exclude(pk=notification.pk)
            .values_list("provider_id", flat=True)
        )
        # Twilio lists newest first.
        return next((c.sid for c in reversed(recent) if c.sid not in taken), None)


class EmailProvider(Provider):
    name = "email"

    def send(self, notification: Notification) -> SendResult:
        message_id = f"<notification-{notification.pk}@{settings.NOTIFY_EMAIL_DOMAIN}>"
        body = notification.body if not notification.link else f"{notification.body}\n\n{notification.link}"
        email = EmailMessage(
            subject=notification.title or notification.body[:80],
            body=body,
            to=[notification.address],
            headers={"Message-ID": message_id},
        )
        try:
            email.send(fail_silently=False)
        except OSError as exc:  # smtplib errors are OSErrors
            raise ProviderError(f"email: {type(exc).__name__}", retryable=True) from exc
        return SendResult(provider=self.name, provider_id=message_id)


def _push(notification: Notification, event: str) -> None:
    payload = {
        "type": "notification",
        "event": event,
        "id": notification.pk,
        "channel": notification.channel,
        "priority": notification.priority,
        "title": notification.title,
        "body": notification.body,
        "link": notification.link,
        "reference": notification.reference,
        "subject": {"type": notification.subject_type, "id": notification.subject_id},
        "created_at": notification.created_at.isoformat(),
    }
    try:
        publish(recipient_group(notification), {"type": "notify.event", "payload": payload})
    except Exception as exc:
        raise ProviderError(f"channel layer: {type(exc).__name__}", retryable=True) from exc


class PushProvider(Provider):
    name = "channels"

    def send(self, notification: Notification) -> SendResult:
        _push(notification, "push")
        return SendResult(provider=self.name)


class InboxProvider(Provider):
    """The row is the inbox message; handing over means telling open pages a new one is there."""

    name = "inbox"

    def send(self, notification: Notification) -> SendResult:
        try:
            _push(notification, "inbox")
        except ProviderError:
            logger.warning("notifications: inbox %s stored but not pushed live", notification.pk)
        return SendResult(provider=self.name, delivered=True)


def twilio_configured() -> bool:
    return bool(settings.TWILIO_ACCOUNT_SID and settings.TWILIO_AUTH_TOKEN and settings.TWILIO_FROM_NUMBER)


def provider_for(channel: str) -> Provider:
    if channel in (Channel.SMS, Channel.VOICE):
        return TwilioProvider(channel) if twilio_configured() else SandboxProvider()
    if channel == Channel.EMAIL:
        return EmailProvider()
    if channel == Channel.PUSH:
        return PushProvider()
    return InboxProvider()
