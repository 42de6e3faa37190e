"""Killed workers leave nothing behind for long (RELIABILITY G7, docs/operations.md): every task is
acknowledged late and requeued when its worker dies, lands on a queue the workers consume, and
finishes (or is stopped) before Redis would hand its message to a second worker; a killed worker's
message comes back within minutes, not an hour. Only the nightly jobs may outlast the visibility
timeout, and each of them takes effect once per period, so their redelivered copy does nothing."""

from __future__ import annotations

import pytest
from django.conf import settings

from refundguard.celery import app

# How soon a message of a killed worker must be handed out again (visibility timeout + the sweep).
REDELIVERED_WITHIN_S = 330
QUEUES = {"money", "notifications", "housekeeping"}
NIGHTLY = {
    "apps.risk.tasks.risk_model_train_task",
    "apps.risk.tasks.risk_baselines_refresh_task",
    "apps.ledger.tasks.reconciliation_run_task",
}


def _our_tasks() -> dict:
    app.loader.import_default_modules()
    tasks = {name: task for name, task in app.tasks.items() if name.startswith("apps.")}
    assert len(tasks) > 20
    return tasks


def test_tasks_are_acknowledged_after_they_run_and_requeued_when_the_worker_dies():
    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True
    assert app.conf.worker_prefetch_multiplier == 1
    assert app.conf.worker_cancel_long_running_tasks_on_connection_loss is True


def test_every_task_lands_on_a_queue_the_workers_consume():
    consumed = {queue.name for queue in app.conf.task_queues}
    assert consumed == QUEUES
    routes = {name: app.amqp.router.route({}, name, (), {})["queue"].name for name in _our_tasks()}
    assert {name: queue for name, queue in routes.items() if queue not in consumed} == {}
    assert {name for name, queue in routes.items() if queue == "money"} >= {
        "apps.refunds.tasks.refund_submit_task",
        "apps.payouts.tasks.payout_submit_task",
    }


@pytest.mark.skipif(not settings.CELERY_BROKER_URL.startswith("redis"), reason="the Redis broker's redelivery")
def test_a_killed_workers_message_comes_back_within_minutes_and_never_beside_a_running_copy():
    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    visibility = options["visibility_timeout"]
    assert visibility + options.get("unacked_restore_interval", 100) <= REDELIVERED_WITHIN_S

    outlasting = set()
    for name, task in _our_tasks().items():
        hard_limit = task.time_limit or app.conf.task_time_limit
        assert hard_limit, f"{name} has no hard time limit"
        if hard_limit >= visibility:
            outlasting.add(name)
        # A retry waits in the worker as an unacknowledged message: it must come due before Redis
        # would hand that message out again.
        waits = [task.default_retry_delay]
        if getattr(task, "retry_backoff", False):
            waits.append(task.retry_backoff_max)
        assert max(waits) < visibility, f"{name} may wait {max(waits)} s for a retry"
    assert outlasting == NIGHTLY
