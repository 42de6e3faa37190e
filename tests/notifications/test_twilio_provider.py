"""The Twilio provider through the real `twilio` client, its HTTP intercepted with `responses`:
what is sent, how refusals and outages are classified, and crash recovery without a second copy."""

from __future__ import annotations

import datetime as dt
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

import pytest
import requests
import responses
import time_machine
from django.conf import settings
from django.utils import timezone

from apps.notifications import services
from apps.notifications.models import Notification, SandboxMessage
from tests.factories import CustomerFactory
from tests.notifications.support import (
    CALLS_URL,
    FROM_NUMBER,
    MESSAGES_URL,
    STATUS_URL,
    FakeTwilio,
    WorkerKilled,
    by_channel,
    form,
    message_page,
    posts_to,
    twilio_error,
    write_message,
)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

S = Notification.Status


def _age_sending_rows() -> None:
    """Make every `sending` row look abandoned: last touched longer ago than the lease."""
    stale = timezone.now() - settings.NOTIFY_SENDING_LEASE - dt.timedelta(seconds=1)
    Notification.objects.filter(status=S.SENDING).update(updated_at=stale)


# --- what is sent -------------------------------------------------------------------------------


def test_sms_posts_to_from_body_and_status_callback_once(twilio_accepts, customer, notify_and_send):
    rows = notify_and_send(customer)

    assert set(rows) == {"sms", "push", "inbox"}
    posts = posts_to(twilio_accepts, MESSAGES_URL)
    assert len(posts) == 1
    assert len(twilio_accepts.calls) == 1
    sent = form(posts[0])
    sms = rows["sms"]
    assert sent == {
        "To": ["+8613800000000"],
        "From": [FROM_NUMBER],
        "Body": [sms.body],
        "StatusCallback": [f"{STATUS_URL}?n={sms.pk}"],
    }
    assert "o-1" in sms.body
    assert "https://rg.example.com/r/x/" in sms.body
    assert "CNY 99.00" in sms.body
    assert sms.status == S.SENT
    assert sms.provider == "twilio"
    assert sms.provider_id == posts[0].response.json()["sid"]
    assert sms.attempts == 1
    assert rows["push"].status == S.SENT  # handed to the channel layer; nothing reports back
    assert rows["inbox"].status == S.DELIVERED


@pytest.mark.parametrize(("locale", "language"), [("en", "en-US"), ("zh-hans", "cmn-CN")])
def test_voice_call_posts_twiml_saying_the_body_in_the_recipients_language(
    twilio_accepts, notify_and_send, locale, language
):
    customer = CustomerFactory(phone="+8613800000001", locale=locale)

    rows = notify_and_send(customer, priority="critical")

    assert set(rows) == {"sms", "voice", "inbox"}
    calls = posts_to(twilio_accepts, CALLS_URL)
    assert len(calls) == 1
    assert len(posts_to(twilio_accepts, MESSAGES_URL)) == 1
    assert len(twilio_accepts.calls) == 2
    voice = rows["voice"]
    said = f'<Say language="{language}">{escape(voice.body)}</Say>'
    assert form(calls[0]) == {
        "To": ["+8613800000001"],
        "From": [FROM_NUMBER],
        "Twiml": [f'<Response>{said}<Pause length="1"/>{said}</Response>'],
        "StatusCallback": [f"{STATUS_URL}?n={voice.pk}"],
        "StatusCallbackEvent": ["completed"],
    }
    assert voice.status == S.SENT
    assert voice.provider_id == calls[0].response.json()["sid"]
    assert voice.provider_id.startswith("CA")


def test_every_twilio_request_has_a_timeout(twilio_accepts, customer, notify_and_send):
    """A hung connection must give up well inside NOTIFY_SENDING_LEASE, or the sweep would ask
    Twilio and resend while the first worker is still waiting on the first send."""
    notify_and_send(customer)

    (post,) = posts_to(twilio_accepts, MESSAGES_URL)
    timeout = post.request.req_kwargs["timeout"]
    assert timeout is not None
    connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
    assert 0 < connect < settings.NOTIFY_SENDING_LEASE.total_seconds()
    assert 0 < read < settings.NOTIFY_SENDING_LEASE.total_seconds()


# --- refusals and outages -----------------------------------------------------------------------


@pytest.mark.parametrize(("status", "code"), [(500, 20500), (503, 20503), (429, 20429)])
def test_twilio_5xx_or_429_requeues_with_backoff_and_counts_the_attempt(
    twilio, mocked, customer, notify_and_send, status, code
):
    mocked.add(responses.POST, MESSAGES_URL, status=status, json=twilio_error(status, code, "try later"))
    fake = FakeTwilio()  # afterwards Twilio accepts (registered second: used once the error is spent)
    fake.install(mocked)
    before = timezone.now()

    rows = notify_and_send(customer)

    sms = rows["sms"]
    after = timezone.now()
    assert sms.status == S.QUEUED
    assert sms.attempts == 1
    assert str(status) in sms.last_error
    base = settings.NOTIFY_RETRY_BASE
    assert before + base <= sms.next_attempt_at <= after + base
    assert len(posts_to(mocked, MESSAGES_URL)) == 1
    # a retryable error is not a failure: nothing falls back, the other channels went out
    assert Notification.objects.count() == 3
    assert (rows["push"].status, rows["inbox"].status) == (S.SENT, S.DELIVERED)

    # not due yet: the sweep leaves it alone
    assert services.notification_dispatch_due() == 0
    assert len(mocked.calls) == 1

    with time_machine.travel(sms.next_attempt_at + dt.timedelta(seconds=1)):
        assert services.notification_dispatch_due() == 1
    sms.refresh_from_db()
    assert sms.status == S.SENT
    assert sms.attempts == 2
    assert len(fake.messages) == 1
    assert sms.provider_id == fake.messages[0]["sid"]
    assert sms.last_error == ""
    assert len(posts_to(mocked, MESSAGES_URL)) == 2
    # the retry first asked Twilio whether the failed attempt went out after all
    assert len([c for c in mocked.calls if c.request.method == "GET"]) == 1


def test_twilio_errors_past_max_attempts_fail_the_row_and_fall_back_once(twilio, mocked, customer, notify_and_send):
    mocked.add(responses.POST, MESSAGES_URL, status=500, json=twilio_error(500, 20500, "down"))
    mocked.add(responses.GET, MESSAGES_URL, json=message_page([]))  # each retry asks first: nothing there

    sms = notify_and_send(customer)["sms"]
    for _ in range(settings.NOTIFY_MAX_ATTEMPTS + 2):
        with time_machine.travel(sms.next_attempt_at + dt.timedelta(seconds=1)):
            services.notification_dispatch_due()
        sms.refresh_from_db()

    assert sms.status == S.FAILED
    assert sms.attempts == settings.NOTIFY_MAX_ATTEMPTS
    assert len(posts_to(mocked, MESSAGES_URL)) == settings.NOTIFY_MAX_ATTEMPTS
    rows = by_channel("refund:1:delayed")
    assert set(rows) == {"sms", "push", "inbox"}


def test_twilio_400_invalid_number_fails_at_once_and_push_and_inbox_exist_exactly_once(
    twilio, mocked, customer, notify_and_send
):
    mocked.add(
        responses.POST,
        MESSAGES_URL,
        status=400,
        json=twilio_error(400, 21211, "The 'To' number +8613800000000 is not a valid phone number."),
    )

    rows = notify_and_send(customer)

    sms = rows["sms"]
    assert sms.status == S.FAILED
    assert sms.attempts == 1
    assert sms.failed_at is not None
    assert "21211" in sms.last_error
    assert len(mocked.calls) == 1
    # high priority already wrote push + inbox for this cause: the fallback adds no second copy
    assert set(rows) == {"sms", "push", "inbox"}
    assert Notification.objects.count() == 3
    assert (rows["push"].status, rows["inbox"].status) == (S.SENT, S.DELIVERED)

    # later sweeps neither retry the SMS nor add rows
    services.notification_dispatch_due()
    services.notification_dispatch_due()
    assert len(mocked.calls) == 1
    assert Notification.objects.count() == 3


def test_twilio_400_on_a_critical_sms_creates_the_push_fallback_once(twilio, mocked, customer, notify_and_send):
    """Critical plans SMS + voice + inbox: a refused SMS falls back to push (new row) and the
    inbox (already there)."""
    mocked.add(responses.POST, MESSAGES_URL, status=400, json=twilio_error(400, 21211, "not a valid phone number"))
    mocked.add(responses.POST, CALLS_URL, status=201, json={"sid": "CA" + "b" * 32, "status": "queued"})

    rows = notify_and_send(customer, priority="critical")
    services.notification_dispatch_due()

    assert set(rows) == {"sms", "voice", "inbox", "push"}
    assert Notification.objects.count() == 4
    assert rows["sms"].status == S.FAILED
    assert rows["push"].fallback_of_id == rows["sms"].pk
    assert rows["push"].status == S.SENT
    assert rows["inbox"].fallback_of_id is None
    assert len(posts_to(mocked, MESSAGES_URL)) == 1
    assert len(posts_to(mocked, CALLS_URL)) == 1


def test_read_timeout_after_twilio_accepted_is_not_sent_again_on_retry(twilio, mocked, customer, notify_and_send):
    """The outcome of a timed-out send is unknown: the retry asks Twilio first (RELIABILITY G4)."""
    fake = FakeTwilio()
    fake.install(mocked)
    fake.kill = "timeout-after"

    sms = notify_and_send(customer)["sms"]
    assert sms.status == S.QUEUED
    assert sms.last_error == "twilio unreachable: ReadTimeout"
    with time_machine.travel(sms.next_attempt_at + dt.timedelta(seconds=1)):
        assert services.notification_dispatch_due() == 1
    services.notification_dispatch_due()

    sms.refresh_from_db()
    assert sms.status == S.SENT
    assert sms.attempts == 2
    assert len(fake.messages) == 1
    assert sms.provider_id == fake.messages[0]["sid"]
    assert len(posts_to(mocked, MESSAGES_URL)) == 1
    assert len([c for c in mocked.calls if c.request.method == "GET"]) == 1


def test_read_timeout_before_twilio_got_it_is_sent_once_on_retry(twilio, mocked, customer, notify_and_send):
    fake = FakeTwilio()
    fake.install(mocked)
    fake.kill = "timeout-before"

    sms = notify_and_send(customer)["sms"]
    with time_machine.travel(sms.next_attempt_at + dt.timedelta(seconds=1)):
        assert services.notification_dispatch_due() == 1

    sms.refresh_from_db()
    assert sms.status == S.SENT
    assert len(fake.messages) == 1
    assert sms.provider_id == fake.messages[0]["sid"]
    assert len(posts_to(mocked, MESSAGES_URL)) == 2


def test_transport_error_is_retryable(twilio, mocked, customer, notify_and_send):
    mocked.add(responses.POST, MESSAGES_URL, body=requests.exceptions.ConnectionError("connection reset"))

    sms = notify_and_send(customer)["sms"]

    assert sms.status == S.QUEUED
    assert sms.attempts == 1
    assert sms.last_error == "twilio unreachable: ConnectionError"
    assert sms.next_attempt_at > timezone.now()
    assert len(mocked.calls) == 1
    assert Notification.objects.count() == 3


def test_sandbox_records_a_sandbox_message_and_makes_no_http_call(sandbox, mocked, customer, notify_and_send):
    rows = notify_and_send(customer, priority="critical")

    assert len(mocked.calls) == 0
    assert SandboxMessage.objects.count() == 2
    for channel in ("sms", "voice"):
        row = rows[channel]
        recorded = SandboxMessage.objects.get(notification_id=row.pk)
        assert recorded.channel == channel
        assert recorded.to == "+8613800000000"
        assert recorded.body == row.body
        assert row.status == S.SENT
        assert row.provider == "sandbox"
        assert row.provider_id == recorded.sid


# --- crash recovery ------------------------------------------------------------------------------


def test_sms_left_sending_after_twilio_accepted_it_is_marked_sent_without_a_second_post(twilio, mocked, customer):
    fake = FakeTwilio()
    fake.install(mocked)
    write_message(customer)
    fake.kill = "after"  # Twilio accepted the SMS, then the worker died before recording it
    with pytest.raises(WorkerKilled):
        services.notification_dispatch_event(event_key="refund:1:delayed")
    assert Notification.objects.filter(status=S.SENDING).count() == 3
    assert len(fake.messages) == 1

    # within the lease nothing is touched
    services.notification_dispatch_due()
    assert Notification.objects.filter(status=S.SENDING).count() == 3

    _age_sending_rows()
    services.notification_dispatch_due()
    services.notification_dispatch_due()

    rows = by_channel("refund:1:delayed")
    sms = rows["sms"]
    assert sms.status == S.SENT
    assert sms.provider == "twilio"
    assert sms.provider_id == fake.messages[0]["sid"]
    assert len(posts_to(mocked, MESSAGES_URL)) == 1
    assert len(fake.messages) == 1
    queries = [c for c in mocked.calls if c.request.method == "GET"]
    assert len(queries) == 1
    query = parse_qs(urlsplit(queries[0].request.url).query)
    assert query["To"] == ["+8613800000000"]
    assert query["From"] == [FROM_NUMBER]
    assert "DateSent>" not in query  # a message still queued at Twilio has no DateSent yet
    assert (rows["push"].status, rows["inbox"].status) == (S.SENT, S.DELIVERED)
    assert Notification.objects.count() == 3


def test_sms_left_sending_that_never_reached_twilio_is_sent_exactly_once(twilio, mocked, customer):
    fake = FakeTwilio()
    fake.install(mocked)
    write_message(customer)
    fake.kill = "before"  # the worker died before Twilio got the request
    with pytest.raises(WorkerKilled):
        services.notification_dispatch_event(event_key="refund:1:delayed")
    assert fake.messages == []

    _age_sending_rows()
    services.notification_dispatch_due()
    services.notification_dispatch_due()

    sms = by_channel("refund:1:delayed")["sms"]
    assert len(fake.messages) == 1
    assert fake.messages[0]["body"] == sms.body
    assert sms.status == S.SENT
    assert sms.provider_id == fake.messages[0]["sid"]
    assert sms.attempts == 2
    assert len(posts_to(mocked, MESSAGES_URL)) == 2  # the one that never arrived, and the real one
    assert Notification.objects.count() == 3


def _only_the_call_due(customer) -> Notification:
    """A critical message written, its SMS and inbox rows put off: the next dispatch sends the call."""
    write_message(customer, priority="critical")
    voice = Notification.objects.get(channel="voice")
    Notification.objects.exclude(pk=voice.pk).update(next_attempt_at=timezone.now() + dt.timedelta(hours=1))
    return voice


def test_voice_left_sending_is_found_at_twilio_not_called_twice(twilio, mocked, customer):
    """A call has no content to compare, but it can be found by number and time: after an
    interrupted call the sweep asks Twilio, finds it and marks it sent instead of ringing twice."""
    fake = FakeTwilio()
    fake.install(mocked)
    voice = _only_the_call_due(customer)
    fake.kill = "after"  # Twilio accepts the call, then the worker dies
    with pytest.raises(WorkerKilled):
        services.notification_dispatch_event(event_key="refund:1:delayed")
    assert len(fake.calls) == 1

    _age_sending_rows()
    services.notification_dispatch_due()
    services.notification_dispatch_due()

    voice.refresh_from_db()
    assert len(fake.calls) == 1
    assert len(posts_to(mocked, CALLS_URL)) == 1
    assert voice.status == S.SENT
    assert voice.provider_id == fake.calls[0]["sid"]
    assert len([c for c in mocked.calls if c.request.method == "GET" and c.request.url.startswith(CALLS_URL)]) == 1


@pytest.mark.parametrize(("kill", "posts"), [("timeout-after", 1), ("timeout-before", 2)])
def test_a_timed_out_call_is_looked_up_before_the_retry(twilio, mocked, customer, kill, posts):
    """Accepted before the timeout: found at Twilio, not called again. Timed out before Twilio got
    it: not found, called once on the retry."""
    fake = FakeTwilio()
    fake.install(mocked)
    voice = _only_the_call_due(customer)
    fake.kill = kill

    services.notification_dispatch_event(event_key="refund:1:delayed")
    voice.refresh_from_db()
    assert (voice.status, voice.last_error) == (S.QUEUED, "twilio unreachable: ReadTimeout")
    with time_machine.travel(voice.next_attempt_at + dt.timedelta(seconds=1)):
        Notification.objects.exclude(pk=voice.pk).update(next_attempt_at=timezone.now() + dt.timedelta(hours=1))
        assert services.notification_dispatch_due() == 1

    voice.refresh_from_db()
    assert (voice.status, voice.attempts) == (S.SENT, 2)
    assert len(fake.calls) == 1
    assert voice.provider_id == fake.calls[0]["sid"]
    assert len(posts_to(mocked, CALLS_URL)) == posts


def test_a_call_recorded_by_another_page_is_not_taken_for_this_one(twilio, mocked, customer):
    """Two pages to one person: the retry of the second must not mistake the first's call for its own."""
    fake = FakeTwilio()
    fake.install(mocked)
    write_message(customer, event_key="p0:first", priority="critical")
    services.notification_dispatch_event(event_key="p0:first")
    first = Notification.objects.get(event_key="p0:first", channel="voice")
    assert first.status == S.SENT
    write_message(customer, event_key="p0:second", priority="critical")
    second = Notification.objects.get(event_key="p0:second", channel="voice")
    Notification.objects.filter(event_key="p0:second").exclude(pk=second.pk).update(
        next_attempt_at=timezone.now() + dt.timedelta(hours=1)
    )
    fake.kill = "timeout-before"
    services.notification_dispatch_event(event_key="p0:second")
    second.refresh_from_db()
    with time_machine.travel(second.next_attempt_at + dt.timedelta(seconds=1)):
        Notification.objects.exclude(pk=second.pk).filter(status=S.QUEUED).update(
            next_attempt_at=timezone.now() + dt.timedelta(hours=1)
        )
        assert services.notification_dispatch_due() == 1

    second.refresh_from_db()
    assert second.status == S.SENT
    assert second.provider_id != first.provider_id
    assert len(fake.calls) == 2
    assert {c["sid"] for c in fake.calls} == {first.provider_id, second.provider_id}
