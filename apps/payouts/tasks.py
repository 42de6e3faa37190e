"""Celery entry points for payouts and withdrawals: the transfer kernel's (submit, resend, poll a
batch, the beat's poll-due tick) under the payouts' names, and the recall call."""

from celery import shared_task

from apps.payouts.incidents import payout_recall_send
from apps.payouts.services import DISBURSEMENTS
from apps.transfers.tasks import transfer_tasks

payout_submit_task, payout_resend_task, payout_poll_batch_task, payout_poll_due_task = transfer_tasks(
    DISBURSEMENTS, noun="payout"
)


@shared_task(ignore_result=True, acks_late=True)
def payout_recall_task(disbursement_id: int) -> None:
    payout_recall_send(disbursement_id=disbursement_id)
