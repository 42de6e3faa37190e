"""The lifecycle every outbound transfer shares: submit exactly once, apply channel results in order,
query before any retry, resend, retry with backoff and failover, hold while a freeze is in force.

Each service takes the kind's policy (apps.transfers.policy) and a transfer id. Locking: each
service re-reads the transfer with `select_for_update()`, after whatever the policy locks first.
Channel calls never run inside a transaction: a transfer is committed as `submitted` *before* the
bank is called, so a crash after the call is recovered by querying, never by a blind resend.
Request ids are the transfer's own (`request_id`): the bank dedupes on them too.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.accounts.selectors import freeze_hold_for
from apps.accounts.services import bank_account_mark_verified
from apps.common.polling import claim_call, verify_next_check, verify_window_end
from apps.gateways import reasons, registry
from apps.gateways.base import (
    Account,
    ChannelError,
    ChannelResult,
    ChannelTimeout,
    TransferRequest,
    TransferStatus,
    VerifyResult,
)
from apps.gateways.services import channel_for, channel_submit, destination_verify
from apps.transfers.lifecycle import (
    announce_anomaly,
    audit,
    lock,
    move,
    publish_step,
    record,
    retry_backoff,
    save_staged,
    stage,
)
from apps.transfers.models import OutboundTransfer, Party
from apps.transfers.policy import TransferPolicy, policy_register

logger = logging.getLogger(__name__)

APPROVED, SUBMITTED, PROCESSING, UNKNOWN = "approved", "submitted", "processing", "unknown"
FAILED, HELD = "failed", "held"


# --- submission -----------------------------------------------------------------------------------


def transfer_submit(policy: TransferPolicy, pk: int) -> OutboundTransfer:
    """Send an approved transfer to a channel, exactly once.

    The policy may stop it first, outside any transaction (a destination the channel must verify).
    Then, under the policy's locks and the row's: a freeze of the customer or the destination
    account holds it (`hold_if_frozen`: retries and failovers come through here too); the channel
    is the kind's best enabled one, avoiding the last after an outage; the policy may stop it
    (a balance that no longer covers it). Commits `submitted` (and the policy's in-flight postings)
    before calling the bank; the call's outcome is then applied like any webhook. A timeout moves
    it to `unknown`, which is queried before anything is sent again. Safe to call twice: only an
    `approved` transfer is sent. Callers: the submit task, the poller, retries.
    """
    if (stopped := policy.verify_before_submit(pk)) is not None:
        return stopped
    with transaction.atomic():
        policy.lock_before(pk, "submit")
        item = lock(policy, pk)
        if item.status != APPROVED:
            return item
        if hold_if_frozen(policy, item, actor="system"):
            return item
        capability = policy.capability(item)
        avoid = [item.channel.code] if item.channel and item.failure_code == reasons.OUTAGE.code else []
        channel = channel_for(capability=capability, exclude=avoid) or channel_for(capability=capability)
        if channel is None:
            item.next_poll_at = timezone.now() + policy.setting("POLL_INTERVAL")
            item.save(update_fields=["next_poll_at"])
            logger.error("no enabled channel for %s; %s=%s waits", capability, item.noun, item.pk)
            return item
        if not policy.before_submit(item):
            return item
        now = timezone.now()
        item.channel = channel
        item.attempt += 1
        item.send_seq += 1
        item.submitted_at = now
        item.next_poll_at = now + policy.setting("POLL_INTERVAL")
        move(
            policy,
            item,
            "submit",
            code="submitted",
            party=Party.PLATFORM,
            actor="system",
            fields=("channel", "attempt", "send_seq", "submitted_at", "next_poll_at"),
            detail={"channel": channel.code, "request_id": item.request_id, "attempt": item.attempt},
        )
        policy.after_submit(item)
    return _send(policy, item)


def transfer_account(item: OutboundTransfer) -> Account:
    """The destination as the channel sees it (the full number: for the adapter only)."""
    account = item.destination_account
    return Account(holder_name=account.holder_name, bank=account.bank, number=account.reveal_number())


def _transfer_request(item: OutboundTransfer) -> TransferRequest:
    return TransferRequest(
        request_id=item.request_id,
        reference=item.owner_reference,
        amount=item.amount,
        currency=item.currency,
        account=transfer_account(item),
        kind=item.noun,
        memo=item.transfer_memo,
    )


def _send(policy: TransferPolicy, item: OutboundTransfer) -> OutboundTransfer:
    """Call the channel for a transfer committed as `submitted` (no transaction may be open).

    Each submit or resubmit transition owes exactly one call: the caller claims it with a
    conditional UPDATE first, so a redelivered task or a racing worker finds nothing to send.
    """
    if not claim_call(policy.model, item.pk, owed="send_seq", done="sent_seq"):
        logger.info("send for %s=%s already claimed; not calling the channel again", item.noun, item.pk)
        return item
    request = _transfer_request(item)
    try:
        result = channel_submit(channel=item.channel, request=request)
    except ChannelTimeout:
        with transaction.atomic():
            item = lock(policy, item.pk)
            if item.status in (SUBMITTED, PROCESSING):
                item.next_poll_at = timezone.now() + policy.setting("UNKNOWN_QUERY_DELAY")
                move(
                    policy,
                    item,
                    "mark_unknown",
                    code="unknown",
                    party=Party.BANK,
                    actor="system",
                    fields=("next_poll_at",),
                    detail={"request_id": request.request_id},
                )
        return item
    except ChannelError as exc:
        # The adapter raises ChannelError only when the bank was not reached or refused the
        # instruction unexecuted (outage, bad request): a failure with its reason, nothing paid.
        result = ChannelResult(
            status=TransferStatus.FAILED,
            request_id=request.request_id,
            reason=exc.reason or reasons.OUTAGE,
            raw_code=exc.raw_code or "channel_error",
        )
    return _apply_and_follow_up(policy, item.pk, result, source="submit")


def transfer_resend(policy: TransferPolicy, pk: int) -> OutboundTransfer:
    """Send again a transfer the bank confirmed it never executed (`submitted` after a resubmit)."""
    item = policy.model.objects.select_related(*policy.poll_related).get(pk=pk)
    if item.status != SUBMITTED:
        return item
    return _send(policy, item)


def transfer_retry(policy: TransferPolicy, pk: int) -> OutboundTransfer:
    """Send again a transfer whose failure was retryable (its backoff is over), unless the policy
    says its money is no longer available (then it stays failed, with a `retry_refused` event)."""
    with transaction.atomic():
        policy.lock_before(pk, "retry")
        item = lock(policy, pk)
        if item.status != FAILED or item.next_poll_at is None:
            return item
        if not policy.may_retry(item):
            item.next_poll_at = None
            item.save(update_fields=["next_poll_at"])
            record(policy, item, code="retry_refused", party=Party.PLATFORM, actor="system", from_status=item.status)
            return item
        item.retry_count += 1
        move(
            policy,
            item,
            "retry",
            code="retrying",
            party=Party.PLATFORM,
            actor="system",
            fields=("retry_count",),
            detail={"retry_count": item.retry_count},
        )
        audit(
            item,
            "retry",
            before={"status": FAILED, "retry_count": item.retry_count - 1},
            after={"status": item.status, "retry_count": item.retry_count},
        )
    return transfer_submit(policy, pk)


# --- destination verification ------------------------------------------------------------------------


def transfer_verify_destination(item: OutboundTransfer, *, request_id: str) -> VerifyResult | ChannelError | None:
    """Ask a channel whether the destination's number belongs to its holder name (outside any
    transaction); a confirmed account is marked verified. None: no channel can verify."""
    answer = destination_verify(account=transfer_account(item), reference=item.owner_reference, request_id=request_id)
    if isinstance(answer, VerifyResult) and answer.ok:
        bank_account_mark_verified(bank_account=item.destination_account)
    return answer


def transfer_verification_unanswered(
    policy: TransferPolicy, item: OutboundTransfer, error: ChannelError, *, actor: str, attempts: int | None = None
) -> bool:
    """A locked transfer's verification went unanswered: ask again after a backoff, with a
    `verification_unanswered` event. With `attempts`, False (nothing written) once that many have
    been made: the caller decides what an unverifiable destination means."""
    earlier = item.events.filter(code="verification_unanswered").count()
    if attempts is not None and earlier + 1 >= attempts:
        return False
    item.next_poll_at = timezone.now() + retry_backoff(policy, earlier)
    item.save(update_fields=["next_poll_at"])
    record(
        policy,
        item,
        code="verification_unanswered",
        party=Party.BANK,
        actor=actor,
        from_status=item.status,
        detail={
            "code": error.reason.code if error.reason else "channel_error",
            "attempt": earlier + 1,
            "next_at": item.next_poll_at.isoformat(),
        },
    )
    return True


# --- applying channel results (submit answers, webhooks, polls) ---------------------------------------


def transfer_apply_channel_result(
    policy: TransferPolicy, result: ChannelResult, *, channel_code: str, source: str
) -> str:
    """Registry handler for the kind's results from webhooks (runs inside the receiver's
    transaction). Never calls a bank: a resend goes to a worker after commit."""
    pk = policy.lookup(result.request_id)
    if pk is None:
        return "unknown_reference"
    item = lock(policy, pk)
    if result.request_id != item.request_id:
        logger.info("result for an earlier request id ignored %s=%s rid=%s", item.noun, pk, result.request_id)
        return "ignored_stale"
    outcome = _apply(policy, item, result, source=source)
    if outcome == "resend":
        publish_step(policy, "resend", item)
    return outcome


def _apply_and_follow_up(policy: TransferPolicy, pk: int, result: ChannelResult, *, source: str) -> OutboundTransfer:
    with transaction.atomic():
        item = lock(policy, pk)
        outcome = _apply(policy, item, result, source=source)
    if outcome == "resend":
        return _send(policy, item)
    return item


def transfer_apply_answer(policy: TransferPolicy, item: OutboundTransfer, result: ChannelResult) -> OutboundTransfer:
    """Apply a poll's answer; a settled transfer's verification query schedules the next check."""
    was_settled = item.status == policy.settled_status
    item = _apply_and_follow_up(policy, item.pk, result, source="poll")
    if was_settled and item.status == policy.settled_status:
        # A transfer that settled during this poll (or under a concurrent webhook, after our
        # claim) already got its schedule from `_settle`.
        next_at = transfer_next_verify_check(policy, item, timezone.now())
        policy.model.objects.filter(pk=item.pk, status=policy.settled_status).update(next_poll_at=next_at)
    return item


def _apply(policy: TransferPolicy, item: OutboundTransfer, result: ChannelResult, *, source: str) -> str:
    """Move a locked transfer according to a channel result; never backwards. Returns what happened."""
    outcome = _apply_result(policy, item, result, source=source)
    save_staged(item)  # the channel reference, when no transition carried it
    return outcome


def _apply_result(policy: TransferPolicy, item: OutboundTransfer, result: ChannelResult, *, source: str) -> str:
    actor = f"channel:{source}"
    wrong_amount = result.amount is not None and result.amount != item.amount
    wrong_currency = bool(result.currency) and result.currency != item.currency
    if wrong_amount or wrong_currency:
        announce_anomaly(
            policy,
            item,
            "amount_mismatch",
            {"reported": [result.amount, result.currency], "expected": [item.amount, item.currency]},
        )
        return "rejected_mismatch"
    if result.channel_reference and not item.channel_reference:
        stage(item, channel_reference=result.channel_reference[:128])
    kind = result.status
    if kind in (TransferStatus.ACCEPTED, TransferStatus.PROCESSING, TransferStatus.HELD):
        return _apply_pending(policy, item, held=kind == TransferStatus.HELD, actor=actor)
    if kind == TransferStatus.SUCCEEDED:
        if item.status in OutboundTransfer.IN_FLIGHT:
            _settle(policy, item, actor)
            return "applied"
        return "no_change" if item.status in policy.settled_family else "ignored_stale"
    if kind == TransferStatus.RETURNED:
        if item.status in OutboundTransfer.IN_FLIGHT:
            _settle(policy, item, actor)
        if item.status in policy.returnable:
            _return(policy, item, actor, result)
            return "applied"
        return "no_change" if item.status in policy.returned_family else "ignored_stale"
    if kind == TransferStatus.FAILED:
        if item.status in OutboundTransfer.IN_FLIGHT:
            _fail(policy, item, actor, result)
            return "applied"
        if item.status == policy.settled_status:
            announce_anomaly(policy, item, "late_failure_after_success", {"raw_code": result.raw_code})
        return "ignored_stale"
    if kind == TransferStatus.NOT_FOUND:
        return _apply_not_found(policy, item, actor)
    return "no_change"


def _apply_pending(policy: TransferPolicy, item: OutboundTransfer, *, held: bool, actor: str) -> str:
    status = item.status
    if status in (SUBMITTED, UNKNOWN):
        item.next_poll_at = timezone.now() + policy.setting("POLL_INTERVAL")
        if held:
            policy.on_delay(item)
        move(
            policy,
            item,
            "mark_processing",
            code="held_by_bank" if held else "processing",
            party=Party.BANK,
            actor=actor,
            fields=("next_poll_at",),
        )
        return "applied"
    if status == PROCESSING:
        # The submit answer usually moved it to processing already; a hold reported later must
        # still reach the timeline (once: polls keep seeing it), or nobody learns the bank holds it.
        last = item.events.order_by("-created_at", "-id").values_list("code", flat=True).first()
        if held and last != "held_by_bank":
            policy.on_delay(item)
            save_staged(item)
            record(policy, item, code="held_by_bank", party=Party.BANK, actor=actor, from_status=status)
            return "applied"
        return "no_change"
    logger.info("stale %s for %s=%s in %s ignored", "hold" if held else "progress", item.noun, item.pk, status)
    return "ignored_stale"


def _apply_not_found(policy: TransferPolicy, item: OutboundTransfer, actor: str) -> str:
    if item.status == SUBMITTED and item.channel is not None and item.submitted_at is not None:
        # Committed as submitted, yet the bank never saw it: once our own call can no longer be
        # on its way (its timeout has passed), the process died between commit and call (G3).
        # Without this the transfer would sit in `submitted`, queried forever.
        window = timedelta(seconds=item.channel.timeout_seconds) + policy.setting("UNKNOWN_QUERY_DELAY")
        if timezone.now() - item.submitted_at > window:
            move(
                policy,
                item,
                "mark_unknown",
                code="unknown",
                party=Party.PLATFORM,
                actor=actor,
                detail={"request_id": item.request_id, "why": "submitted but the call never reached the bank"},
            )
    if item.status != UNKNOWN:
        return "no_change"
    if hold_if_frozen(policy, item, actor=actor):
        return "held"
    item.submitted_at = timezone.now()
    item.next_poll_at = item.submitted_at + policy.setting("POLL_INTERVAL")
    item.send_seq += 1
    move(
        policy,
        item,
        "resubmit",
        code="resubmitted",
        party=Party.PLATFORM,
        actor=actor,
        fields=("next_poll_at", "submitted_at", "send_seq"),
        detail={"request_id": item.request_id, "why": "bank confirmed it never executed the request"},
    )
    return "resend"


def transfer_next_verify_check(policy: TransferPolicy, item: OutboundTransfer, now: datetime) -> datetime | None:
    return verify_next_check(
        since=getattr(item, policy.settled_at_field), now=now, checks=policy.setting("VERIFY_CHECKS")
    )


def _settle(policy: TransferPolicy, item: OutboundTransfer, actor: str) -> None:
    now = timezone.now()
    setattr(item, policy.settled_at_field, now)
    item.verify_until = verify_window_end(since=now, checks=policy.setting("VERIFY_CHECKS"))
    item.next_poll_at = transfer_next_verify_check(policy, item, now)
    item.failure_code = ""
    item.responsible_party = ""
    policy.before_settle(item)
    move(
        policy,
        item,
        policy.settle_transition,
        code=policy.settled_status,
        party=Party.BANK,
        actor=actor,
        fields=(policy.settled_at_field, "verify_until", "next_poll_at", "failure_code", "responsible_party"),
    )
    # Postings last: they update balance rows every transfer of the kind shares, so their row locks
    # are held for the rest of this transaction only.
    policy.after_settle(item)


def _return(policy: TransferPolicy, item: OutboundTransfer, actor: str, result: ChannelResult) -> None:
    item.next_poll_at = None
    item.failure_code = result.reason.code if result.reason else "returned"
    item.responsible_party = result.reason.responsible_party if result.reason else policy.return_party
    move(
        policy,
        item,
        policy.return_transition,
        code=policy.returned_code,
        party=item.responsible_party,
        actor=actor,
        fields=("next_poll_at", "failure_code", "responsible_party"),
        message_key=f"{item.noun}.{policy.returned_code}.{item.failure_code}",
        detail={"raw_code": result.raw_code},
    )
    policy.on_return(item, actor=actor, result=result)


def _fail(policy: TransferPolicy, item: OutboundTransfer, actor: str, result: ChannelResult) -> None:
    reason = result.reason
    item.failure_code = reason.code if reason else (result.raw_code or "failed")
    item.responsible_party = reason.responsible_party if reason else Party.BANK
    retryable = bool(reason and reason.retryable) and item.retry_count < policy.setting("MAX_RETRIES")
    item.next_poll_at = timezone.now() + retry_backoff(policy, item.retry_count) if retryable else None
    policy.before_fail(item, retryable=retryable)
    move(
        policy,
        item,
        "fail",
        code="failed",
        party=item.responsible_party,
        actor=actor,
        fields=("failure_code", "responsible_party", "next_poll_at"),
        message_key=f"{item.noun}.failed.{item.failure_code}",
        detail={"raw_code": result.raw_code, "retryable": retryable, "retry_count": item.retry_count},
    )
    policy.after_fail(item, retryable=retryable)


# --- freeze holds (G17) -----------------------------------------------------------------------------


def _freeze_hold(item: OutboundTransfer):
    return freeze_hold_for(
        merchant_id=item.merchant_id, customer_ids=[item.customer_id], bank_account=item.destination_account
    )


def hold_if_frozen(policy: TransferPolicy, item: OutboundTransfer, *, actor: str) -> bool:
    """Hold a locked transfer, about to be sent (approved) or resent (unknown, the bank said it never
    executed it), whose customer or destination account is frozen; True if held.

    Nothing reaches the bank. One `held_frozen` event names the freezes and who answers for them
    (platform for the risk engine's, else merchant); the "held_frozen" anomaly becomes a P1 alert;
    the customer is not told it failed. The poller looks again every FREEZE_HOLD_RECHECK; lifting
    the freeze releases it (`transfer_release_freeze_hold`).
    """
    hold = _freeze_hold(item)
    if hold is None:
        return False
    policy.on_freeze_hold(item, hold=hold)
    item.next_poll_at = timezone.now() + settings.FREEZE_HOLD_RECHECK
    move(
        policy,
        item,
        "hold_for_freeze",
        code="held_frozen",
        party=hold.party,
        actor=actor,
        fields=("next_poll_at",),
        detail=hold.detail,
    )
    announce_anomaly(policy, item, "held_frozen", {**hold.detail, "amount": item.amount, "currency": item.currency})
    return True


def transfer_release_freeze_hold(policy: TransferPolicy, pk: int, *, actor: str = "system") -> OutboundTransfer:
    """Release a transfer held by a freeze once no freeze holds it: back to `approved`, its submission
    scheduled as after any approval. Exactly once: only a freeze-held transfer moves, under its lock,
    and only an `approved` one is ever sent. While a freeze still holds it, the next look is pushed
    by FREEZE_HOLD_RECHECK. Callers: the `account_unfrozen` receiver, the poller's sweep."""
    with transaction.atomic():
        item = lock(policy, pk)
        if not policy.is_freeze_held(item):
            return item
        now = timezone.now()
        if _freeze_hold(item) is not None:
            item.next_poll_at = now + settings.FREEZE_HOLD_RECHECK
            item.save(update_fields=["next_poll_at"])
            return item
        policy.on_freeze_release(item)
        item.next_poll_at = now + policy.setting("SUBMIT_GRACE")
        move(
            policy,
            item,
            "release_freeze_hold",
            code="hold_released",
            party=Party.PLATFORM,
            actor=actor,
            fields=("next_poll_at",),
        )
        publish_step(policy, "submit", item)
    return item


def transfer_schedule_submit(policy: TransferPolicy, item: OutboundTransfer) -> None:
    """Queue the submission of a locked, just approved transfer after commit; if the broker drops
    the task (or a worker dies before acking), the poller submits it once SUBMIT_GRACE has passed."""
    item.next_poll_at = timezone.now() + policy.setting("SUBMIT_GRACE")
    item.save(update_fields=["next_poll_at"])
    publish_step(policy, "submit", item)


def transfer_kind_register(policy: TransferPolicy) -> None:
    """Make a kind known to the kernel (receivers, tasks) and the owner of its request-id prefixes
    for results coming from webhooks (apps.gateways.registry). Called from the kind's AppConfig."""
    policy_register(policy)
    for prefix in policy.prefixes:
        registry.register(prefix, partial(transfer_apply_channel_result, policy))
