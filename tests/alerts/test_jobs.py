"""Periodic jobs: what each raises, escalation timing, and that running a job twice in one window
(two beats) takes effect once."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.utils import timezone

from apps.alerts import jobs, tasks
from apps.alerts.models import Alert, AlertDelivery, AlertEvent
from apps.alerts.services import alert_ack, alert_raise
from apps.common.models import PeriodicRun
from apps.common.periodic import window_start
from apps.orders.models import Product
from apps.refunds.models import Refund
from tests.alerts.conftest import make_payout, make_refund, rows
from tests.factories import OrderFactory, ProductFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

T0 = dt.datetime(2026, 11, 27, 10, 0, 30, tzinfo=dt.UTC)


def p0(key="channel:sandbox:down"):
    return alert_raise(
        tier="P0",
        kind="channel_down",
        dedup_key=key,
        subject_type="channel",
        subject_id="sandbox",
        channel="sandbox",
        summary="down",
    )


def test_sla_watch_raises_not_arrived_once_for_refunds_and_payouts_even_if_beat_fires_twice(merchant):
    with time_machine.travel(T0, tick=False):
        late = make_refund(merchant, status="processing", submitted_at=T0 - dt.timedelta(hours=25))
        make_refund(merchant, status="processing", submitted_at=T0 - dt.timedelta(hours=23))
        payout = make_payout(merchant, status="submitted", submitted_at=T0 - dt.timedelta(hours=30))

        tasks.alert_sla_watch_task()
        after_first = rows()
        tasks.alert_sla_watch_task()

        assert rows() == after_first
        assert PeriodicRun.objects.filter(job="alerts.sla_watch").count() == 1
        refund_alert = Alert.objects.get(kind="refund_not_arrived")
        assert (refund_alert.tier, refund_alert.subject_id, refund_alert.occurrence_count) == ("P1", str(late.pk), 1)
        assert refund_alert.detail["hours"] == 25
        assert Alert.objects.get(kind="payout_not_arrived").subject_id == str(payout.pk)

    # The next window finds the alert live and raises nothing new.
    with time_machine.travel(T0 + dt.timedelta(minutes=10), tick=False):
        tasks.alert_sla_watch_task()
        assert PeriodicRun.objects.filter(job="alerts.sla_watch").count() == 2
        assert Alert.objects.get(kind="refund_not_arrived").occurrence_count == 1


def test_auto_resolve_closes_not_arrived_alerts_of_refunds_that_arrived(merchant):
    with time_machine.travel(T0, tick=False):
        refund = make_refund(merchant, status="processing", submitted_at=T0 - dt.timedelta(hours=25))
        tasks.alert_sla_watch_task()
        Refund.objects.filter(pk=refund.pk).update(status="succeeded")  # arrived; its signal was lost

        tasks.alert_auto_resolve_due_task()
        tasks.alert_auto_resolve_due_task()

    alert = Alert.objects.get(kind="refund_not_arrived")
    assert alert.status == "resolved"
    assert alert.events.filter(code="resolved").count() == 1
    assert PeriodicRun.objects.filter(job="alerts.auto_resolve").count() == 1


def test_deadline_watch_warns_card_refunds_from_day_five(merchant):
    with time_machine.travel(T0, tick=False):
        due = make_refund(merchant, status="processing", created_at=T0 - dt.timedelta(days=5, minutes=1))
        make_refund(merchant, status="processing", created_at=T0 - dt.timedelta(days=4))
        make_refund(merchant, status="processing", created_at=T0 - dt.timedelta(days=6), payment_method="wallet")
        make_refund(merchant, status="succeeded", created_at=T0 - dt.timedelta(days=6))

        tasks.alert_deadline_watch_task()
        tasks.alert_deadline_watch_task()

    alert = Alert.objects.get()
    assert (alert.kind, alert.tier, alert.subject_id) == ("refund_deadline_near", "P1", str(due.pk))
    assert alert.detail["deadline_at"] == (due.created_at + dt.timedelta(days=7)).isoformat()
    assert alert.detail["is_overdue"] is False
    assert PeriodicRun.objects.filter(job="alerts.deadline_watch").count() == 1


def test_spike_detector_flags_a_product_kind_refunded_right_after_payment(merchant, settings):
    settings.ALERT_SPIKE_MIN_COUNT = 5
    settings.ALERT_SPIKE_FACTOR = 3.0
    course = ProductFactory(merchant=merchant, kind=Product.Kind.COURSE)
    with time_machine.travel(T0, tick=False):
        for i in range(6):  # today, within minutes of payment
            order = OrderFactory(merchant=merchant, product=course, paid_at=T0 - dt.timedelta(minutes=10 + i))
            Refund.objects.create(
                merchant=merchant,
                order=order,
                customer=order.customer,
                amount=100,
                currency="CNY",
                reason="mistake",
                created_at=T0 - dt.timedelta(minutes=i),
            )
        # baseline: one quick refund a day ago
        order = OrderFactory(merchant=merchant, product=course, paid_at=T0 - dt.timedelta(days=1, minutes=5))
        Refund.objects.create(
            merchant=merchant,
            order=order,
            customer=order.customer,
            amount=100,
            currency="CNY",
            reason="mistake",
            created_at=T0 - dt.timedelta(days=1),
        )

        tasks.alert_spike_detect_task()
        tasks.alert_spike_detect_task()

    alert = Alert.objects.get()
    assert (alert.kind, alert.tier, alert.subject_id) == ("refund_spike", "P1", "course")
    assert alert.detail["count"] == 6
    assert alert.detail["baseline_daily_mean"] == round(1 / 7, 2)
    assert PeriodicRun.objects.filter(job="alerts.spike_detect").count() == 1


def test_spike_detector_is_quiet_under_the_minimum(merchant):
    with time_machine.travel(T0, tick=False):
        order = OrderFactory(merchant=merchant, paid_at=T0 - dt.timedelta(minutes=3))
        Refund.objects.create(
            merchant=merchant,
            order=order,
            customer=order.customer,
            amount=100,
            currency="CNY",
            reason="mistake",
            created_at=T0,
        )
        tasks.alert_spike_detect_task()
    assert Alert.objects.count() == 0


def test_unacked_p0_is_repaged_to_the_next_oncall_after_the_interval(db, settings):
    settings.ALERT_P0_REPAGE_AFTER = dt.timedelta(minutes=10)
    with time_machine.travel(T0, tick=False):
        alert = p0()
    assert list(alert.deliveries.filter(channel="sms").values_list("target", flat=True)) == ["oncall-primary"]

    with time_machine.travel(T0 + dt.timedelta(minutes=9), tick=False):
        tasks.alert_escalate_due_task()
    alert.refresh_from_db()
    assert alert.escalation_level == 0

    with time_machine.travel(T0 + dt.timedelta(minutes=10, seconds=5), tick=False):
        tasks.alert_escalate_due_task()
        tasks.alert_escalate_due_task()  # a second beat in the same window
        jobs.escalate_due(timezone.now())  # even bypassing the window guard: paged too recently
    alert.refresh_from_db()
    assert alert.escalation_level == 1
    assert list(alert.deliveries.filter(channel="sms").values_list("target", flat=True)) == [
        "oncall-primary",
        "oncall-secondary",
    ]
    assert AlertDelivery.objects.filter(alert=alert).count() == 6
    assert AlertEvent.objects.filter(alert=alert, code="escalated").count() == 1

    with time_machine.travel(T0 + dt.timedelta(minutes=21), tick=False):
        tasks.alert_escalate_due_task()
    alert.refresh_from_db()
    assert alert.escalation_level == 2
    assert alert.deliveries.filter(channel="voice").last().target == "oncall-manager"


def test_acked_p0_is_not_repaged(db):
    with time_machine.travel(T0, tick=False):
        alert = p0()
        alert_ack(alert_id=alert.pk, actor="ops")
    with time_machine.travel(T0 + dt.timedelta(hours=2), tick=False):
        tasks.alert_escalate_due_task()
    alert.refresh_from_db()
    assert alert.escalation_level == 0
    assert AlertDelivery.objects.filter(alert=alert).count() == 3


def test_p1_unresolved_too_long_becomes_p0_and_pages(merchant, settings):
    settings.ALERT_P1_UPGRADE_AFTER = dt.timedelta(hours=24)
    with time_machine.travel(T0, tick=False):
        alert = alert_raise(
            tier="P1",
            kind="refund_not_arrived",
            dedup_key="refund:1:not_arrived",
            subject_type="refund",
            subject_id=1,
            merchant=merchant,
            summary="late",
        )
    with time_machine.travel(T0 + dt.timedelta(hours=24, minutes=1), tick=False):
        tasks.alert_escalate_due_task()
        tasks.alert_escalate_due_task()
    alert.refresh_from_db()
    assert alert.tier == "P0"
    assert alert.events.filter(code="upgraded").count() == 1
    assert sorted(alert.deliveries.values_list("channel", flat=True)) == [
        "console",
        "console",
        "email",
        "in_app",
        "sms",
        "voice",
    ]


def test_window_start_floors_to_the_period():
    assert window_start(T0, 300) == dt.datetime(2026, 11, 27, 10, 0, tzinfo=dt.UTC)
    assert window_start(T0 + dt.timedelta(minutes=5), 300) == dt.datetime(2026, 11, 27, 10, 5, tzinfo=dt.UTC)
