"""Celery entry points for alerts: thin; each job takes effect once per window (see jobs.run_once)."""

from celery import shared_task
from django.conf import settings

from apps.alerts import jobs


@shared_task(ignore_result=True)
def alert_escalate_due_task() -> None:
    jobs.run_once("escalate", settings.ALERT_ESCALATION_WINDOW_SECONDS, jobs.escalate_due)


@shared_task(ignore_result=True)
def alert_sla_watch_task() -> None:
    jobs.run_once("sla_watch", settings.ALERT_WATCH_WINDOW_SECONDS, jobs.sla_watch)


@shared_task(ignore_result=True)
def alert_deadline_watch_task() -> None:
    jobs.run_once("deadline_watch", settings.ALERT_WATCH_WINDOW_SECONDS, jobs.deadline_watch)


@shared_task(ignore_result=True)
def alert_spike_detect_task() -> None:
    jobs.run_once("spike_detect", settings.ALERT_SPIKE_WINDOW_SECONDS, jobs.spike_detect)


@shared_task(ignore_result=True)
def alert_auto_resolve_due_task() -> None:
    jobs.run_once("auto_resolve", settings.ALERT_WATCH_WINDOW_SECONDS, jobs.auto_resolve_due)
