"""Channel choice by priority, preferences, quiet hours and the SMS rate limit with its digest."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine

from apps.notifications import services
from apps.notifications.models import Channel, Notification, Priority, SandboxMessage
from tests.factories import CustomerFactory, StaffFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

S = Notification.Status
SHANGHAI = ZoneInfo("Asia/Shanghai")


def _notify(recipient, key: str, *, priority: str = Priority.HIGH, template: str = "refund_delayed") -> int:
    return services.notify(
        recipient=recipient,
        template_key=template,
        priority=priority,
        event_key=key,
        context={"amount": "¥199.00", "party": "bank", "bank": "工商银行", "summary": "channel down"},
        reference="o-77",
        link="http://testserver/r/t/",
    )


def _channels(key: str) -> list[str]:
    return sorted(Notification.objects.filter(event_key=key).values_list("channel", flat=True))


@pytest.mark.parametrize(
    ("priority", "expected"),
    [
        (Priority.HIGH, ["inbox", "push", "sms"]),
        (Priority.MEDIUM, ["inbox", "push"]),
        (Priority.LOW, ["email", "inbox"]),
    ],
)
def test_priority_picks_the_channels(merchant, priority, expected):
    customer = CustomerFactory(merchant=merchant)
    _notify(customer, f"p-{priority}", priority=priority)
    assert _channels(f"p-{priority}") == expected


def test_no_phone_means_no_sms_and_no_email_address_means_no_email(merchant):
    customer = CustomerFactory(merchant=merchant, phone="", email="")
    _notify(customer, "high", priority=Priority.HIGH)
    _notify(customer, "low", priority=Priority.LOW)
    assert _channels("high") == ["inbox", "push"]
    assert _channels("low") == ["inbox"]


def test_channels_turned_off_are_respected_but_the_inbox_stays(merchant):
    customer = CustomerFactory(merchant=merchant)
    services.preference_set(customer=customer, disabled_channels=["sms", "push", "email"])
    _notify(customer, "quiet-please", priority=Priority.HIGH)
    assert _channels("quiet-please") == ["inbox"]


def test_critical_page_ignores_preferences_and_quiet_hours(merchant):
    staff = StaffFactory(merchant=merchant, phone="+8613900000001")
    from apps.notifications.models import Preference

    Preference.objects.create(
        user=staff, disabled_channels=["sms", "voice"], quiet_start=time(0), quiet_end=time(23, 59)
    )
    _notify(staff, "p0", priority=Priority.CRITICAL, template="p0_page")
    rows = Notification.objects.filter(event_key="p0")
    assert sorted(rows.values_list("channel", flat=True)) == ["inbox", "sms", "voice"]
    assert services.notification_dispatch_due() == 3
    assert SandboxMessage.objects.filter(channel=Channel.VOICE, to="+8613900000001").count() == 1
    assert SandboxMessage.objects.filter(channel=Channel.SMS, to="+8613900000001").count() == 1


def test_quiet_hours_hold_interrupting_channels_until_morning(merchant):
    customer = CustomerFactory(merchant=merchant)
    services.preference_set(customer=customer, quiet_start=time(22), quiet_end=time(8), time_zone="Asia/Shanghai")
    night = datetime(2026, 11, 27, 23, 30, tzinfo=SHANGHAI)
    with time_machine.travel(night, tick=False):
        _notify(customer, "at-night", priority=Priority.HIGH)
        assert services.notification_dispatch_due() == 1  # only the inbox, silently
    rows = {n.channel: n for n in Notification.objects.filter(event_key="at-night")}
    morning = datetime(2026, 11, 28, 8, 0, tzinfo=SHANGHAI)
    assert rows[Channel.SMS].next_attempt_at == morning
    assert rows[Channel.PUSH].next_attempt_at == morning
    assert rows[Channel.INBOX].status == S.DELIVERED
    assert SandboxMessage.objects.count() == 0

    with time_machine.travel(morning - timedelta(minutes=1), tick=False):
        assert services.notification_dispatch_due() == 0
    with time_machine.travel(morning + timedelta(seconds=1), tick=False):
        assert services.notification_dispatch_due() == 2
    assert SandboxMessage.objects.count() == 1


def test_quiet_hours_inside_one_day_and_outside_them(merchant):
    customer = CustomerFactory(merchant=merchant)
    services.preference_set(customer=customer, quiet_start=time(12), quiet_end=time(14), time_zone="Asia/Shanghai")
    with time_machine.travel(datetime(2026, 11, 27, 15, 0, tzinfo=SHANGHAI), tick=False):
        _notify(customer, "afternoon")
        assert services.notification_dispatch_due() == 3
    with time_machine.travel(datetime(2026, 11, 27, 12, 30, tzinfo=SHANGHAI), tick=False):
        _notify(customer, "lunch")
        assert services.notification_dispatch_due() == 1
    sms = Notification.objects.get(event_key="lunch", channel=Channel.SMS)
    assert sms.next_attempt_at == datetime(2026, 11, 27, 14, 0, tzinfo=SHANGHAI)


def test_more_than_three_sms_an_hour_wait_in_one_digest(merchant, settings):
    settings.NOTIFY_SMS_PER_WINDOW = 3
    customer = CustomerFactory(merchant=merchant, locale="en")
    start = datetime(2026, 11, 27, 10, 0, tzinfo=SHANGHAI)
    for i in range(5):
        with time_machine.travel(start + timedelta(minutes=i), tick=False):
            _notify(customer, f"burst-{i}")
            services.notification_dispatch_due()
    sms = Notification.objects.filter(channel=Channel.SMS, event_key__startswith="burst-")
    assert sms.filter(status=S.SENT).count() == 3
    assert sms.filter(status=S.DIGESTED).count() == 2
    digest = Notification.objects.get(template_key="sms_digest")
    assert set(sms.filter(status=S.DIGESTED).values_list("digest_id", flat=True)) == {digest.pk}
    assert digest.next_attempt_at == start + timedelta(hours=1)
    # Every message is still in the inbox at once.
    assert Notification.objects.filter(channel=Channel.INBOX, status=S.DELIVERED).count() == 5
    assert SandboxMessage.objects.count() == 3

    with time_machine.travel(start + timedelta(minutes=59), tick=False):
        services.notification_dispatch_due()
    assert SandboxMessage.objects.count() == 3
    with time_machine.travel(start + timedelta(hours=1, seconds=1), tick=False):
        services.notification_dispatch_due()
    digest.refresh_from_db()
    assert digest.status == S.SENT
    assert SandboxMessage.objects.count() == 4
    assert "2 new refund or withdrawal updates" in SandboxMessage.objects.get(notification_id=digest.pk).body


def test_rate_limit_counts_per_recipient(merchant, settings):
    settings.NOTIFY_SMS_PER_WINDOW = 1
    first = CustomerFactory(merchant=merchant, phone="+8613800000001")
    second = CustomerFactory(merchant=merchant, phone="+8613800000002")
    _notify(first, "a-1")
    _notify(second, "b-1")
    _notify(first, "a-2")
    services.notification_dispatch_due()
    assert sorted(SandboxMessage.objects.values_list("to", flat=True)) == ["+8613800000001", "+8613800000002"]
    assert Notification.objects.get(event_key="a-2", channel=Channel.SMS).status == S.DIGESTED


def test_critical_pages_are_not_rate_limited(merchant, settings):
    settings.NOTIFY_SMS_PER_WINDOW = 1
    staff = StaffFactory(merchant=merchant, phone="+8613900000009")
    for i in range(3):
        _notify(staff, f"page-{i}", priority=Priority.CRITICAL, template="p0_page")
    services.notification_dispatch_due()
    assert SandboxMessage.objects.filter(channel=Channel.SMS).count() == 3
    assert not Notification.objects.filter(status=S.DIGESTED).exists()
