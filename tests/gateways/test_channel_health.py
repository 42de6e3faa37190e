"""Channel health and failover: outage and failure-rate detection, routing by health, recovery,
the daily "rising N days in a row" check, and the signals the alerts app will listen to.

Live tests drive the sandbox bank over real HTTP (outage mode, suffix behaviours); the rate and
history tests write `ChannelCall` rows at chosen times, which is what the refresh reads.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.conf import settings
from django.db import connection
from django.utils import timezone

from apps.gateways.base import ChannelError, TransferStatus
from apps.gateways.models import (
    Channel,
    ChannelCall,
    ChannelHealth,
    ChannelHealthDay,
    SandboxSubmission,
    SandboxTransfer,
)
from apps.gateways.sandbox.bank import outage_set
from apps.gateways.services import (
    PROBE_REQUEST_ID,
    Query,
    channel_for,
    channel_health_refresh,
    channel_query,
    channel_query_many,
    channel_submit,
    channel_verify,
)
from apps.gateways.tasks import channel_health_refresh_task
from tests.gateways.conftest import account, later, transfer
from tests.gateways.health_support import COOLOFF, MIN_CALLS

pytestmark = pytest.mark.timeout(90)


def health(code: str = "sandbox") -> ChannelHealth:
    return ChannelHealth.objects.get(channel__code=code)


def probes(code: str) -> list[str]:
    return list(
        ChannelCall.objects.filter(channel__code=code, request_id=PROBE_REQUEST_ID)
        .order_by("id")
        .values_list("outcome", flat=True)
    )


def add_calls(code: str, *, ok: int = 0, failed: int = 0, at: datetime | None = None, **failure) -> None:
    """`ok` answered calls then `failed` failing ones (a timeout unless `failure` says otherwise),
    one millisecond apart, the last at `at` (default now), as the call recorder writes them."""
    channel = Channel.objects.get(code=code)
    at = at or timezone.now()
    failure = {"outcome": "timeout", "raw_code": "timeout", "reason": "timeout", **failure}
    rows = [{"outcome": "processing", "raw_code": "", "reason": ""}] * ok + [failure] * failed
    ChannelCall.objects.bulk_create(
        ChannelCall(
            channel=channel,
            action="submit",
            reference=f"refund:{n}",
            request_id=f"refund:{n}:1",
            created_at=at - timedelta(milliseconds=len(rows) - 1 - n),
            **row,
        )
        for n, row in enumerate(rows)
    )


def set_health(code: str, state: str, *, rising: bool = False, age: timedelta = timedelta(0)) -> None:
    ChannelHealth.objects.update_or_create(
        channel=Channel.objects.get(code=code),
        defaults={"state": state, "is_failure_rate_rising": rising, "computed_at": timezone.now() - age},
    )


# --- outage: detection, failover, recovery ---------------------------------------------------------


def test_primary_in_outage_is_marked_down_by_the_refresh_and_payouts_route_to_the_backup(
    bank, health_settings, announced
):
    assert channel_for(capability="payout").code == "sandbox"
    outage_set(channel="sandbox", enabled=True)

    assert channel_health_refresh() == {"sandbox": "down", "sandbox-backup": "healthy"}

    primary = health("sandbox")
    assert (primary.state, primary.reason, primary.score) == ("down", "outage", 0)
    assert primary.last_outage_at is not None
    assert (health("sandbox-backup").state, health("sandbox-backup").score) == ("healthy", 100)
    # Never measured before, so each channel got one probe: the primary's answered 503.
    assert probes("sandbox") == ["error"]
    assert probes("sandbox-backup") == ["not_found"]
    assert ChannelCall.objects.get(channel__code="sandbox").reason == "outage"
    assert channel_for(capability="payout").code == "sandbox-backup"
    assert channel_for(capability="refund").code == "sandbox-backup"
    # Only the down channel can carry it: it is still returned, never None.
    assert channel_for(capability="payout", exclude=["sandbox-backup"]).code == "sandbox"
    assert announced.sent == [
        (
            "changed",
            {
                "channel_code": "sandbox",
                "old_state": "healthy",
                "new_state": "down",
                "reason": "outage",
                "failure_rate": 0.0,
                "score": 0,
                "calls": 0,
            },
        )
    ]

    # Within the cool-off the down channel is not probed again and nothing is re-announced.
    assert channel_health_refresh() == {"sandbox": "down", "sandbox-backup": "healthy"}
    assert probes("sandbox") == ["error"]
    assert len(announced.sent) == 1

    # A payout sent where channel_for says goes out once, through the backup.
    target = channel_for(capability="payout")
    result = channel_submit(channel=target, request=transfer(1, "0000"))
    assert result.status == TransferStatus.PROCESSING
    assert SandboxTransfer.objects.get().channel == "sandbox-backup"
    assert SandboxTransfer.objects.get().executions == 1
    assert list(SandboxSubmission.objects.values_list("channel", "outcome")) == [("sandbox-backup", "executed")]


def test_an_outage_error_on_a_live_call_marks_the_channel_down_at_once_and_announces_it_once(
    bank, health_settings, announced
):
    outage_set(channel="sandbox", enabled=True)
    for call in (
        lambda: channel_submit(channel=bank, request=transfer(2, "0000")),
        lambda: channel_query(channel=bank, request_id="refund:2:submit"),
        lambda: channel_verify(channel=bank, account=account("0000")),
    ):
        with pytest.raises(ChannelError):
            call()
        assert health("sandbox").state == "down"
    assert announced.transitions() == [("sandbox", "healthy", "down")]
    assert ChannelCall.objects.filter(channel__code="sandbox", reason="outage").count() == 3
    assert channel_for(capability="refund").code == "sandbox-backup"

    channel_submit(channel=channel_for(capability="refund"), request=transfer(2, "0000"))
    assert list(SandboxTransfer.objects.values_list("channel", "executions")) == [("sandbox-backup", 1)]


def test_batch_queries_that_meet_an_outage_mark_the_channel_down(bank, health_settings, announced):
    outage_set(channel="sandbox", enabled=True)
    backup = Channel.objects.get(code="sandbox-backup")
    answers = channel_query_many(
        queries=[Query(bank, "refund:3:submit"), Query(bank, "refund:4:submit"), Query(backup, "refund:5:submit")],
        concurrency=3,
    )
    assert [type(answer).__name__ for answer in answers] == ["ChannelError", "ChannelError", "ChannelResult"]
    assert health("sandbox").state == "down"
    assert not ChannelHealth.objects.filter(channel=backup).exists()
    assert announced.transitions() == [("sandbox", "healthy", "down")]


def test_a_timeout_or_a_refused_request_does_not_mark_a_channel_down(bank, health_settings, announced):
    with pytest.raises(ChannelError):
        channel_submit(channel=bank, request=transfer(6, "0006"))  # no answer in time
    channel_submit(channel=bank, request=transfer(8, "0000"))
    with pytest.raises(ChannelError) as refused:  # same request id, another amount: 409, ours to fix
        channel_submit(channel=bank, request=transfer(8, "0000", amount=100))
    assert refused.value.reason.code == "request_invalid"
    assert list(ChannelCall.objects.order_by("id").values_list("outcome", "reason")) == [
        ("timeout", "timeout"),
        ("processing", ""),
        ("error", "request_invalid"),
    ]
    assert not ChannelHealth.objects.exists()
    assert announced.sent == []


def test_recovery_needs_the_cool_off_and_then_a_call_that_answers(bank, health_settings, announced):
    outage_set(channel="sandbox", enabled=True)
    with time_machine.travel(timezone.now(), tick=True) as clock:
        channel_health_refresh()
        first_outage = health().last_outage_at

        # Past the cool-off, still in outage: the probe fails, the channel stays down, the cool-off restarts.
        clock.shift(timedelta(seconds=COOLOFF + 1))
        assert channel_health_refresh()["sandbox"] == "down"
        assert probes("sandbox") == ["error", "error"]
        assert health().last_outage_at > first_outage

        # The outage ends, but the cool-off has just restarted: no probe yet, still down.
        outage_set(channel="sandbox", enabled=False)
        clock.shift(timedelta(seconds=COOLOFF / 2))
        assert channel_health_refresh()["sandbox"] == "down"
        assert probes("sandbox") == ["error", "error"]
        assert channel_for(capability="payout").code == "sandbox-backup"

        clock.shift(timedelta(seconds=COOLOFF / 2 + 1))
        assert channel_health_refresh()["sandbox"] == "healthy"
        assert probes("sandbox") == ["error", "error", "not_found"]
        assert channel_for(capability="payout").code == "sandbox"
    assert announced.transitions("sandbox") == [("sandbox", "healthy", "down"), ("sandbox", "down", "healthy")]
    back = announced.of("changed")[-1]
    # Two failed probes and one answered, of the 10 calls needed to judge a rate.
    assert (back["reason"], back["score"], back["calls"]) == ("", round(100 * (1 - 2 / 3 * 3 / 10)), 3)
    assert back["failure_rate"] == pytest.approx(2 / 3)


def test_without_probes_a_down_channel_is_routed_to_again_after_the_cool_off(bank, health_settings, announced):
    health_settings.CHANNEL_HEALTH_PROBE = False
    outage_set(channel="sandbox", enabled=True)
    with pytest.raises(ChannelError):
        channel_submit(channel=bank, request=transfer(7, "0000"))
    assert channel_health_refresh()["sandbox"] == "down"
    with later(COOLOFF + 1):
        assert channel_health_refresh()["sandbox"] == "healthy"
        assert channel_for(capability="payout").code == "sandbox"
        # Still in outage: the first real call is the probe, and it fails over the next one at once.
        with pytest.raises(ChannelError):
            channel_submit(channel=bank, request=transfer(7, "0000"))
        assert channel_for(capability="payout").code == "sandbox-backup"
    assert probes("sandbox") == []
    assert announced.transitions("sandbox") == [
        ("sandbox", "healthy", "down"),
        ("sandbox", "down", "healthy"),
        ("sandbox", "healthy", "down"),
    ]


# --- failure rate ------------------------------------------------------------------------------------


def test_failure_rate_over_the_threshold_degrades_the_channel_without_an_outage(bank, health_settings, announced):
    health_settings.CHANNEL_HEALTH_PROBE = False
    for n in range(6):
        channel_submit(channel=bank, request=transfer(100 + n, "0000"))
    for n in range(3):  # channel limit reached: the bank's trouble, counted
        assert channel_submit(channel=bank, request=transfer(200 + n, "0007")).reason.code == "channel_limit"
    for n in range(3):  # holder name mismatch: the customer's, not counted
        assert channel_submit(channel=bank, request=transfer(300 + n, "0004")).reason.code == "holder_name_mismatch"
    channel_submit(channel=bank, request=transfer(400, "0002"))
    with later(3):  # the frozen account's transfer has failed at the bank: the customer's, not counted
        assert channel_query(channel=bank, request_id="refund:400:submit").reason.code == "account_frozen"
        assert channel_health_refresh()["sandbox"] == "degraded"

    primary = health()
    assert (primary.calls, primary.failures, primary.reason) == (14, 3, "failure_rate")
    assert primary.failure_rate == pytest.approx(3 / 14)
    assert primary.score == round(100 * (1 - 3 / 14))
    assert channel_for(capability="payout").code == "sandbox-backup"
    assert announced.sent == [
        (
            "changed",
            {
                "channel_code": "sandbox",
                "old_state": "healthy",
                "new_state": "degraded",
                "reason": "failure_rate",
                "failure_rate": pytest.approx(3 / 14),
                "score": 79,
                "calls": 14,
            },
        )
    ]

    # 3 of 20 is under the threshold but not under the recovery rate: still degraded, nothing sent.
    for _ in range(6):
        channel_verify(channel=bank, account=account("0000"))
    with later(3):
        assert channel_health_refresh()["sandbox"] == "degraded"
    assert len(announced.sent) == 1
    # 3 of 31 is under the recovery rate: healthy again, announced once.
    for _ in range(11):
        channel_verify(channel=bank, account=account("0000"))
    with later(3):
        assert channel_health_refresh()["sandbox"] == "healthy"
        assert channel_health_refresh()["sandbox"] == "healthy"
    assert announced.transitions() == [("sandbox", "healthy", "degraded"), ("sandbox", "degraded", "healthy")]
    assert channel_for(capability="payout").code == "sandbox"


def test_too_few_calls_are_not_judged_on_their_rate(channel, health_settings, announced):
    health_settings.CHANNEL_HEALTH_PROBE = False
    add_calls("sandbox", failed=MIN_CALLS - 1)
    assert channel_health_refresh()["sandbox"] == "healthy"
    assert (health().calls, health().failures) == (MIN_CALLS - 1, MIN_CALLS - 1)
    # The score already shows the trouble, weighted by how much there is to go on.
    assert health().score == 10


def test_nearly_every_call_failing_is_down_until_a_call_succeeds_again(
    channel, health_settings, announced, django_capture_on_commit_callbacks
):
    health_settings.CHANNEL_HEALTH_PROBE = False
    start = timezone.now() - timedelta(minutes=5)
    add_calls("sandbox", failed=12, at=start)
    with django_capture_on_commit_callbacks(execute=True):
        assert channel_health_refresh()["sandbox"] == "down"
    assert (health().reason, health().score) == ("failure_rate", 0)
    assert channel_for(capability="refund").code == "sandbox-backup"

    add_calls("sandbox", ok=1, at=start + timedelta(minutes=1))  # the latest call answered
    with django_capture_on_commit_callbacks(execute=True):
        assert channel_health_refresh()["sandbox"] == "degraded"
    assert announced.transitions() == [("sandbox", "healthy", "down"), ("sandbox", "down", "degraded")]


def test_requests_refused_as_ours_to_fix_do_not_count_against_the_channel(channel, health_settings):
    health_settings.CHANNEL_HEALTH_PROBE = False
    add_calls("sandbox", failed=MIN_CALLS, outcome="error", raw_code="INVALID_REQUEST", reason="request_invalid")
    add_calls("sandbox", failed=MIN_CALLS, outcome="failed", raw_code="ACCOUNT_FROZEN", reason="account_frozen")
    add_calls("sandbox", failed=MIN_CALLS, outcome="held", raw_code="RISK_REVIEW", reason="risk_hold")
    assert channel_health_refresh()["sandbox"] == "healthy"
    assert (health().calls, health().failures, health().score) == (3 * MIN_CALLS, 0, 100)


def test_calls_older_than_the_window_do_not_count(channel, health_settings):
    health_settings.CHANNEL_HEALTH_PROBE = False
    add_calls("sandbox", failed=MIN_CALLS * 2, at=timezone.now() - timedelta(minutes=16))
    add_calls("sandbox", ok=MIN_CALLS, at=timezone.now() - timedelta(minutes=14))
    assert channel_health_refresh()["sandbox"] == "healthy"
    assert (health().calls, health().failures) == (MIN_CALLS, 0)


# --- routing ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("primary", "backup", "chosen"),
    [
        ("healthy", "healthy", "sandbox"),
        ("degraded", "healthy", "sandbox-backup"),
        ("down", "healthy", "sandbox-backup"),
        ("down", "degraded", "sandbox-backup"),
        ("degraded", "down", "sandbox"),
        ("degraded", "degraded", "sandbox"),
        ("down", "down", "sandbox"),
    ],
)
def test_channel_for_prefers_health_then_priority(channel, primary, backup, chosen):
    set_health("sandbox", primary)
    set_health("sandbox-backup", backup)
    assert channel_for(capability="payout").code == chosen
    # Whatever the health, excluding one leaves the other, and excluding both leaves none.
    assert channel_for(capability="payout", exclude=["sandbox"]).code == "sandbox-backup"
    assert channel_for(capability="payout", exclude=["sandbox-backup"]).code == "sandbox"
    assert channel_for(capability="payout", exclude=["sandbox", "sandbox-backup"]) is None


def test_channel_for_prefers_a_channel_whose_failure_rate_is_not_rising(channel):
    set_health("sandbox", "healthy", rising=True)
    assert channel_for(capability="payout").code == "sandbox-backup"
    set_health("sandbox-backup", "degraded")
    assert channel_for(capability="payout").code == "sandbox"  # state first, then rising


def test_stale_health_is_ignored_and_unknown_channels_count_as_healthy(channel, health_settings):
    set_health("sandbox", "down", age=timedelta(seconds=601))
    assert channel_for(capability="payout").code == "sandbox"
    set_health("sandbox", "down", age=timedelta(seconds=599))
    assert channel_for(capability="payout").code == "sandbox-backup"
    assert not ChannelHealth.objects.filter(channel__code="sandbox-backup").exists()


def test_channel_for_still_skips_disabled_and_incapable_channels(channel):
    set_health("sandbox", "down")
    Channel.objects.filter(code="sandbox-backup").update(is_enabled=False)
    assert channel_for(capability="payout").code == "sandbox"
    Channel.objects.filter(code="sandbox").update(capabilities={"refund": True})
    assert channel_for(capability="payout") is None
    assert channel_for(capability="refund").code == "sandbox"


# --- daily history: rising N days in a row -----------------------------------------------------------

NOON = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def day(n: int) -> datetime:
    """Noon UTC, `n` days after 20 November 2026."""
    return NOON + timedelta(days=n)


def test_failure_rate_rising_three_days_in_a_row_is_announced_once_and_prefers_the_backup(
    channel, health_settings, announced, django_capture_on_commit_callbacks
):
    health_settings.CHANNEL_HEALTH_PROBE = False
    # Days 0..4: 1, 2, 3, 4, 5 failures in 20 calls; the backup steady at 1 in 20.
    for n in range(5):
        add_calls("sandbox", ok=19 - n, failed=n + 1, at=day(n) - timedelta(hours=2))
        add_calls("sandbox-backup", ok=19, failed=1, at=day(n) - timedelta(hours=2))

    with time_machine.travel(day(3), tick=False), django_capture_on_commit_callbacks(execute=True):
        # Complete days so far: 0, 1, 2 (and an empty day before): two rises, not three.
        assert channel_health_refresh() == {"sandbox": "healthy", "sandbox-backup": "healthy"}
        assert not health().is_failure_rate_rising
    assert announced.sent == []

    with time_machine.travel(day(4), tick=False), django_capture_on_commit_callbacks(execute=True):
        channel_health_refresh()
        channel_health_refresh()
        assert health().is_failure_rate_rising
        assert not health("sandbox-backup").is_failure_rate_rising
        # Healthy by its window (no calls in the last 15 minutes), yet the backup is preferred.
        assert health().state == "healthy"
        assert channel_for(capability="payout").code == "sandbox-backup"
    assert announced.sent == [
        (
            "rising",
            {
                "channel_code": "sandbox",
                "failure_rate": 0.2,
                "days": [
                    {"date": "2026-11-20", "calls": 20, "failures": 1, "failure_rate": 0.05},
                    {"date": "2026-11-21", "calls": 20, "failures": 2, "failure_rate": 0.1},
                    {"date": "2026-11-22", "calls": 20, "failures": 3, "failure_rate": 0.15},
                    {"date": "2026-11-23", "calls": 20, "failures": 4, "failure_rate": 0.2},
                ],
            },
        )
    ]
    # Complete days only, each written once: 19 to 23 November (the lookbacks from both days).
    history = ChannelHealthDay.objects.filter(channel__code="sandbox").order_by("date")
    assert [(row.date.day, row.calls, row.failures) for row in history] == [
        (19, 0, 0),
        (20, 20, 1),
        (21, 20, 2),
        (22, 20, 3),
        (23, 20, 4),
    ]

    with time_machine.travel(day(5), tick=False), django_capture_on_commit_callbacks(execute=True):
        channel_health_refresh()  # day 4 at 25 %: still rising, not announced again
        assert health().is_failure_rate_rising
    assert len(announced.sent) == 1

    with time_machine.travel(day(6), tick=False), django_capture_on_commit_callbacks(execute=True):
        channel_health_refresh()  # day 5 had no calls: the run is over
        assert not health().is_failure_rate_rising
        assert channel_for(capability="payout").code == "sandbox"
    assert len(announced.sent) == 1


def test_a_day_with_too_few_calls_breaks_the_run(channel, health_settings, django_capture_on_commit_callbacks):
    health_settings.CHANNEL_HEALTH_PROBE = False
    for n, (ok, failed) in enumerate([(19, 1), (18, 2), (5, 3), (16, 4)]):
        add_calls("sandbox", ok=ok, failed=failed, at=day(n))
    with time_machine.travel(day(4), tick=False), django_capture_on_commit_callbacks(execute=True):
        channel_health_refresh()
    assert not health().is_failure_rate_rising


# --- the beat task and concurrency -------------------------------------------------------------------


def test_beat_refreshes_channel_health_every_minute(bank, health_settings):
    entry = settings.CELERY_BEAT_SCHEDULE["channel-health-refresh"]
    assert entry == {"task": "apps.gateways.tasks.channel_health_refresh_task", "schedule": 60.0}
    assert channel_health_refresh_task.name == entry["task"]
    outage_set(channel="sandbox", enabled=True)
    channel_health_refresh_task.delay()
    assert dict(ChannelHealth.objects.values_list("channel__code", "state")) == {
        "sandbox": "down",
        "sandbox-backup": "healthy",
    }


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_refreshes_at_once_announce_a_change_once(channel, health_settings, announced):
    health_settings.CHANNEL_HEALTH_PROBE = False
    add_calls("sandbox", ok=5, failed=MIN_CALLS)
    barrier = threading.Barrier(4)
    results, errors = [], []

    def refresh() -> None:
        try:
            barrier.wait()
            results.append(channel_health_refresh()["sandbox"])
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=refresh) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert results == ["degraded"] * 4
    assert announced.transitions() == [("sandbox", "healthy", "degraded")]
    # The four complete days the rising check looks at, written once whoever got there first.
    assert ChannelHealthDay.objects.filter(channel__code="sandbox").count() == 4
