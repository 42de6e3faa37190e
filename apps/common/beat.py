"""Beat ticks fall inside the windows the period claims count (RELIABILITY.md G8).

`periodic_run_once` counts windows aligned to the Unix epoch (apps.common.periodic.window_start).
Celery's interval schedule ticks every N seconds from whenever beat started, so a tick may fall
just before a window ends: a worker that picks it up a moment later runs it in the next window,
where the next tick then finds the claim taken, and the window before has no run at all — a
skipped period, with one beat or two (beats sharing the database schedule start in step). Here
every interval tick of the database scheduler falls `tick_offset` into its own window instead, so
any beat, started whenever, sends each job once per window at the same place, and a worker that
starts it up to a whole period minus the offset later still runs it in the window it was sent for.

Crontab entries (the nightly jobs) already fire at fixed clock times and are left as they are.
Configured as CELERY_BEAT_SCHEDULER; beat is started without `--scheduler`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from celery import schedules
from django_celery_beat.schedulers import DatabaseScheduler, ModelEntry

from apps.common.periodic import window_start


def tick_offset(seconds: float) -> float:
    """How far into its window a tick falls: a tenth of the window, at most one second — later
    than any clock difference between the beat's host and a worker's, early enough to leave
    nearly the whole window for the queue."""
    return min(1.0, seconds / 10)


def tick_at_or_after(moment: datetime, seconds: float) -> datetime:
    """The first window tick at or after `moment`."""
    offset = timedelta(seconds=tick_offset(seconds))
    tick = window_start(moment - offset, int(seconds)) + offset
    return tick if tick >= moment else tick + timedelta(seconds=seconds)


class WindowSchedule(schedules.schedule):
    """Celery's interval schedule, its ticks aligned to the epoch windows of its own length."""

    def remaining_estimate(self, last_run_at: datetime) -> timedelta:
        last_run_at = self.maybe_make_aware(last_run_at)
        # The tick after the one `last_run_at` belongs to (a run is never early, so it belongs to
        # the last tick at or before it).
        due = tick_at_or_after(last_run_at + timedelta(microseconds=1), self.seconds)
        return due - self.maybe_make_aware(self.now())

    def is_due(self, last_run_at: datetime) -> tuple[bool, float]:
        remaining_s = self.remaining_estimate(last_run_at).total_seconds()
        if remaining_s > 0:
            return schedules.schedstate(is_due=False, next=remaining_s)
        now = self.maybe_make_aware(self.now())
        following = tick_at_or_after(now + timedelta(microseconds=1), self.seconds)
        return schedules.schedstate(is_due=True, next=(following - now).total_seconds())


class WindowEntry(ModelEntry):
    """A database schedule entry whose interval ticks are window ticks."""

    def __init__(self, model, app=None):
        super().__init__(model, app=app)
        schedule = getattr(self, "schedule", None)
        # Exactly the interval class: crontab, solar and clocked schedules keep their own clocks.
        # Whole seconds only, as the windows are (every interval in CELERY_BEAT_SCHEDULE is).
        if type(schedule) is schedules.schedule and schedule.seconds >= 1 and schedule.seconds.is_integer():
            self.schedule = WindowSchedule(schedule.run_every, nowfun=schedule.nowfun, app=schedule._app)


class WindowScheduler(DatabaseScheduler):
    """The database scheduler (django-celery-beat) with window-aligned interval ticks."""

    Entry = WindowEntry
