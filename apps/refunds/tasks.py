"""Celery entry points for refunds: thin, take ids, safe to run twice."""

from celery import shared_task
from django.conf import settings

from apps.refunds.services import refund_claim_due, refund_poll, refund_resend, refund_submit


@shared_task(ignore_result=True, acks_late=True)
def refund_submit_task(refund_id: int) -> None:
    refund_submit(refund_id=refund_id)


@shared_task(ignore_result=True, acks_late=True)
def refund_resend_task(refund_id: int) -> None:
    refund_resend(refund_id=refund_id)


@shared_task(ignore_result=True, acks_late=True)
def refund_poll_task(refund_id: int) -> None:
    refund_poll(refund_id=refund_id)


@shared_task(ignore_result=True)
def refund_poll_due_task() -> int:
    """Beat tick: claim due refunds and fan them out to workers, one task per refund."""
    ids = refund_claim_due(limit=settings.REFUND_POLL_BATCH)
    for refund_id in ids:
        refund_poll_task.delay(refund_id)
    return len(ids)
