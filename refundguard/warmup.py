"""What a freshly started web worker does once before its first request.

A cold worker paid ~350 ms on its first refund request (and tens of ms on the next few) for work
that is the same every time: building the URL resolver (the progress link's `reverse`), loading
babel's CLDR data for the two locales (money and dates in messages), importing and connecting the
Celery producer, the Chinese segmenter's dictionary, the database connection. After a deploy or a
worker restart those requests all landed at once and made the latency tail. gunicorn runs
`warm_up()` in each worker after it has loaded the app (gunicorn.conf.py, `post_worker_init`).

Nothing here writes or sends anything; a part that fails (Redis or PostgreSQL not answering yet)
is logged and skipped — the first request will then connect as it always did. It lives in the
project package, not in apps/common, because it reaches into the apps above the shared kernel.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

logger = logging.getLogger(__name__)


def _urls() -> None:
    from django.urls import get_resolver

    get_resolver()._populate()


def _locales() -> None:
    from apps.common.money import Money
    from apps.notifications.triggers import format_when

    for locale in ("zh-hans", "en"):
        Money(19900, "CNY").format(locale)
        format_when(datetime(2026, 1, 1, tzinfo=UTC), locale)


def _segmenter() -> None:
    from apps.refunds.routing import _tokens

    _tokens("视频无法播放")


def _database() -> None:
    from django.db import connection

    connection.ensure_connection()


def _broker() -> None:
    from refundguard.celery import app

    app.loader.import_default_modules()  # every app's tasks module (the services import them late)
    app.finalize()  # the task registry
    app.amqp.send_task_message  # noqa: B018 - builds the message sender the first publish would
    with app.producer_or_acquire() as producer:
        producer.connection.ensure_connection(max_retries=1)


STEPS = (_urls, _locales, _segmenter, _database, _broker)


def warm_up() -> float:
    """Run every step; returns the seconds it took."""
    started = time.monotonic()
    for step in STEPS:
        try:
            step()
        except Exception:  # a warm-up must never keep a worker from serving
            logger.warning("warm-up step %s failed; the first request will do it", step.__name__, exc_info=True)
    return time.monotonic() - started
