"""Celery entry points for refunds: thin, take ids, safe to run twice."""

from celery import shared_task
from django.conf import settings

from apps.refunds.services import refund_claim_due, refund_poll, refund_poll_batch, refund_resend, refund_submit


@shared_task(ignore_result=True, acks_late=True)
def refund_submit_task(refund_id: int) -> None:
    refund_submit(refund_id=refund_id)


@shared_task(ignore_result=True, acks_late=True)
def refund_resend_task(refund_id: int) -> None:
    refund_resend(refund_id=refund_id)


@shared_task(ignore_result=True, acks_late=True)
def refund_poll_task(refund_id: int) -> None:
    # Kept for messages queued before batches existed.
    refund_poll(refund_id=refund_id)


@shared_task(ignore_result=True, acks_late=True)
def refund_poll_batch_task(refund_ids: list[int]) -> None:
    refund_poll_batch(refund_ids=refund_ids)


@shared_task(ignore_result=True)
def refund_poll_due_task() -> int:
    """Beat tick: claim due refunds and fan them out to workers, one task per chunk of ids.

    A chunk (REFUND_POLL_CHUNK ids) lets one worker overlap the bank's answers for several refunds;
    chunks keep the work spread over workers. Each id is claimed once, by `refund_claim_due`.
    """
    ids = refund_claim_due(limit=settings.REFUND_POLL_BATCH)
    chunk = max(1, settings.REFUND_POLL_CHUNK)
    for start in range(0, len(ids), chunk):
        refund_poll_batch_task.delay(ids[start : start + chunk])
    return len(ids)
