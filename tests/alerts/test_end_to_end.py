"""The channel-down and refund-reversed alerts through the real gateway and refund services."""

from __future__ import annotations

import pytest

from apps.alerts.models import Alert, AlertDelivery
from apps.gateways.models import ChannelHealth
from apps.gateways.services import channel_health_mark_down
from apps.refunds.models import Refund
from tests.refunds.conftest import deliver_webhooks, run_poller
from tests.refunds.test_sandbox_suffixes import SETTLE_AFTER, start

pytestmark = [pytest.mark.postgres]


@pytest.mark.django_db
def test_channel_marked_down_by_the_gateway_raises_one_platform_p0(channel, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        channel_health_mark_down(channel=channel)
    with django_capture_on_commit_callbacks(execute=True):
        channel_health_mark_down(channel=channel)  # still down: no new signal, no new alert

    assert ChannelHealth.objects.get(channel=channel).state == "down"
    alert = Alert.objects.get()
    assert (alert.tier, alert.kind, alert.channel, alert.merchant_id) == ("P0", "channel_down", "sandbox", None)
    assert alert.occurrence_count == 1
    assert sorted(AlertDelivery.objects.values_list("channel", flat=True)) == ["console", "sms", "voice"]


@pytest.mark.timeout(90)
def test_sandbox_0003_refund_reversed_after_success_raises_one_p0(api, bank, refund_settings, clock):
    refund, _ = start(api, "0003")
    clock.advance(SETTLE_AFTER)
    deliver_webhooks()
    clock.advance(61)  # SANDBOX_BANK_RETURN_SECONDS
    deliver_webhooks()
    run_poller()
    deliver_webhooks()

    refund.refresh_from_db()
    assert refund.status == Refund.Status.REVERSED
    alert = Alert.objects.get(kind="refund_reversed")
    assert (alert.tier, alert.status, alert.occurrence_count) == ("P0", "open", 1)
    assert alert.dedup_key == f"refund:{refund.pk}:reversed"
    assert alert.merchant_id == refund.merchant_id
    assert alert.detail["failure_code"] == "account_closed"
    assert AlertDelivery.objects.filter(alert=alert).count() == 3
    assert Alert.objects.filter(tier="P0").count() == 1
