"""The steps every write to a transfer is made of: lock it, stage fields, move it through one
transition (save, timeline event, announcement after commit), record an event without a move.

Callers hold a transaction. Timeline events are written with the domain's event model and
announced through the domain's policy, so listeners keep their own signals.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from importlib import import_module

from django.db import transaction

from apps.common.audit import audit_record
from apps.common.polling import backoff
from apps.common.publish import publish_after_commit
from apps.transfers.models import OutboundTransfer, TransferEvent
from apps.transfers.policy import TransferPolicy

logger = logging.getLogger(__name__)


def lock(policy: TransferPolicy, pk: int) -> OutboundTransfer:
    """Re-read a transfer with its row lock (inside a transaction)."""
    # of=("self",): the joined rows are nullable, and PostgreSQL refuses FOR UPDATE on an outer join.
    return policy.model.objects.select_for_update(of=("self",)).select_related(*policy.lock_related).get(pk=pk)


def record(
    policy: TransferPolicy,
    item: OutboundTransfer,
    *,
    code: str,
    party: str,
    actor: str,
    from_status: str = "",
    message_key: str | None = None,
    detail: dict | None = None,
) -> TransferEvent:
    """Write one timeline event (no transition); listeners hear of it inside the transaction."""
    event = policy.event_model.objects.create(
        **{policy.event_fk: item},
        code=code,
        from_status=from_status,
        to_status=item.status,
        message_key=message_key or f"{item.noun}.{code}",
        responsible_party=party,
        actor=actor[:150],
        detail=detail or {},
    )
    policy.event_recorded_signal.send(sender=policy.model, **{policy.event_fk: item}, event=event)
    return event


def move(
    policy: TransferPolicy,
    item: OutboundTransfer,
    transition: str,
    *,
    code: str,
    party: str,
    actor: str,
    fields: Sequence[str] = (),
    message_key: str | None = None,
    detail: dict | None = None,
) -> TransferEvent:
    """Run one FSM transition on a locked transfer, save it with `fields` and whatever was staged,
    write its event, announce the change after commit."""
    before = item.status
    getattr(item, transition)()
    item.save(update_fields=list(dict.fromkeys(["status", "updated_at", *fields, *take_staged(item)])))
    event = record(
        policy, item, code=code, party=party, actor=actor, from_status=before, message_key=message_key, detail=detail
    )
    announce_move(policy, item, from_status=before, code=code, party=party)
    return event


def announce_move(policy: TransferPolicy, item: OutboundTransfer, *, from_status: str, code: str, party: str) -> None:
    """Send the domain's state-changed signal for a transition once the transaction commits."""
    payload = {
        **policy.signal_ids(item),
        "merchant_id": item.merchant_id,
        "from_status": from_status,
        "to_status": item.status,
        "event_code": code,
        "responsible_party": party,
    }
    transaction.on_commit(lambda: policy.state_changed_signal.send(sender=policy.model, **payload), robust=True)


def announce_anomaly(policy: TransferPolicy, item: OutboundTransfer, anomaly: str, detail: dict) -> None:
    """Something a human may need to see: logged now, the domain's anomaly signal after commit."""
    logger.warning("%s anomaly id=%s kind=%s detail=%s", item.noun, item.pk, anomaly, detail)
    payload = {**policy.signal_ids(item), "merchant_id": item.merchant_id, policy.anomaly_key: anomaly}
    payload["detail"] = detail
    transaction.on_commit(lambda: policy.anomaly_signal.send(sender=policy.model, **payload), robust=True)


def publish_step(policy: TransferPolicy, step: str, item: OutboundTransfer) -> None:
    """Queue the kind's "submit" or "resend" task for `item` after commit."""
    if policy.tasks is None:
        import_module(policy.tasks_module)  # it makes the tasks (apps.transfers.tasks)
    publish_after_commit(getattr(policy.tasks, step), item.pk)


def stage(item: OutboundTransfer, **values) -> None:
    """Set fields on a locked transfer to be written by its next `move` (or `save_staged`), so a
    value learnt on the way to a transition costs no UPDATE of its own."""
    for name, value in values.items():
        setattr(item, name, value)
    item._staged_fields = (*getattr(item, "_staged_fields", ()), *values)


def take_staged(item: OutboundTransfer) -> tuple[str, ...]:
    staged = getattr(item, "_staged_fields", ())
    item._staged_fields = ()
    return staged


def save_staged(item: OutboundTransfer) -> None:
    if staged := take_staged(item):
        item.save(update_fields=list(dict.fromkeys(staged)))


def retry_backoff(policy: TransferPolicy, retry_count: int) -> timedelta:
    return backoff(retry_count, base=policy.setting("RETRY_BASE"), cap=policy.setting("RETRY_CAP"))


def audit(item: OutboundTransfer, verb: str, *, before: dict | None = None, after: dict | None = None) -> None:
    """The audit row of a staff or money-moving action on a transfer ("refund.retry", "payout.cancel")."""
    audit_record(
        action=f"{item.noun}.{verb}",
        target_type=item.noun,
        target_id=item.pk,
        merchant_id=item.merchant_id,
        before=before,
        after=after,
    )
