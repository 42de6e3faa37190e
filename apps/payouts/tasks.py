"""Celery entry points for payouts and withdrawals: thin, take ids, safe to run twice."""

from celery import shared_task
from django.conf import settings

from apps.payouts.services import (
    payout_claim_due,
    payout_poll_batch,
    payout_recall_send,
    payout_resend,
    payout_submit,
)


@shared_task(ignore_result=True, acks_late=True)
def payout_submit_task(disbursement_id: int) -> None:
    payout_submit(disbursement_id=disbursement_id)


@shared_task(ignore_result=True, acks_late=True)
def payout_resend_task(disbursement_id: int) -> None:
    payout_resend(disbursement_id=disbursement_id)


@shared_task(ignore_result=True, acks_late=True)
def payout_recall_task(disbursement_id: int) -> None:
    payout_recall_send(disbursement_id=disbursement_id)


@shared_task(ignore_result=True, acks_late=True)
def payout_poll_batch_task(disbursement_ids: list[int]) -> None:
    payout_poll_batch(disbursement_ids=disbursement_ids)


@shared_task(ignore_result=True)
def payout_poll_due_task() -> int:
    """Beat tick: claim due payouts and withdrawals and fan them out, one task per chunk of ids."""
    ids = payout_claim_due(limit=settings.PAYOUT_POLL_BATCH)
    chunk = max(1, settings.PAYOUT_POLL_CHUNK)
    for start in range(0, len(ids), chunk):
        payout_poll_batch_task.delay(ids[start : start + chunk])
    return len(ids)
