"""Polling every transfer the bank has not finished with: claim the due ones, bring each forward
(submit, retry, release, or the policy's own step) or query the bank, and apply the answers.

Nothing here knows a kind: the policy names the statuses to claim and the steps of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta

from django.utils import timezone

from apps.common.polling import claim_due
from apps.gateways.base import ChannelError, ChannelResult
from apps.gateways.services import Query, channel_query, channel_query_many
from apps.transfers.lifecycle import retry_backoff
from apps.transfers.models import OutboundTransfer
from apps.transfers.policy import TransferPolicy
from apps.transfers.services import (
    APPROVED,
    FAILED,
    HELD,
    PROCESSING,
    SUBMITTED,
    UNKNOWN,
    transfer_apply_answer,
    transfer_next_verify_check,
    transfer_release_freeze_hold,
    transfer_retry,
    transfer_submit,
)

logger = logging.getLogger(__name__)


def transfer_claim_due(policy: TransferPolicy, *, limit: int, lease: timedelta | None = None) -> list[int]:
    """Claim up to `limit` transfers whose next poll is due; concurrent pollers get disjoint sets.

    `SELECT … FOR UPDATE SKIP LOCKED` (PostgreSQL) and pushing `next_poll_at` by a lease mean two
    beat ticks or two workers never poll the same transfer at once (apps.common.polling.claim_due).
    """
    lease = lease or policy.setting("POLL_INTERVAL")
    return claim_due(policy.model, statuses=policy.polled_statuses, limit=limit, lease=lease)


def transfer_poll(policy: TransferPolicy, pk: int) -> OutboundTransfer:
    """Bring one due transfer forward: the policy's own step, submit if stuck approved, retry if
    failed retryably, release a lifted hold, else query the bank."""
    item = policy.model.objects.select_related(*policy.poll_related).get(pk=pk)
    done = _poll_without_query(policy, item)
    if done is not None:
        return done
    try:
        result = channel_query(channel=item.channel, request_id=item.request_id, reference=item.owner_reference)
    except ChannelError:
        return _poll_unanswered(policy, item)
    return transfer_apply_answer(policy, item, result)


def transfer_poll_batch(policy: TransferPolicy, pks: Sequence[int]) -> list[OutboundTransfer]:
    """`transfer_poll` for a claimed chunk: the bank queries run concurrently, results apply one by one.

    Up to <PREFIX>_POLL_CONCURRENCY queries are in flight at once (threads doing HTTP only; every
    database write stays in this thread, each transfer in its own locked transaction as in
    `transfer_poll`). A transfer whose poll raises is logged and skipped: its claim lease runs out
    and the next tick polls it again, and the rest of the chunk still moves. Caller: the batch task.
    """
    rows = policy.model.objects.select_related(*policy.poll_related).in_bulk(pks)
    polled: list[OutboundTransfer] = []
    to_query: list[OutboundTransfer] = []
    for pk in pks:
        item = rows.get(pk)
        if item is None:
            continue
        try:
            done = _poll_without_query(policy, item)
        except Exception:
            logger.exception("poll of %s=%s failed; it is polled again when its lease ends", item.noun, pk)
            continue
        if done is None:
            to_query.append(item)
        else:
            polled.append(done)
    answers = channel_query_many(
        queries=[Query(item.channel, item.request_id, item.owner_reference) for item in to_query],
        concurrency=policy.setting("POLL_CONCURRENCY"),
    )
    for item, answer in zip(to_query, answers, strict=True):
        try:
            polled.append(_poll_answered(policy, item, answer))
        except Exception:
            logger.exception("poll of %s=%s failed; it is polled again when its lease ends", item.noun, item.pk)
    return polled


def _poll_answered(policy: TransferPolicy, item: OutboundTransfer, answer: ChannelResult | Exception):
    if isinstance(answer, ChannelError):
        return _poll_unanswered(policy, item)
    if isinstance(answer, Exception):
        raise answer
    return transfer_apply_answer(policy, item, answer)


def _poll_without_query(policy: TransferPolicy, item: OutboundTransfer) -> OutboundTransfer | None:
    """What a poll does without asking the bank; None when the bank must be asked."""
    if (done := policy.poll_own(item)) is not None:
        return done
    if item.status == APPROVED:
        return transfer_submit(policy, item.pk)
    if item.status == FAILED:
        return transfer_retry(policy, item.pk)
    if item.status == HELD:
        return transfer_release_freeze_hold(policy, item.pk)
    settled = policy.settled_status
    if item.status == settled and getattr(item, policy.settled_at_field) is None:  # no arrival to schedule from
        policy.model.objects.filter(pk=item.pk, status=settled).update(next_poll_at=None)
        return item
    if item.status not in (SUBMITTED, PROCESSING, UNKNOWN, settled) or item.channel is None:
        return item
    return None


def _poll_unanswered(policy: TransferPolicy, item: OutboundTransfer) -> OutboundTransfer:
    now = timezone.now()
    # A verification check the bank did not answer is not repeated: the schedule's next one asks.
    if item.status == policy.settled_status:
        next_at = transfer_next_verify_check(policy, item, now)
    else:
        next_at = now + retry_backoff(policy, 1)
    policy.model.objects.filter(pk=item.pk).update(next_poll_at=next_at)
    return item
