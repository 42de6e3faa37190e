"""Shared fixtures for the notifications tests: Twilio configured against `responses` (no network),
a customer, and a helper that writes one cause's messages through `services.notify` and dispatches them."""

from __future__ import annotations

import pytest
import responses

from apps.notifications.models import Notification
from tests.factories import CustomerFactory
from tests.notifications.support import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    CALLS_URL,
    FROM_NUMBER,
    MESSAGES_URL,
    PUBLIC_BASE_URL,
    by_channel,
    twilio_created,
    write_message,
)


@pytest.fixture
def twilio(settings):
    """Twilio credentials set: SMS and voice go through the real `twilio` client."""
    settings.TWILIO_ACCOUNT_SID = ACCOUNT_SID
    settings.TWILIO_AUTH_TOKEN = AUTH_TOKEN
    settings.TWILIO_FROM_NUMBER = FROM_NUMBER
    settings.PUBLIC_BASE_URL = PUBLIC_BASE_URL
    return settings


@pytest.fixture
def sandbox(settings):
    """No Twilio credentials: the sandbox provider records instead of sending."""
    settings.TWILIO_ACCOUNT_SID = ""
    settings.TWILIO_AUTH_TOKEN = ""
    settings.TWILIO_FROM_NUMBER = ""
    settings.PUBLIC_BASE_URL = PUBLIC_BASE_URL
    return settings


@pytest.fixture
def mocked():
    """Every HTTP request made through `requests` is intercepted; an unregistered one fails."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


@pytest.fixture
def twilio_accepts(twilio, mocked):
    """Twilio answers every SMS and call create with 201 and a fresh sid."""
    mocked.add_callback(responses.POST, MESSAGES_URL, callback=twilio_created("sms"))
    mocked.add_callback(responses.POST, CALLS_URL, callback=twilio_created("call"))
    return mocked


@pytest.fixture
def customer(db):
    return CustomerFactory(phone="+8613800000000", locale="en")


@pytest.fixture
def notify_and_send(django_capture_on_commit_callbacks):
    """Write one cause's messages with `services.notify` and run the after-commit dispatch."""

    def run(recipient, *, event_key: str = "refund:1:delayed", priority: str = "high") -> dict[str, Notification]:
        with django_capture_on_commit_callbacks(execute=True):
            write_message(recipient, event_key=event_key, priority=priority)
        return by_channel(event_key)

    return run
