"""Celery entry points for refunds: the transfer kernel's (submit, resend, poll a batch, the beat's
poll-due tick) under the refunds' names, and one kept for messages queued before batches existed."""

from celery import shared_task

from apps.refunds.services import REFUNDS
from apps.transfers.poller import transfer_poll
from apps.transfers.tasks import transfer_tasks

refund_submit_task, refund_resend_task, refund_poll_batch_task, refund_poll_due_task = transfer_tasks(
    REFUNDS, noun="refund"
)


@shared_task(ignore_result=True, acks_late=True)
def refund_poll_task(refund_id: int) -> None:
    transfer_poll(REFUNDS, refund_id)
