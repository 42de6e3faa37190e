"""The outbox: a message exists exactly when its cause committed, and goes out once — through lost
tasks, workers dying mid-send and dispatchers racing each other."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.db import connection, transaction
from django.utils import timezone

from apps.notifications import services
from apps.notifications.models import Channel, Notification, Priority, SandboxMessage
from apps.notifications.providers import SandboxProvider
from tests.factories import CustomerFactory

pytestmark = [pytest.mark.postgres]

S = Notification.Status


def _notify(customer, key: str = "refund_delayed", *, priority: str = Priority.HIGH) -> int:
    return services.notify(
        recipient=customer,
        template_key="refund_delayed",
        priority=priority,
        event_key=key,
        context={"amount": "¥199.00", "party": "bank", "bank": "工商银行", "eta": "11月28日 10:00"},
        reference="o-1001",
        link="http://testserver/r/abc/",
    )


@pytest.mark.django_db
def test_rolled_back_cause_leaves_no_message(merchant):
    customer = CustomerFactory(merchant=merchant)
    written = []

    def change_that_fails():
        with transaction.atomic():
            written.append(_notify(customer))
            raise RuntimeError("the refund transition failed")

    with pytest.raises(RuntimeError):
        change_that_fails()
    assert written == [3]
    assert Notification.objects.count() == 0


@pytest.mark.django_db
def test_high_priority_writes_sms_push_and_inbox_once_per_cause(merchant):
    customer = CustomerFactory(merchant=merchant)
    assert _notify(customer, "cause-1") == 3
    assert _notify(customer, "cause-1") == 0  # the same cause reported again
    rows = Notification.objects.filter(event_key="cause-1")
    assert sorted(rows.values_list("channel", flat=True)) == ["inbox", "push", "sms"]
    assert set(rows.values_list("status", flat=True)) == {S.QUEUED}
    assert rows.get(channel=Channel.SMS).address == customer.phone


@pytest.mark.django_db
def test_lost_dispatch_task_is_covered_by_the_sweep_and_sends_once(merchant, django_capture_on_commit_callbacks):
    """The worker (or broker) dies between the commit and the send: the after-commit task never runs."""
    customers = [CustomerFactory(merchant=merchant) for _ in range(4)]
    with django_capture_on_commit_callbacks(execute=False) as lost:
        for i, customer in enumerate(customers):
            _notify(customer, f"cause-{i}")
    assert len(lost) == 4
    assert SandboxMessage.objects.count() == 0

    assert services.notification_dispatch_due() == 12
    assert services.notification_dispatch_due() == 0
    # The task arriving late after all (redelivered) finds nothing left to send.
    for callback in lost:
        callback()
    assert SandboxMessage.objects.count() == 4  # one SMS per customer
    assert Notification.objects.filter(channel=Channel.SMS, status=S.SENT).count() == 4
    assert Notification.objects.filter(channel=Channel.INBOX, status=S.DELIVERED).count() == 4
    assert Notification.objects.filter(channel=Channel.PUSH, status=S.SENT).count() == 4
    assert set(Notification.objects.values_list("attempts", flat=True)) == {1}


@pytest.mark.django_db
def test_worker_dying_after_the_provider_took_the_sms_never_sends_it_twice(merchant):
    customer = CustomerFactory(merchant=merchant)
    _notify(customer, "cause-crash")
    sms = Notification.objects.get(channel=Channel.SMS)
    [claimed] = services._claim(Notification.objects.filter(pk=sms.pk), limit=1)
    SandboxProvider().send(claimed)  # handed over … and the worker is killed before recording it
    assert Notification.objects.get(pk=sms.pk).status == S.SENDING

    assert services.notification_dispatch_due() == 2  # push + inbox; the SMS is within its lease
    with time_machine.travel(timezone.now() + timedelta(minutes=5)):
        services.notification_dispatch_due()
    sms.refresh_from_db()
    assert sms.status == S.SENT
    assert sms.provider_id == SandboxMessage.objects.get().sid
    assert SandboxMessage.objects.count() == 1
    assert sms.attempts == 1


@pytest.mark.django_db
def test_worker_dying_before_the_handover_sends_once_after_the_lease(merchant):
    customer = CustomerFactory(merchant=merchant)
    _notify(customer, "cause-early-crash")
    sms = Notification.objects.get(channel=Channel.SMS)
    services._claim(Notification.objects.filter(pk=sms.pk), limit=1)  # claimed, then killed

    with time_machine.travel(timezone.now() + timedelta(minutes=5)):
        services.notification_dispatch_due()
        services.notification_dispatch_due()
    sms.refresh_from_db()
    assert sms.status == S.SENT
    assert SandboxMessage.objects.filter(notification_id=sms.pk).count() == 1
    assert sms.attempts == 2


@pytest.mark.django_db
def test_interrupted_email_is_not_repeated_and_the_inbox_carries_the_message(merchant, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    customer = CustomerFactory(merchant=merchant)
    _notify(customer, "cause-mail", priority=Priority.LOW)
    email = Notification.objects.get(channel=Channel.EMAIL)
    services._claim(Notification.objects.filter(pk=email.pk), limit=1)  # claimed; outcome unknown

    with time_machine.travel(timezone.now() + timedelta(minutes=5)):
        services.notification_dispatch_due()
    email.refresh_from_db()
    assert email.status == S.FAILED
    assert "not repeated" in email.last_error
    assert len(mail.outbox) == 0
    assert Notification.objects.filter(event_key="cause-mail", channel=Channel.INBOX).count() == 1


@pytest.mark.django_db
def test_email_is_sent_through_djangos_backend_with_the_link(merchant, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    customer = CustomerFactory(merchant=merchant, locale="en")
    _notify(customer, "cause-mail-ok", priority=Priority.LOW)
    assert services.notification_dispatch_due() == 2
    [message] = mail.outbox
    assert message.to == [customer.email]
    assert message.subject == "Your refund is delayed"
    assert "o-1001" in message.body
    assert "http://testserver/r/abc/" in message.body
    assert Notification.objects.get(channel=Channel.EMAIL).status == S.SENT


@pytest.mark.django_db(transaction=True)
def test_racing_dispatchers_send_each_message_exactly_once(merchant):
    customers = [CustomerFactory(merchant=merchant) for _ in range(20)]
    # Written due in 30 s, so the eager after-commit tasks skip them and the two sweeps race.
    for i, customer in enumerate(customers):
        with transaction.atomic():
            services.notify(
                recipient=customer,
                template_key="refund_delayed",
                priority=Priority.HIGH,
                event_key=f"race-{i}",
                context={"amount": "¥1.00", "party": "bank", "bank": "ICBC"},
                reference=f"o-{i}",
                link="http://testserver/r/x/",
                now=timezone.now() + timedelta(seconds=30),
            )
    assert Notification.objects.filter(status=S.QUEUED).count() == 60
    counts: list[int] = []
    barrier = threading.Barrier(2)

    def sweep():
        try:
            barrier.wait()
            with time_machine.travel(timezone.now() + timedelta(minutes=1), tick=True):
                counts.append(services.notification_dispatch_due(limit=500))
        finally:
            connection.close()

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(counts) == 60
    assert SandboxMessage.objects.count() == 20
    assert SandboxMessage.objects.values("notification_id").distinct().count() == 20
    assert Notification.objects.filter(status=S.QUEUED).count() == 0
