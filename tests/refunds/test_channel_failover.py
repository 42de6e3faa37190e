"""Refunds and channel health end to end: API → refund → `channel_for` by health → sandbox bank over
real HTTP. During the primary's outage new refunds leave through the backup, once each, and after
the outage (cool-off, answered probe) through the primary again."""

from __future__ import annotations

import pytest

from apps.gateways.models import ChannelCall, ChannelHealth, SandboxSubmission, SandboxTransfer
from apps.gateways.sandbox.bank import outage_set
from apps.gateways.services import channel_for, channel_health_refresh
from apps.refunds.models import Refund
from tests.gateways.health_support import COOLOFF, announced, health_settings  # noqa: F401 (fixtures)
from tests.refunds.conftest import deliver_webhooks, open_order, request_refund

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(90)]

SETTLE_AFTER = 3  # SANDBOX_BANK_SETTLE_SECONDS is 2


def submits(refund: Refund) -> list[tuple[str, str]]:
    return list(
        ChannelCall.objects.filter(reference=f"refund:{refund.pk}", action="submit")
        .order_by("id")
        .values_list("channel__code", "outcome")
    )


def bank_side(refund: Refund) -> tuple[list[tuple[str, str]], list[tuple[str, int]]]:
    """What the bank saw for the refund's request id: submissions, and transfers with executions."""
    submissions = SandboxSubmission.objects.filter(request_id=refund.request_id).order_by("id")
    transfers = SandboxTransfer.objects.filter(request_id=refund.request_id)
    return list(submissions.values_list("channel", "outcome")), list(transfers.values_list("channel", "executions"))


def refund_now(api) -> Refund:
    body = request_refund(api, open_order(api, "0000"))
    assert body["status"] == "approved"
    return Refund.objects.get(pk=body["id"])


def test_refund_during_a_primary_outage_goes_out_once_via_the_backup_then_the_primary_after_recovery(
    api,
    bank,
    refund_settings,
    clock,
    health_settings,  # noqa: F811 (the imported fixture)
    announced,  # noqa: F811 (the imported fixture)
):
    outage_set(channel="sandbox", enabled=True)
    assert channel_health_refresh()["sandbox"] == "down"
    assert channel_for(capability="refund").code == "sandbox-backup"

    during = refund_now(api)
    during.refresh_from_db()
    assert during.status == Refund.Status.PROCESSING
    assert during.channel.code == "sandbox-backup"
    assert during.attempt == 1
    assert submits(during) == [("sandbox-backup", "processing")]
    assert bank_side(during) == ([("sandbox-backup", "executed")], [("sandbox-backup", 1)])
    clock.advance(SETTLE_AFTER)
    deliver_webhooks()
    during.refresh_from_db()
    assert during.status == Refund.Status.SUCCEEDED

    outage_set(channel="sandbox", enabled=False)
    clock.advance(COOLOFF + 1)
    assert channel_health_refresh()["sandbox"] == "healthy"
    after = refund_now(api)
    assert submits(after) == [("sandbox", "processing")]
    assert bank_side(after) == ([("sandbox", "executed")], [("sandbox", 1)])

    # Each of the two refunds was submitted once, nothing went to a channel in outage.
    assert ChannelCall.objects.filter(action="submit").count() == 2
    assert announced.transitions() == [("sandbox", "healthy", "down"), ("sandbox", "down", "healthy")]


def test_the_first_outage_error_sends_the_next_refund_to_the_backup_without_waiting_for_the_beat(
    api,
    bank,
    refund_settings,
    clock,
    health_settings,  # noqa: F811 (the imported fixture)
    announced,  # noqa: F811 (the imported fixture)
):
    outage_set(channel="sandbox", enabled=True)
    first = refund_now(api)
    first.refresh_from_db()
    assert (first.status, first.failure_code) == (Refund.Status.FAILED, "outage")
    assert submits(first) == [("sandbox", "error")]
    assert ChannelHealth.objects.get(channel__code="sandbox").state == "down"

    second = refund_now(api)
    second.refresh_from_db()
    assert second.status == Refund.Status.PROCESSING
    assert submits(second) == [("sandbox-backup", "processing")]
    assert bank_side(second) == ([("sandbox-backup", "executed")], [("sandbox-backup", 1)])
    assert bank_side(first) == ([], [])  # refused at the door: nothing reached the bank's books
    assert announced.transitions() == [("sandbox", "healthy", "down")]
