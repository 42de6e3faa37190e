"""The Celery entry points every kind of transfer has, made once per kind under the kind's own task
names (so queues route them with the rest of that app's tasks). Thin: they take ids and are safe
to run twice. No tasks of its own are defined here."""

from __future__ import annotations

from typing import NamedTuple

from celery import Task, shared_task

from apps.transfers.policy import TransferPolicy
from apps.transfers.poller import transfer_claim_due, transfer_poll_batch
from apps.transfers.services import transfer_resend, transfer_submit


class TransferTasks(NamedTuple):
    submit: Task
    resend: Task
    poll_batch: Task
    poll_due: Task


def transfer_tasks(policy: TransferPolicy, *, noun: str) -> TransferTasks:
    """The submit, resend, poll-batch and poll-due tasks of a kind, named
    "<policy.tasks_module>.<noun>_submit_task" and so on; the kernel publishes them through
    `policy.tasks`. Call once, from that module."""
    module = policy.tasks_module

    @shared_task(name=f"{module}.{noun}_submit_task", ignore_result=True, acks_late=True)
    def submit(pk: int) -> None:
        transfer_submit(policy, pk)

    @shared_task(name=f"{module}.{noun}_resend_task", ignore_result=True, acks_late=True)
    def resend(pk: int) -> None:
        transfer_resend(policy, pk)

    @shared_task(name=f"{module}.{noun}_poll_batch_task", ignore_result=True, acks_late=True)
    def poll_batch(pks: list[int]) -> None:
        transfer_poll_batch(policy, pks)

    @shared_task(name=f"{module}.{noun}_poll_due_task", ignore_result=True)
    def poll_due() -> int:
        """Beat tick: claim due transfers and fan them out to workers, one task per chunk of ids.

        A chunk (<PREFIX>_POLL_CHUNK ids) lets one worker overlap the bank's answers for several
        transfers; chunks keep the work spread over workers. Each id is claimed once.
        """
        ids = transfer_claim_due(policy, limit=policy.setting("POLL_BATCH"))
        chunk = max(1, policy.setting("POLL_CHUNK"))
        for start in range(0, len(ids), chunk):
            poll_batch.delay(ids[start : start + chunk])
        return len(ids)

    policy.tasks = TransferTasks(submit, resend, poll_batch, poll_due)
    return policy.tasks
