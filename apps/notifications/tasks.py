"""Celery entry points for notifications: thin, safe to run twice (rows are claimed before sending)."""

from celery import shared_task

from apps.notifications import services


@shared_task(ignore_result=True, acks_late=True)
def notification_dispatch_event_task(event_key: str) -> None:
    services.notification_dispatch_event(event_key=event_key)


@shared_task(ignore_result=True)
def notification_dispatch_due_task() -> None:
    services.notification_dispatch_due()
