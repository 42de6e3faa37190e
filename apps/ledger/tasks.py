"""Celery entry points for the ledger: thin, safe to run twice."""

from __future__ import annotations

import datetime as dt

from celery import shared_task
from django.utils import timezone

from apps.ledger.services import reconciliation_run
from apps.ledger.statements import StatementSourceError, statement_source_names


@shared_task(ignore_result=True)
def reconciliation_daily_task() -> int:
    """Beat, hourly 01:15–07:15 UTC: reconcile yesterday (UTC) for every registered statement
    source, one task per source so that one bank being down does not hold up the others."""
    yesterday = (timezone.now().astimezone(dt.UTC) - dt.timedelta(days=1)).date()
    names = statement_source_names()
    for name in names:
        reconciliation_run_task.delay(yesterday.isoformat(), name, replace=False, actor="beat")
    return len(names)


@shared_task(
    ignore_result=True,
    acks_late=True,
    autoretry_for=(StatementSourceError,),
    retry_backoff=30,
    retry_backoff_max=120,
    retry_jitter=True,
    max_retries=4,
)
def reconciliation_run_task(day: str, source: str, *, replace: bool = True, actor: str = "task") -> None:
    """One (day, source) run. `replace=False` keeps a current result (beat: once per day even when
    the task runs twice); an unreadable statement is retried with backoff (30 s … 2 min, 4 times).
    Countdowns stay below the broker's visibility timeout: Redis would hand a longer-waiting retry
    to a second worker. A bank that publishes hours late is caught by the next hourly beat tick."""
    reconciliation_run(date=dt.date.fromisoformat(day), source=source, replace=replace, actor=actor)
