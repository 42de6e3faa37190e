"""Getting money back from a payout or withdrawal that went wrong: the recall asked of the channel,
and the incident that tracks recovery (freeze, recall, negotiated returns, legal escalation) until
it is resolved with a root cause, joining the case library staff search.

Recall calls never run inside a transaction: `recall_requested` commits with one call owed
(`recall_seq`), claimed before it is made, so a redelivered task makes no second call.
"""

from __future__ import annotations

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from apps.accounts.models import BankAccount, Customer, Merchant
from apps.accounts.selectors import bank_account_is_frozen, customer_is_frozen
from apps.accounts.services import account_freeze
from apps.common.errors import ConflictError, InvalidStateError, NotFoundError, ServiceError, UnprocessableError
from apps.common.polling import claim_call
from apps.common.publish import publish_after_commit
from apps.gateways.base import ChannelError, RecallResult
from apps.gateways.services import channel_recall
from apps.payouts.models import Disbursement, Incident, IncidentStep, Party
from apps.payouts.postings import all_back, incident_step, money_back, open_incident
from apps.payouts.services import DISBURSEMENTS, disbursement_hold
from apps.transfers.lifecycle import announce_anomaly, audit, lock, move, record, retry_backoff

S = Disbursement.Status


# --- recall -------------------------------------------------------------------------------------


def payout_recall_request(*, disbursement_id: int, actor: str, note: str = "") -> Disbursement:
    """Ask the channel to pull back a paid payout or withdrawal (again, after a refused recall).

    Commits `recall_requested` with one recall call owed, sent by a worker after commit (the
    poller sends it if that task is lost). ConflictError unless paid or recall_failed.
    """
    with transaction.atomic():
        d = lock(DISBURSEMENTS, disbursement_id)
        if d.status not in (S.PAID, S.RECALL_FAILED) or d.channel is None:
            raise InvalidStateError(
                format_lazy(
                    _("Only a paid {kind} can be recalled (this one is {status})."), kind=d.kind, status=d.status
                )
            )
        before = {"status": d.status}
        d.recall_seq += 1
        d.next_poll_at = timezone.now() + settings.PAYOUT_POLL_INTERVAL
        move(
            DISBURSEMENTS,
            d,
            "request_recall",
            code="recall_requested",
            party=Party.PLATFORM,
            actor=actor,
            fields=["recall_seq", "next_poll_at"],
            detail={"note": note},
        )
        incident_step(open_incident(d), IncidentStep.Action.RECALL_REQUESTED, actor=actor, notes=note)
        audit(d, "recall", before=before, after={"status": d.status, "note": note})
        pk = d.pk
        from apps.payouts.tasks import payout_recall_task  # tasks import this module

        publish_after_commit(payout_recall_task, pk)
    return d


def payout_recall_send(*, disbursement_id: int, from_poll: bool = False) -> Disbursement:
    """Make the owed recall call (outside any transaction) and apply the channel's answer: the
    money is coming back → `recalled` and posted back to the source; refused → `recall_failed`
    (negotiation and legal steps follow, by people); no answer → asked again later. A poll owes a
    fresh call (the bank answers a repeated recall the same way)."""
    d = Disbursement.objects.select_related("channel").get(pk=disbursement_id)
    if d.status != S.RECALL_REQUESTED:
        return d
    if from_poll:
        with transaction.atomic():
            d = lock(DISBURSEMENTS, disbursement_id)
            if d.status != S.RECALL_REQUESTED:
                return d
            if d.recall_sent_seq >= d.recall_seq:
                d.recall_seq += 1
                d.save(update_fields=["recall_seq"])
    if not claim_call(Disbursement, d.pk, owed="recall_seq", done="recall_sent_seq"):
        return d
    try:
        answer = channel_recall(channel=d.channel, request_id=d.request_id, reference=d.owner_reference)
    except (ChannelError, NotImplementedError) as exc:
        with transaction.atomic():
            d = lock(DISBURSEMENTS, disbursement_id)
            if d.status == S.RECALL_REQUESTED:
                d.next_poll_at = timezone.now() + retry_backoff(DISBURSEMENTS, 1)
                d.save(update_fields=["next_poll_at"])
                record(
                    DISBURSEMENTS,
                    d,
                    code="recall_unanswered",
                    party=Party.BANK,
                    actor="system",
                    from_status=d.status,
                    detail={"error": type(exc).__name__},
                )
        return d
    with transaction.atomic():
        d = lock(DISBURSEMENTS, disbursement_id)
        if d.status != S.RECALL_REQUESTED:
            return d
        _apply_recall(d, answer)
    return d


def _apply_recall(d: Disbursement, answer: RecallResult) -> None:
    incident = open_incident(d)
    d.next_poll_at = None
    if answer.ok:
        move(
            DISBURSEMENTS,
            d,
            "mark_recalled",
            code="recalled",
            party=Party.BANK,
            actor="channel:recall",
            fields=["next_poll_at"],
        )
        all_back(d, "recalled", "channel:recall", f"{d.kind} {d.pk} recalled")
        return
    move(
        DISBURSEMENTS,
        d,
        "mark_recall_failed",
        code="recall_failed",
        party=Party.BANK,
        actor="channel:recall",
        fields=["next_poll_at"],
        detail={"raw_code": answer.raw_code},
    )
    announce_anomaly(
        DISBURSEMENTS, d, "recall_failed", {"raw_code": answer.raw_code, "amount": d.amount, "currency": d.currency}
    )
    incident_step(
        incident, IncidentStep.Action.RECALL_FAILED, actor="channel:recall", detail={"raw_code": answer.raw_code}
    )
    if incident is not None and incident.status in (Incident.Status.OPEN, Incident.Status.RECOVERING):
        incident.status = Incident.Status.NEGOTIATING
        incident.save(update_fields=["status"])


# --- incidents ----------------------------------------------------------------------------------


def _lock_incident(incident_id: int, merchant: Merchant | None = None) -> Incident:
    rows = Incident.objects.select_for_update()
    if merchant is not None:
        rows = rows.filter(merchant=merchant)
    incident = rows.filter(pk=incident_id).first()
    if incident is None:
        raise NotFoundError(_("No such incident."))
    return incident


def _open_only(incident: Incident) -> None:
    if incident.status == Incident.Status.RESOLVED:
        raise ConflictError(_("The incident is resolved."), code="incident_resolved")


def incident_open(*, disbursement_id: int, summary: str, actor: str) -> Incident:
    """Open the recovery file of a payout or withdrawal that went wrong; one open incident per movement
    (ConflictError for a second)."""
    with transaction.atomic():
        d = lock(DISBURSEMENTS, disbursement_id)
        try:
            with transaction.atomic():
                incident = Incident.objects.create(
                    merchant=d.merchant,
                    disbursement=d,
                    summary=summary,
                    amount_at_risk=d.amount,
                    currency=d.currency,
                    opened_by=actor[:150],
                )
        except IntegrityError:
            raise ConflictError(
                format_lazy(_("This {kind} already has an open incident."), kind=d.kind), code="incident_open"
            ) from None
        incident_step(incident, IncidentStep.Action.OPENED, actor=actor, notes=summary, detail={"status": d.status})
        record(
            DISBURSEMENTS,
            d,
            code="incident_opened",
            party=Party.PLATFORM,
            actor=actor,
            from_status=d.status,
            detail={"incident_id": incident.pk},
        )
    return incident


def incident_freeze(*, incident_id: int, actor: str, notes: str = "", merchant: Merchant | None = None) -> Incident:
    """Stop the money: hold the movement if it has not reached a bank, freeze the destination
    account, the withdrawing customer, and any of the merchant's customers holding the destination
    account (money that landed internally stays on the platform). One step records what was done."""
    with transaction.atomic():
        incident = _lock_incident(incident_id, merchant)
        _open_only(incident)
        d = lock(DISBURSEMENTS, incident.disbursement_id)
        held = False
        if d.status in (S.PENDING_APPROVAL, S.APPROVED):
            disbursement_hold(d, reason=f"incident {incident.pk}", actor=actor, detail={"incident_id": incident.pk})
            held = True
        reason = f"incident {incident.pk}: {incident.summary[:200]}"
        frozen: list[dict] = []
        account = d.destination_account
        if not bank_account_is_frozen(bank_account=account):
            account_freeze(merchant=d.merchant, bank_account=account, reason=reason, actor_label=actor[:100])
            frozen.append({"bank_account": account.masked_number})
        receivers = Customer.objects.filter(
            merchant=d.merchant,
            pk__in=BankAccount.objects.filter(
                merchant=d.merchant, fingerprint=account.fingerprint, customer__isnull=False
            ).values("customer_id"),
        )
        if d.customer_id:
            receivers = receivers | Customer.objects.filter(pk=d.customer_id)
        for customer in receivers.distinct().order_by("pk"):
            if not customer_is_frozen(customer=customer):
                account_freeze(merchant=d.merchant, customer=customer, reason=reason, actor_label=actor[:100])
                frozen.append({"customer": customer.external_id})
        incident_step(
            incident,
            IncidentStep.Action.FREEZE,
            actor=actor,
            notes=notes,
            detail={"held": held, "frozen": frozen, "status": d.status},
        )
    return incident


def incident_recall(*, incident_id: int, actor: str, notes: str = "", merchant: Merchant | None = None) -> Incident:
    """Ask the channel to pull the money back (see `payout_recall_request`); the incident is recovering."""
    with transaction.atomic():
        incident = _lock_incident(incident_id, merchant)
        _open_only(incident)
        payout_recall_request(disbursement_id=incident.disbursement_id, actor=actor, note=notes)
        if incident.status in (Incident.Status.OPEN, Incident.Status.NEGOTIATING):
            incident.status = Incident.Status.RECOVERING
            incident.save(update_fields=["status"])
    return incident


def incident_note(
    *, incident_id: int, actor: str, notes: str, negotiation: bool = True, merchant: Merchant | None = None
) -> Incident:
    """Record progress: a negotiation step with the recipient (the incident is then negotiating) or a note."""
    with transaction.atomic():
        incident = _lock_incident(incident_id, merchant)
        _open_only(incident)
        action = IncidentStep.Action.NEGOTIATION if negotiation else IncidentStep.Action.NOTE
        incident_step(incident, action, actor=actor, notes=notes)
        if negotiation and incident.status in (Incident.Status.OPEN, Incident.Status.RECOVERING):
            incident.status = Incident.Status.NEGOTIATING
            incident.save(update_fields=["status"])
    return incident


def incident_record_return(
    *, incident_id: int, amount: int, actor: str, notes: str = "", merchant: Merchant | None = None
) -> Incident:
    """Money the recipient sent back after a negotiation: posted from cash back to the source (the
    merchant's payable or the customer's balance) under "<kind>:<id>:recovered:<n>". At most what
    is still at risk (UnprocessableError otherwise); only for a paid movement whose recall did not
    bring the money back."""
    with transaction.atomic():
        incident = _lock_incident(incident_id, merchant)
        _open_only(incident)
        d = lock(DISBURSEMENTS, incident.disbursement_id)
        if d.status not in (S.PAID, S.RECALL_FAILED):
            raise InvalidStateError(
                format_lazy(
                    _("Returns are recorded for a paid {kind} whose recall failed (this one is {status})."),
                    kind=d.kind,
                    status=d.status,
                )
            )
        remaining = incident.amount_at_risk - incident.amount_recovered
        if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= remaining:
            raise UnprocessableError(
                format_lazy(_("At most {remaining} is still to recover."), remaining=remaining),
                code="amount_exceeds_at_risk",
                fields={"amount": [format_lazy(_("Between 1 and {remaining}."), remaining=remaining)]},
            )
        n = incident.steps.filter(action=IncidentStep.Action.FUNDS_RETURNED).count() + 1
        money_back(d, f"recovered:{n}", amount, f"{d.kind} {d.pk}: negotiated return {n}")
        incident.amount_recovered += amount
        if incident.status in (Incident.Status.OPEN, Incident.Status.RECOVERING):
            incident.status = Incident.Status.NEGOTIATING
        incident.save(update_fields=["amount_recovered", "status"])
        incident_step(
            incident,
            IncidentStep.Action.FUNDS_RETURNED,
            actor=actor,
            notes=notes,
            amount=amount,
            detail={"ledger_reference": f"{d.owner_reference}:recovered:{n}"},
        )
        record(
            DISBURSEMENTS,
            d,
            code="funds_returned",
            party=Party.CUSTOMER if d.customer_id else Party.MERCHANT,
            actor=actor,
            from_status=d.status,
            detail={"amount": amount, "incident_id": incident.pk},
        )
    return incident


def incident_escalate(*, incident_id: int, actor: str, notes: str = "", merchant: Merchant | None = None) -> Incident:
    """Hand the incident to legal (recall refused, negotiation failed)."""
    with transaction.atomic():
        incident = _lock_incident(incident_id, merchant)
        _open_only(incident)
        incident.status = Incident.Status.LEGAL
        incident.save(update_fields=["status"])
        incident_step(incident, IncidentStep.Action.LEGAL_ESCALATION, actor=actor, notes=notes)
    return incident


def incident_resolve(
    *, incident_id: int, root_cause: str, category: str, actor: str, notes: str = "", merchant: Merchant | None = None
) -> Incident:
    """Close an incident with its root cause and category: it joins the searchable case library."""
    if not root_cause.strip():
        raise ServiceError(_("A root cause is required."), fields={"root_cause": [_("Required.")]})
    if category not in Incident.Category.values:
        raise ServiceError(_("Unknown category."), fields={"category": [_("Unknown category.")]})
    with transaction.atomic():
        incident = _lock_incident(incident_id, merchant)
        _open_only(incident)
        incident.status = Incident.Status.RESOLVED
        incident.root_cause = root_cause
        incident.category = category
        incident.resolved_by = actor[:150]
        incident.resolved_at = timezone.now()
        incident.save(update_fields=["status", "root_cause", "category", "resolved_by", "resolved_at"])
        incident_step(
            incident,
            IncidentStep.Action.RESOLVED,
            actor=actor,
            notes=notes,
            detail={"category": category, "amount_recovered": incident.amount_recovered},
        )
    return incident
