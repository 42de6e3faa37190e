"""The window scheduler's interval ticks fall at a fixed place inside the windows the period claims
count (apps/common/beat.py), whenever beat started and however late each send was; crontab entries
keep their own clock. The two-beat run with real processes is tests/test_beat_duplicates.py."""

from __future__ import annotations

import datetime as dt
import random
from itertools import pairwise

from celery import schedules

from apps.common.beat import WindowEntry, WindowSchedule, tick_at_or_after, tick_offset
from apps.common.periodic import window_start

T0 = dt.datetime(2026, 11, 27, 10, 0, 0, tzinfo=dt.UTC)


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def _run_beat(seconds: int, *, started: dt.datetime, lateness: list[float]) -> list[dt.datetime]:
    """Drive the schedule as beat does: wait what `is_due` says (plus each send's lateness), send,
    and remember the send time as the last run."""
    clock = Clock(started)
    schedule = WindowSchedule(dt.timedelta(seconds=seconds), nowfun=clock)
    last_run_at, sent = started, []
    for late in lateness:
        due, wait = schedule.is_due(last_run_at)
        while not due:
            clock.now += dt.timedelta(seconds=wait)
            due, wait = schedule.is_due(last_run_at)
        clock.now += dt.timedelta(seconds=late)
        sent.append(clock.now)
        last_run_at = clock.now
    return sent


def test_every_beat_sends_once_per_window_at_the_same_place_whenever_it_started():
    rng = random.Random(8)
    for seconds in (2, 12, 60, 300):
        offset = dt.timedelta(seconds=tick_offset(seconds))
        for _ in range(50):
            started = T0 + dt.timedelta(seconds=rng.uniform(0, 3 * seconds))
            # Up to 5 % of the offset late: a busy beat loop, never a whole window.
            sent = _run_beat(seconds, started=started, lateness=[rng.uniform(0, 0.05) * offset.total_seconds()] * 30)
            windows = [window_start(moment, seconds) for moment in sent]
            assert [b - a for a, b in pairwise(windows)] == [dt.timedelta(seconds=seconds)] * 29
            assert all(offset <= moment - window < offset * 1.06 for moment, window in zip(sent, windows, strict=True))
            assert windows[0] - window_start(started, seconds) <= dt.timedelta(seconds=seconds)


def test_a_late_send_does_not_move_the_next_tick():
    sent = _run_beat(12, started=T0 + dt.timedelta(seconds=5), lateness=[0.0, 7.0, 0.0, 0.0])
    assert [moment - T0 for moment in sent] == [dt.timedelta(seconds=s) for s in (13, 32, 37, 49)]


def test_tick_at_or_after_is_the_tick_itself_on_a_tick():
    tick = T0 + dt.timedelta(seconds=1)
    assert tick_at_or_after(tick, 60) == tick
    assert tick_at_or_after(tick + dt.timedelta(microseconds=1), 60) == tick + dt.timedelta(seconds=60)
    assert tick_offset(2) == 0.2
    assert tick_offset(300) == 1.0


class _Model:
    """Just what the database scheduler's entry reads from a PeriodicTask row."""

    name = "alert-escalate"
    task = "apps.alerts.tasks.alert_escalate_due_task"
    args = kwargs = headers = None
    queue = exchange = routing_key = priority = None
    total_run_count = 0
    last_run_at = T0
    start_time = None

    def __init__(self, schedule) -> None:
        self.schedule = schedule


def test_interval_entries_tick_in_windows_and_crontab_entries_keep_their_clock():
    interval = WindowEntry(_Model(schedules.schedule(dt.timedelta(seconds=60))))
    assert type(interval.schedule) is WindowSchedule
    assert interval.schedule.run_every == dt.timedelta(seconds=60)
    nightly = schedules.crontab(minute=10, hour=2)
    assert WindowEntry(_Model(nightly)).schedule is nightly
    fractional = schedules.schedule(dt.timedelta(seconds=2.5))
    assert WindowEntry(_Model(fractional)).schedule is fractional
