"""Dedup, grouping, silences and inhibition, through `alert_raise` and the real signals."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connection
from django.utils import timezone

from apps.alerts.models import Alert, AlertDelivery, AlertEvent, Silence
from apps.alerts.services import alert_raise, alert_resolve, silence_create, silence_expire
from apps.alerts.signals import alert_changed
from apps.common.errors import ServiceError
from apps.refunds.models import Refund
from apps.refunds.signals import refund_state_changed
from tests.alerts.conftest import make_refund, rows

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def raise_p1(merchant, key="refund:1:retry", **kw):
    defaults = {
        "tier": "P1",
        "kind": "refund_retryable_failure",
        "dedup_key": key,
        "subject_type": "refund",
        "subject_id": 1,
        "merchant": merchant,
        "summary": "retrying",
        "detail": {"n": 1},
    }
    return alert_raise(**{**defaults, **kw})


def test_raising_twice_keeps_one_row_and_counts_two(merchant):
    first = raise_p1(merchant)
    second = raise_p1(merchant, detail={"n": 2})

    assert first.pk == second.pk
    alert = Alert.objects.get()
    assert alert.occurrence_count == 2
    assert alert.last_seen_at >= alert.first_seen_at
    assert alert.detail == {"n": 2}
    assert list(alert.events.values_list("code", flat=True)) == ["raised", "repeated"]
    assert AlertDelivery.objects.count() == 3  # routed once, not per repeat


def test_after_resolve_a_new_occurrence_opens_a_new_alert(merchant):
    first = raise_p1(merchant)
    alert_resolve(alert_id=first.pk, actor="ops")

    second = raise_p1(merchant)

    assert second.pk != first.pk
    assert Alert.objects.filter(dedup_key="refund:1:retry").count() == 2
    assert Alert.objects.filter(dedup_key="refund:1:retry").exclude(status="resolved").count() == 1


def test_alert_changed_is_sent_after_commit_with_the_payload(merchant, django_capture_on_commit_callbacks):
    seen = []

    def listener(sender, **kwargs):
        kwargs.pop("signal")
        seen.append(kwargs)

    alert_changed.connect(listener, dispatch_uid="test.listener")
    try:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            alert = raise_p1(merchant)
            assert seen == []  # nothing before commit
        for callback in callbacks:
            callback()
    finally:
        alert_changed.disconnect(dispatch_uid="test.listener")
    assert {
        "alert_id": alert.pk,
        "merchant_id": merchant.pk,
        "tier": "P1",
        "kind": "refund_retryable_failure",
        "status": "open",
        "action": "raised",
    } in seen


@pytest.mark.django_db(transaction=True)
def test_concurrent_raises_of_one_key_make_one_alert(merchant):
    barrier = threading.Barrier(8)
    errors = []

    def worker():
        try:
            barrier.wait()
            raise_p1(merchant, key="refund:99:retry")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    alert = Alert.objects.get(dedup_key="refund:99:retry")
    assert alert.occurrence_count == 8
    assert AlertDelivery.objects.filter(alert=alert).count() == 3


def test_one_channel_failing_many_refunds_makes_one_group_alert(merchant, channel):
    refunds = [make_refund(merchant, status="failed", channel=channel, next_poll_at=timezone.now()) for _ in range(5)]
    for refund in refunds:
        refund_state_changed.send(
            sender=Refund,
            refund_id=refund.pk,
            merchant_id=merchant.pk,
            from_status="processing",
            to_status="failed",
            event_code="failed",
            responsible_party="bank",
        )

    group = Alert.objects.get(is_group=True)
    assert group.dedup_key == "group:channel:sandbox:refund_failures"
    assert group.detail["count"] == 5
    assert [item["subject_id"] for item in group.detail["items"]] == [str(r.pk) for r in refunds]
    assert group.children.count() == 5
    # Only the group is routed: one set of notifications for five failures.
    assert AlertDelivery.objects.filter(alert=group).count() == 3
    assert AlertDelivery.objects.exclude(alert=group).count() == 0

    alert_resolve(alert_id=group.pk, actor="ops")
    assert Alert.objects.exclude(status="resolved").count() == 0


def test_a_silenced_alert_is_stored_suppressed_and_never_routed(merchant):
    silence = silence_create(
        matchers={"kind": "refund_retryable_failure"},
        ends_at=timezone.now() + dt.timedelta(hours=1),
        actor="ops",
        merchant=merchant,
        comment="bank maintenance",
    )

    alert = raise_p1(merchant)

    assert alert.status == "suppressed"
    assert alert.suppressed_reason == f"silenced by silence #{silence.pk}"
    assert AlertDelivery.objects.count() == 0
    assert AlertEvent.objects.get(alert=alert).code == "suppressed"

    silence_expire(silence_id=silence.pk, actor="ops")
    other = raise_p1(merchant, key="refund:2:retry", subject_id=2)
    assert other.status == "open"
    assert AlertDelivery.objects.filter(alert=other).count() == 3


def test_a_merchants_silence_does_not_cover_another_merchant(merchant, other_merchant):
    silence_create(
        matchers={"kind": "refund_retryable_failure"},
        ends_at=timezone.now() + dt.timedelta(hours=1),
        actor="ops",
        merchant=merchant,
    )

    assert raise_p1(other_merchant, key="refund:5:retry").status == "open"


def test_silence_refuses_unknown_or_empty_matchers(db):
    before = Silence.objects.count()
    for matchers in ({}, {"colour": "red"}):
        with pytest.raises(ServiceError):
            silence_create(matchers=matchers, ends_at=timezone.now() + dt.timedelta(hours=1), actor="ops")
    assert Silence.objects.count() == before


def test_channel_down_inhibits_per_item_p1s_for_that_channel_only(merchant):
    down = alert_raise(
        tier="P0",
        kind="channel_down",
        dedup_key="channel:sandbox:down",
        subject_type="channel",
        subject_id="sandbox",
        channel="sandbox",
        summary="down",
    )

    inhibited = raise_p1(merchant, channel="sandbox")
    elsewhere = raise_p1(merchant, key="refund:3:retry", subject_id=3, channel="sandbox-backup")

    assert inhibited.status == "suppressed"
    assert inhibited.suppressed_reason == f"inhibited by alert #{down.pk} (channel sandbox down)"
    assert AlertDelivery.objects.filter(alert=inhibited).count() == 0
    assert elsewhere.status == "open"

    alert_resolve(alert_id=down.pk, actor="ops")
    after = raise_p1(merchant, key="refund:4:retry", subject_id=4, channel="sandbox")
    assert after.status == "open"


def test_unknown_tier_writes_nothing(merchant):
    before = rows()
    with pytest.raises(ServiceError):
        raise_p1(merchant, tier="P9")
    assert rows() == before


def test_group_hidden_by_a_channel_down_is_replaced_by_a_visible_one_after_recovery(merchant):
    down = alert_raise(
        tier="P0",
        kind="channel_down",
        dedup_key="channel:sandbox:down",
        subject_type="channel",
        subject_id="sandbox",
        channel="sandbox",
        summary="down",
    )
    hidden = raise_p1(merchant, channel="sandbox", group_key="channel:sandbox:refund_failures")
    assert hidden.status == "suppressed"
    assert Alert.objects.get(is_group=True).status == "suppressed"

    alert_resolve(alert_id=down.pk, actor="ops")
    visible = raise_p1(
        merchant, key="refund:2:retry", subject_id=2, channel="sandbox", group_key="channel:sandbox:refund_failures"
    )

    groups = Alert.objects.filter(is_group=True).order_by("id")
    assert [g.status for g in groups] == ["resolved", "open"]
    assert visible.parent_id == groups[1].pk
    assert AlertDelivery.objects.filter(alert=groups[1]).count() == 3
    assert AlertDelivery.objects.filter(alert=groups[0]).count() == 0
