"""Celery messages sent after the transaction that needs them commits.

A publish after commit cannot undo the commit, so it must not fail the caller either: the effect is
stored, and an error answer would invite the client to ask for it again. A lost message is logged
here; every message sent this way only hurries work that a periodic job also finds in the database
(the refund and payout pollers pick up rows whose `next_poll_at` has passed, the notification
dispatcher sends what is due). How long a dead broker may hold a request is bounded by the
publish-side Celery settings (refundguard/settings.py).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task
from django.db import transaction

logger = logging.getLogger(__name__)


def publish_after_commit(task: Task, *args: Any, **kwargs: Any) -> None:
    """Queue `task(*args, **kwargs)` once the current transaction commits (at once outside one);
    a failed publish is logged with the task's name and arguments, never raised. Arguments are ids."""

    def publish() -> None:
        try:
            task.apply_async(args=args, kwargs=kwargs)
        except Exception:
            logger.exception(
                "publish of %s args=%r kwargs=%r failed after commit; its sweeper takes over", task.name, args, kwargs
            )

    transaction.on_commit(publish)
