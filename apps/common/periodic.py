"""Periodic jobs take effect once per period (RELIABILITY.md G8), whoever fires them.

Two beats, a beat restarted mid-period, or a task the broker hands out again after a worker died
all end up here: `periodic_run_once` inserts a `PeriodicRun(job, window_start)` row in the job's own
transaction, so a second run in the same window waits on the unique index until the first commits,
then finds the row and does nothing; a run that fails or is killed rolls its row back with its
work, and the next tick runs the window again. The price is one transaction around the whole job:
jobs that move rows one by one under their own locks (commission maturity and settlement, polls)
claim each row instead and do not come here. A job's window is as long as its beat tick, and beat
sends each tick inside its window (apps/common/beat.py), so every window gets its run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.common.models import PeriodicRun

logger = logging.getLogger(__name__)

DAY_SECONDS = 86_400


def window_start(now: datetime, seconds: int) -> datetime:
    """The start of the window of `seconds` that holds `now`, aligned to the Unix epoch (UTC)."""
    epoch = int(now.timestamp())
    return datetime.fromtimestamp(epoch - epoch % max(seconds, 1), tz=now.tzinfo)


def periodic_run_once(
    *, job: str, window_seconds: int, work: Callable[[datetime], dict], now: datetime | None = None
) -> dict | None:
    """Run `work(now)` unless `job` already took effect in the current window: its result (a JSON
    object, stored on the row) or None when skipped. Locks: the unique (job, window_start) index,
    held to the end of the job's transaction. Callers: the periodic tasks."""
    now = now or timezone.now()
    start = window_start(now, window_seconds)
    with transaction.atomic():
        try:
            with transaction.atomic():
                run = PeriodicRun.objects.create(job=job, window_start=start)
        except IntegrityError:
            logger.info("periodic job %s already ran for window %s", job, start.isoformat())
            return None
        result = work(now)
        run.result = result
        run.save(update_fields=["result"])
    return result
