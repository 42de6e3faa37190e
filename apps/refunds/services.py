"""Every write to a refund: request, decide, review, submit, apply channel results, poll, retry, cancel.

Locking: each service re-reads the refund with `select_for_update()`; requests and retries lock the
order row first, which serialises everything that reserves money against one order (PostgreSQL).
Channel calls never run inside a transaction: the refund is committed as `submitted` *before* the
bank is called, so a crash after the call is recovered by querying, never by a blind resend.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.core import signing
from django.db import connection, transaction
from django.db.models import Sum
from django.urls import reverse
from django.utils import timezone
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from apps.accounts.models import Merchant
from apps.accounts.selectors import freeze_hold_for
from apps.accounts.services import bank_account_get_or_create, bank_account_mark_verified
from apps.common.audit import audit_record
from apps.common.crypto import fingerprint
from apps.common.errors import InvalidStateError, ServiceError
from apps.common.polling import backoff, claim_call, claim_due, verify_next_check, verify_window_end
from apps.common.publish import publish_after_commit
from apps.gateways import reasons
from apps.gateways.base import (
    Account,
    ChannelError,
    ChannelResult,
    ChannelTimeout,
    TransferRequest,
    TransferStatus,
    VerifyResult,
)
from apps.gateways.services import (
    Query,
    channel_for,
    channel_query,
    channel_query_many,
    channel_submit,
    destination_verify,
)
from apps.ledger.models import LedgerAccount
from apps.ledger.services import Line, ledger_account_get_or_create, ledger_post
from apps.orders.models import Order
from apps.orders.selectors import order_for_refund
from apps.refunds.decision import Decision, decide_refund
from apps.refunds.models import Party, Refund, RefundEvent, SupportTicket
from apps.refunds.routing import guidance_for
from apps.refunds.signals import refund_anomaly, refund_event_recorded, refund_state_changed
from apps.risk.services import case_close, case_open, risk_record

logger = logging.getLogger(__name__)

S = Refund.Status
PROGRESS_SALT = "refunds.progress"


# --- helpers ------------------------------------------------------------------------------------


def _lock(refund_id: int) -> Refund:
    # of=("self",): the joined rows are nullable, and PostgreSQL refuses FOR UPDATE on an outer join.
    return (
        Refund.objects.select_for_update(of=("self",))
        .select_related("channel", "destination_account")
        .get(pk=refund_id)
    )


def _record(
    refund: Refund,
    *,
    code: str,
    party: str,
    actor: str,
    from_status: str = "",
    message_key: str | None = None,
    detail: dict | None = None,
) -> RefundEvent:
    event = RefundEvent.objects.create(
        refund=refund,
        code=code,
        from_status=from_status,
        to_status=refund.status,
        message_key=message_key or f"refund.{code}",
        responsible_party=party,
        actor=actor,
        detail=detail or {},
    )
    refund_event_recorded.send(sender=Refund, refund=refund, event=event)
    return event


def _move(
    refund: Refund,
    transition: str,
    *,
    code: str,
    party: str,
    actor: str,
    fields: tuple[str, ...] = (),
    message_key: str | None = None,
    detail: dict | None = None,
) -> RefundEvent:
    """Run one FSM transition on a locked refund, save it, write its event, announce after commit."""
    before = refund.status
    getattr(refund, transition)()
    refund.save(update_fields=["status", "updated_at", *fields, *_take_staged(refund)])
    event = _record(
        refund, code=code, party=party, actor=actor, from_status=before, message_key=message_key, detail=detail
    )
    _announce_move(refund, from_status=before, code=code, party=party)
    return event


def _announce_move(refund: Refund, *, from_status: str, code: str, party: str) -> None:
    """Send `refund_state_changed` for a transition once the transaction commits."""
    payload = {
        "refund_id": refund.pk,
        "merchant_id": refund.merchant_id,
        "from_status": from_status,
        "to_status": refund.status,
        "event_code": code,
        "responsible_party": party,
    }
    transaction.on_commit(lambda: refund_state_changed.send(sender=Refund, **payload), robust=True)


def _stage(refund: Refund, **values) -> None:
    """Set fields on a locked refund to be written by its next `_move` (or `_save_staged`), so a
    value learnt on the way to a transition costs no UPDATE of its own."""
    for name, value in values.items():
        setattr(refund, name, value)
    refund._staged_fields = (*getattr(refund, "_staged_fields", ()), *values)


def _take_staged(refund: Refund) -> tuple[str, ...]:
    staged = getattr(refund, "_staged_fields", ())
    refund._staged_fields = ()
    return staged


def _push_eta(refund: Refund) -> None:
    """A delay the customer is told about comes with a new expected arrival: at least
    `REFUND_DELAY_ETA` from now (staged for the transition that records the delay)."""
    later = timezone.now() + settings.REFUND_DELAY_ETA
    if refund.expected_arrival_at is None or refund.expected_arrival_at < later:
        _stage(refund, expected_arrival_at=later)


def _save_staged(refund: Refund) -> None:
    if staged := _take_staged(refund):
        refund.save(update_fields=staged)


def _anomaly(refund: Refund, kind: str, detail: dict) -> None:
    logger.warning("refund anomaly refund=%s kind=%s detail=%s", refund.pk, kind, detail)
    payload = {"refund_id": refund.pk, "merchant_id": refund.merchant_id, "kind": kind, "detail": detail}
    transaction.on_commit(lambda: refund_anomaly.send(sender=Refund, **payload), robust=True)


def _post(refund: Refund, suffix: str, debit: tuple[str, str], credit: tuple[str, str], description: str) -> None:
    accounts = [
        ledger_account_get_or_create(owner=owner, kind=kind, currency=refund.currency)
        for owner, kind in (debit, credit)
    ]
    ledger_post(
        reference=f"refund:{refund.pk}:{suffix}",
        kind=f"refund_{suffix.split(':')[0]}",
        lines=[Line(accounts[0], refund.amount), Line(accounts[1], -refund.amount)],
        description=description,
    )


_MERCHANT = "merchant_payable"
_IN_FLIGHT = LedgerAccount.Kind.REFUNDS_IN_FLIGHT
_CASH = LedgerAccount.Kind.CASH_CLEARING


def _merchant_owner(refund: Refund) -> str:
    return f"merchant:{refund.merchant_id}"


def _backoff(retry_count: int) -> timedelta:
    return backoff(retry_count, base=settings.REFUND_RETRY_BASE, cap=settings.REFUND_RETRY_CAP)


def refund_progress_token(refund: Refund) -> str:
    return signing.dumps(refund.public_token, salt=PROGRESS_SALT, compress=True)


def refund_progress_url(refund: Refund) -> str:
    # Signed once per instance: a new refund's first message and the API's answer both carry it.
    url = refund.__dict__.get("_progress_url")
    if url is None:
        path = reverse("track:refund", kwargs={"token": refund_progress_token(refund)})
        url = refund._progress_url = settings.PUBLIC_BASE_URL.rstrip("/") + path
    return url


def refund_get_by_progress_token(token: str) -> Refund | None:
    """The refund a customer link points at, or None when tampered or expired."""
    try:
        public_token = signing.loads(token, salt=PROGRESS_SALT, max_age=settings.REFUND_LINK_MAX_AGE)
    except signing.BadSignature:
        return None
    return Refund.objects.filter(public_token=public_token).first()


def refundable_remaining(*, order: Order) -> int:
    reserved = (
        Refund.objects.filter(order=order, status__in=Refund.RESERVING).aggregate(total=Sum("amount"))["total"] or 0
    )
    return order.amount - reserved


def _lock_order(order: Order) -> int:
    """Lock the order row (serialising every reservation against it) and return what is still
    refundable. Call inside a transaction.

    Two statements on purpose: a reservation sum inside the locking SELECT would be read with the
    snapshot taken *before* waiting for the lock, so it would miss the refund the previous holder
    just committed (READ COMMITTED re-checks only the locked row); a statement issued after the
    lock is granted sees it.
    """
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""  # SQLite: no row locks
    with connection.cursor() as cursor:
        # Written out: on this path the ORM's building of the two querysets cost more than the
        # statements themselves.
        cursor.execute(f"SELECT amount FROM orders_order WHERE id = %s{lock}", [order.pk])  # noqa: S608
        (captured,) = cursor.fetchone()
        reserving = ", ".join(["%s"] * len(Refund.RESERVING))
        cursor.execute(
            f"SELECT COALESCE(SUM(amount), 0) FROM refunds_refund WHERE order_id = %s AND status IN ({reserving})",  # noqa: S608
            [order.pk, *Refund.RESERVING],
        )
        (reserved,) = cursor.fetchone()
    return captured - reserved


# --- request and decision -------------------------------------------------------------------------


def refund_request(
    *,
    merchant: Merchant,
    order_external_id: str,
    amount: int,
    reason: str,
    reason_text: str = "",
    currency: str | None = None,
    device_id: str = "",
    ip: str | None = None,
    destination_account: dict | None = None,
    actor: str,
) -> Refund:
    """Open a refund against an order, decide it, and act on the decision.

    The decision (apps.refunds.decision) reads history and usage before any lock is taken. Then
    the order row is locked so concurrent requests see each other's reservations: succeeded plus
    reserved refunds never exceed the captured amount. Approved → submission scheduled;
    manual_review → a review case; tech_support → a support ticket, no money moves; rejected →
    refused with an appeal route. Raises ServiceError (nothing written) for an unknown order, a
    currency other than the order's, or an amount over what is refundable.
    """
    order = order_for_refund(merchant=merchant, external_id=order_external_id)
    if order is None:
        raise ServiceError(_("Unknown order."), fields={"order": [_("No such order.")]})
    if currency is not None and currency != order.currency:
        raise ServiceError(
            _("Currency differs from the order's."),
            fields={
                "currency": [format_lazy(_("Must be the order's currency ({currency})."), currency=order.currency)]
            },
        )
    decision = decide_refund(
        order=order,
        amount=amount,
        reason=reason,
        reason_text=reason_text,
        context=_risk_context(order, device_id=device_id, ip=ip, destination_account=destination_account),
    )
    if decision.customer_frozen and decision.outcome == "approved":
        decision.outcome = "manual_review"
        decision.clauses = [*decision.clauses, {"clause": "customer_frozen"}]
        decision.explanation = FROZEN_TEXT.get(order.customer.locale, FROZEN_TEXT["en"])
        decision.staff_explanation = f"Customer account is frozen; {decision.staff_explanation}"

    with transaction.atomic():
        remaining = _lock_order(order)
        if amount > remaining:
            raise ServiceError(
                format_lazy(_("Amount exceeds what is refundable on this order ({remaining})."), remaining=remaining),
                code="amount_exceeds_refundable",
                fields={"amount": [format_lazy(_("At most {remaining}."), remaining=remaining)]},
            )
        if destination_account:
            account = bank_account_get_or_create(merchant=merchant, customer=order.customer, **destination_account)
        else:
            account = order.payer_account
        if account is None:
            raise ServiceError(
                _("The order has no payer account to refund to; give a destination_account."),
                fields={"destination_account": [_("Required: the order has no payer account.")]},
            )
        now = timezone.now()
        eta = timedelta(hours=settings.REFUND_ETA_HOURS.get(order.payment_method, 72))
        refund = Refund(
            merchant=merchant,
            order=order,
            customer=order.customer,
            amount=amount,
            currency=order.currency,
            reason=reason,
            reason_text=reason_text,
            destination_account=account,
            device_id=device_id,
            ip=ip or None,
            requested_by=actor,
            expected_arrival_at=now + eta,
            decision=decision.as_dict(),
        )
        _create_decided(refund, decision, actor=actor)
        _audit(
            refund,
            "refund.decide",
            after={
                "status": refund.status,
                "outcome": decision.outcome,
                "amount": refund.amount,
                "currency": refund.currency,
                "destination_account": account.masked_number,
            },
        )
        if decision.risk is not None:
            risk_record(
                scope="refund",
                merchant=merchant,
                subject_id=refund.pk,
                context=decision.risk_context,
                verdict=decision.risk,
            )
        _follow_up_decision(refund, decision)
    logger.info(
        "refund requested refund=%s order=%s amount=%s outcome=%s latency_ms=%s",
        refund.pk,
        order.pk,
        amount,
        decision.outcome,
        decision.latency_ms,
    )
    return refund


def _audit(refund: Refund, action: str, *, before: dict | None = None, after: dict | None = None) -> None:
    audit_record(
        action=action,
        target_type="refund",
        target_id=refund.pk,
        merchant_id=refund.merchant_id,
        before=before,
        after=after,
    )


def _risk_context(order: Order, *, device_id: str, ip: str | None, destination_account: dict | None) -> dict:
    """What the risk engine needs to know about a refund request beyond the order itself."""
    payer = order.payer_account
    payer_fingerprint = payer.fingerprint if payer else ""
    if destination_account:
        fingerprint_ = fingerprint(destination_account["account_number"].replace(" ", ""))
    else:
        fingerprint_ = payer_fingerprint
    return {
        "device_id": device_id or order.device_id,
        "ip": ip or order.ip,
        "account_fingerprint": fingerprint_,
        "payer_fingerprint": payer_fingerprint,
    }


FROZEN_TEXT = {
    "en": "Your account is under review; a person will look at this refund.",
    "zh-hans": "您的账户正在审核中，退款将由人工处理。",
}


# The decision's outcome as (transition, event code, message key or None for the default).
_DECIDED = {
    "approved": ("approve_auto", "approved"),
    "manual_review": ("send_to_review", "manual_review"),
    "tech_support": ("route_to_tech_support", "tech_support"),
    "rejected": ("reject", "rejected"),
}


def _create_decided(refund: Refund, decision: Decision, *, actor: str) -> None:
    """Insert a new refund already moved from `requested` to its decided state, with both events.

    The transition runs on the unsaved row (django-fsm checks it as for a saved one), so a request
    costs one INSERT for the refund and one for its two timeline events instead of an INSERT, an
    UPDATE and two INSERTs; an approved refund's poll time (the fallback if the submission task is
    lost) is set before the INSERT for the same reason.
    """
    transition, code = _DECIDED[decision.outcome]
    detail = {"clauses": [c["clause"] for c in decision.clauses]}
    message_key = None
    if decision.outcome == "rejected":
        clause = decision.clauses[0]["clause"] if decision.clauses else decision.outcome
        message_key = f"refund.rejected.{clause}"
        detail["appeal"] = True
    getattr(refund, transition)()
    if decision.outcome == "approved":
        refund.next_poll_at = timezone.now() + settings.REFUND_SUBMIT_GRACE
    refund.save(force_insert=True)
    _, decided = RefundEvent.objects.bulk_create(
        [
            RefundEvent(
                refund=refund,
                code="requested",
                from_status="",
                to_status=S.REQUESTED,
                message_key="refund.requested",
                responsible_party=Party.CUSTOMER,
                actor=actor,
                detail={"amount": refund.amount},
            ),
            RefundEvent(
                refund=refund,
                code=code,
                from_status=S.REQUESTED,
                to_status=refund.status,
                message_key=message_key or f"refund.{code}",
                responsible_party=Party.PLATFORM,
                actor="decision",
                detail=detail,
            ),
        ]
    )
    refund_event_recorded.send(sender=Refund, refund=refund, event=decided)
    _announce_move(refund, from_status=S.REQUESTED, code=code, party=Party.PLATFORM)


def _follow_up_decision(refund: Refund, decision: Decision) -> None:
    """What a decided refund needs next: its submission, a review case or a support ticket."""
    if decision.outcome == "approved":
        _submit_after_commit(refund)
    elif decision.outcome == "manual_review":
        case_open(
            merchant=refund.merchant,
            subject_type="refund",
            subject_id=refund.pk,
            reason=decision.staff_explanation[:500],
            detail={"clauses": decision.clauses, "amount": refund.amount, "currency": refund.currency},
        )
    elif decision.outcome == "tech_support":
        route = decision.route
        SupportTicket.objects.create(
            merchant=refund.merchant,
            refund=refund,
            category=route.category if route else "access",
            matched_phrases=list(route.phrases) if route else [],
            guidance=guidance_for(route.category if route else "access", refund.customer.locale),
        )


def _schedule_submit(refund: Refund) -> None:
    """Queue the submission after commit; the poller picks the refund up if the task is lost."""
    # If the broker drops the task (or a worker dies before acking), the poller finds the refund
    # still `approved` once this grace has passed and submits it itself.
    refund.next_poll_at = timezone.now() + settings.REFUND_SUBMIT_GRACE
    refund.save(update_fields=["next_poll_at"])
    _submit_after_commit(refund)


def _submit_after_commit(refund: Refund) -> None:
    from apps.refunds.tasks import refund_submit_task  # tasks import this module

    refund_id = refund.pk
    publish_after_commit(refund_submit_task, refund_id)


def refund_review(*, refund_id: int, approve: bool, actor: str, note: str = "") -> Refund:
    """A reviewer's verdict on a refund in manual review (approve schedules the submission)."""
    with transaction.atomic():
        refund = _lock(refund_id)
        if refund.status != S.MANUAL_REVIEW:
            raise InvalidStateError(
                format_lazy(
                    _("Only refunds in manual review can be reviewed (this one is {status})."), status=refund.status
                )
            )
        if approve:
            _move(refund, "approve_review", code="approved", party=Party.MERCHANT, actor=actor, detail={"note": note})
            _schedule_submit(refund)
        else:
            _move(refund, "reject", code="rejected", party=Party.MERCHANT, actor=actor, detail={"note": note})
        _audit(
            refund, "refund.review", before={"status": S.MANUAL_REVIEW}, after={"status": refund.status, "note": note}
        )
        case_close(
            subject_type="refund", subject_id=refund.pk, decision="approve" if approve else "decline", actor=actor
        )
    return refund


def refund_cancel(*, refund_id: int, actor: str, party: str = Party.CUSTOMER) -> Refund:
    """Cancel a refund that has not reached the bank (requested, approved, in review, needs action,
    held by a freeze)."""
    with transaction.atomic():
        refund = _lock(refund_id)
        if refund.status not in (S.REQUESTED, S.APPROVED, S.MANUAL_REVIEW, S.NEEDS_ACTION, S.HELD):
            raise InvalidStateError(
                format_lazy(_("A refund that is {status} can no longer be cancelled."), status=refund.status)
            )
        in_review = refund.status == S.MANUAL_REVIEW
        before = {"status": refund.status}
        refund.next_poll_at = None
        _move(refund, "cancel", code="cancelled", party=party, actor=actor, fields=("next_poll_at",))
        _audit(refund, "refund.cancel", before=before, after={"status": refund.status})
        if in_review:  # nothing is left to review: the case leaves the reviewers' queue
            case_close(subject_type="refund", subject_id=refund.pk, decision="withdrawn", actor=actor)
    return refund


def refund_update_destination(*, refund_id: int, destination_account: dict, actor: str) -> Refund:
    """The customer fixed their account: a refund needing action goes back to approved, new request id.
    The same number with a corrected holder name (the bank said the name did not match) corrects
    the refund's account record; either way the channel verifies it before the resend
    (`refund_submit`)."""
    with transaction.atomic():
        refund = _lock(refund_id)
        if refund.status != S.NEEDS_ACTION:
            raise InvalidStateError(_("Only a refund that needs action takes a new account."))
        before = {"status": refund.status, "destination_account": refund.destination_account.masked_number}
        refund.destination_account = bank_account_get_or_create(
            merchant=refund.merchant,
            customer=refund.customer,
            correct_details=True,
            correcting=refund.destination_account,
            **destination_account,
        )
        refund.submission_seq += 1
        refund.failure_code = ""
        _move(
            refund,
            "action_taken",
            code="account_updated",
            party=Party.CUSTOMER,
            actor=actor,
            fields=("destination_account", "submission_seq", "failure_code"),
        )
        _audit(
            refund,
            "refund.destination",
            before=before,
            after={"status": refund.status, "destination_account": refund.destination_account.masked_number},
        )
        _schedule_submit(refund)
    return refund


# --- submission ---------------------------------------------------------------------------------------


def _transfer_request(refund: Refund) -> TransferRequest:
    account = refund.destination_account
    return TransferRequest(
        request_id=refund.request_id,
        reference=f"refund:{refund.pk}",
        amount=refund.amount,
        currency=refund.currency,
        account=Account(holder_name=account.holder_name, bank=account.bank, number=account.reveal_number()),
        kind="refund",
        memo=f"refund of order {refund.order.external_id}",
    )


def refund_submit(*, refund_id: int) -> Refund:
    """Send an approved refund to its channel, exactly once.

    A destination other than the payer's route is verified first (`_verify_destination`). Commits
    `submitted` (and the in-flight ledger posting) before calling the bank; the call's
    outcome is then applied like any webhook. A timeout moves the refund to `unknown`, which is
    queried before anything is sent again. Safe to call twice: only an `approved` refund is sent.
    A refund whose customer or destination account is frozen is held instead (`_hold_if_frozen`),
    under the same lock: retries and failovers come through here too.
    """
    if (stopped := _verify_destination(refund_id)) is not None:
        return stopped
    with transaction.atomic():
        refund = _lock(refund_id)
        if refund.status != S.APPROVED:
            return refund
        if _hold_if_frozen(refund, actor="system"):
            return refund
        # After an outage, fail over: the next enabled channel by priority, if there is one.
        avoid = [refund.channel.code] if refund.channel and refund.failure_code == reasons.OUTAGE.code else []
        channel = channel_for(capability="refund", exclude=avoid) or channel_for(capability="refund")
        if channel is None:
            refund.next_poll_at = timezone.now() + settings.REFUND_POLL_INTERVAL
            refund.save(update_fields=["next_poll_at"])
            logger.error("no enabled channel for refunds; refund=%s waits", refund.pk)
            return refund
        now = timezone.now()
        refund.channel = channel
        refund.attempt += 1
        refund.send_seq += 1
        refund.submitted_at = now
        refund.next_poll_at = now + settings.REFUND_POLL_INTERVAL
        _move(
            refund,
            "submit",
            code="submitted",
            party=Party.PLATFORM,
            actor="system",
            fields=("channel", "attempt", "send_seq", "submitted_at", "next_poll_at"),
            detail={"channel": channel.code, "request_id": refund.request_id},
        )
        _post(
            refund,
            f"inflight:{refund.attempt}",
            debit=(_merchant_owner(refund), _MERCHANT),
            credit=("platform", _IN_FLIGHT),
            description=f"refund {refund.pk} sent to {channel.code}",
        )
    return _send(refund)


def _verify_destination(refund_id: int) -> Refund | None:
    """Wrong-payee interception: money goes to a destination the customer named (not the way it
    came) only once the channel confirms that number belongs to that holder name
    (`destination_verify`, the payouts' rule too). Returns None when the refund may be sent; else
    the refund, left `approved` to ask again after a backoff (the channel did not answer) or moved
    to `needs_action` with the reason (mismatch: the customer fixes the account on the progress
    page). Destinations are: a `destination_account` given with the request, and any account the
    customer gave since (`submission_seq` > 1). A record verified once is not asked again; with no
    channel able to verify, the refund goes unverified. Runs the channel call outside any
    transaction, then locks the refund."""
    # One light read on every submit: most refunds go back the payer's way and stop here.
    status, seq, account_id, payer_id, verified_at = (
        Refund.objects.filter(pk=refund_id)
        .values_list(
            "status",
            "submission_seq",
            "destination_account_id",
            "order__payer_account_id",
            "destination_account__verified_at",
        )
        .get()
    )
    named = account_id is not None and (account_id != payer_id or seq > 1)
    if status != S.APPROVED or not named or verified_at is not None:
        return None
    refund = Refund.objects.select_related("destination_account").get(pk=refund_id)
    account = refund.destination_account
    answer = destination_verify(
        account=Account(holder_name=account.holder_name, bank=account.bank, number=account.reveal_number()),
        reference=f"refund:{refund.pk}",
        request_id=f"{refund.request_id}:verify",
    )
    if answer is None or (isinstance(answer, VerifyResult) and answer.ok):
        if answer is not None:
            bank_account_mark_verified(bank_account=account)
        return None
    with transaction.atomic():
        refund = _lock(refund_id)
        if refund.status != S.APPROVED or refund.destination_account_id != account.pk:
            return refund  # moved on meanwhile: whoever moved it decides
        if isinstance(answer, ChannelError):
            earlier = refund.events.filter(code="verification_unanswered").count()
            refund.next_poll_at = timezone.now() + _backoff(earlier)
            refund.save(update_fields=["next_poll_at"])
            code = answer.reason.code if answer.reason else "channel_error"
            _record(
                refund,
                code="verification_unanswered",
                party=Party.BANK,
                actor="system",
                from_status=refund.status,
                detail={"code": code, "attempt": earlier + 1},
            )
            return refund
        reason = answer.reason
        refund.failure_code = reason.code if reason else (answer.raw_code or "account_mismatch")
        refund.responsible_party = reason.responsible_party if reason else Party.CUSTOMER
        refund.next_poll_at = None
        _move(
            refund,
            "require_action",
            code="needs_action",
            party=refund.responsible_party,
            actor="channel:verify",
            fields=("failure_code", "responsible_party", "next_poll_at"),
            message_key=f"refund.needs_action.{refund.failure_code}",
            detail={"check": "account_verification", "raw_code": answer.raw_code, "account": account.masked_number},
        )
    return refund


def _send(refund: Refund) -> Refund:
    """Call the channel for a refund committed as `submitted` (no transaction may be open).

    Each submit or resubmit transition owes exactly one call: the caller claims it with a
    conditional UPDATE first, so a redelivered task or a racing worker finds nothing to send.
    """
    if not claim_call(Refund, refund.pk, owed="send_seq", done="sent_seq"):
        logger.info("send for refund=%s already claimed; not calling the channel again", refund.pk)
        return refund
    request = _transfer_request(refund)
    try:
        result = channel_submit(channel=refund.channel, request=request)
    except ChannelTimeout:
        with transaction.atomic():
            refund = _lock(refund.pk)
            if refund.status in (S.SUBMITTED, S.PROCESSING):
                refund.next_poll_at = timezone.now() + settings.REFUND_UNKNOWN_QUERY_DELAY
                _move(
                    refund,
                    "mark_unknown",
                    code="unknown",
                    party=Party.BANK,
                    actor="system",
                    fields=("next_poll_at",),
                    detail={"request_id": request.request_id},
                )
        return refund
    except ChannelError as exc:
        # The adapter raises ChannelError only when the bank was not reached or refused the
        # instruction unexecuted (outage, bad request): a failure with its reason, nothing paid.
        result = ChannelResult(
            status=TransferStatus.FAILED,
            request_id=request.request_id,
            reason=exc.reason or reasons.OUTAGE,
            raw_code=exc.raw_code or "channel_error",
        )
    return _apply_and_follow_up(refund.pk, result, source="submit", channel_code=refund.channel.code)


# --- applying channel results (submit answers, webhooks, polls) ---------------------------------------


def refund_apply_channel_result(result: ChannelResult, *, channel_code: str, source: str) -> str:
    """Registry handler for "refund:*" results from webhooks (runs inside the receiver's transaction)."""
    refund_id = _refund_id_from(result.request_id)
    if refund_id is None or not Refund.objects.filter(pk=refund_id).exists():
        return "unknown_reference"
    refund = _lock(refund_id)
    if result.request_id != refund.request_id:
        logger.info("result for an earlier request id ignored refund=%s rid=%s", refund.pk, result.request_id)
        return "ignored_stale"
    outcome = _apply(refund, result, source=source)
    if outcome == "resend":
        # Never call a bank from inside a webhook request: a worker resends.
        from apps.refunds.tasks import refund_resend_task  # tasks import this module

        publish_after_commit(refund_resend_task, refund_id)
    return outcome


def refund_resend(*, refund_id: int) -> Refund:
    """Send again a refund the bank confirmed it never executed (status `submitted` after resubmit)."""
    refund = Refund.objects.select_related("channel", "destination_account", "order").get(pk=refund_id)
    if refund.status != S.SUBMITTED:
        return refund
    return _send(refund)


def _refund_id_from(request_id: str) -> int | None:
    parts = request_id.split(":")
    if len(parts) != 3 or parts[0] != "refund" or not parts[1].isdigit():
        return None
    return int(parts[1])


def _apply_and_follow_up(refund_id: int, result: ChannelResult, *, source: str, channel_code: str) -> Refund:
    with transaction.atomic():
        refund = _lock(refund_id)
        outcome = _apply(refund, result, source=source)
    if outcome == "resend":
        return _send(refund)
    return refund


def _apply(refund: Refund, result: ChannelResult, *, source: str) -> str:
    """Move a locked refund according to a channel result; never backwards. Returns what happened."""
    outcome = _apply_result(refund, result, source=source)
    _save_staged(refund)  # the channel reference, when no transition carried it
    return outcome


def _apply_result(refund: Refund, result: ChannelResult, *, source: str) -> str:
    status = refund.status
    actor = f"channel:{source}"
    wrong_amount = result.amount is not None and result.amount != refund.amount
    wrong_currency = bool(result.currency) and result.currency != refund.currency
    if wrong_amount or wrong_currency:
        _anomaly(
            refund,
            "amount_mismatch",
            {"reported": [result.amount, result.currency], "expected": [refund.amount, refund.currency]},
        )
        return "rejected_mismatch"
    if result.channel_reference and not refund.channel_reference:
        _stage(refund, channel_reference=result.channel_reference)

    kind = result.status
    if kind in (TransferStatus.ACCEPTED, TransferStatus.PROCESSING, TransferStatus.HELD):
        if status in (S.SUBMITTED, S.UNKNOWN):
            held = kind == TransferStatus.HELD
            refund.next_poll_at = timezone.now() + settings.REFUND_POLL_INTERVAL
            if held:
                _push_eta(refund)
            _move(
                refund,
                "mark_processing",
                code="held_by_bank" if held else "processing",
                party=Party.BANK,
                actor=actor,
                fields=("next_poll_at",),
            )
            return "applied"
        if status == S.PROCESSING:
            # The submit answer usually moved it to processing already; a hold reported later must
            # still reach the timeline (once: polls keep seeing it), or nobody learns the bank holds it.
            last = refund.events.order_by("-created_at", "-id").values_list("code", flat=True).first()
            if kind == TransferStatus.HELD and last != "held_by_bank":
                _push_eta(refund)
                _save_staged(refund)
                _record(refund, code="held_by_bank", party=Party.BANK, actor=actor, from_status=status)
                return "applied"
            return "no_change"
        logger.info("stale %s for refund=%s in %s ignored", kind, refund.pk, status)
        return "ignored_stale"

    if kind == TransferStatus.SUCCEEDED:
        if status in Refund.IN_FLIGHT:
            _succeed(refund, actor)
            return "applied"
        if status == S.SUCCEEDED:
            return "no_change"
        logger.info("stale success for refund=%s in %s ignored", refund.pk, status)
        return "ignored_stale"

    if kind == TransferStatus.RETURNED:
        if status in Refund.IN_FLIGHT:
            _succeed(refund, actor)
            status = refund.status
        if status == S.SUCCEEDED:
            _reverse(refund, actor, result)
            return "applied"
        return "no_change" if status == S.REVERSED else "ignored_stale"

    if kind == TransferStatus.FAILED:
        if status in Refund.IN_FLIGHT:
            _fail(refund, actor, result)
            return "applied"
        if status == S.SUCCEEDED:
            _anomaly(refund, "late_failure_after_success", {"raw_code": result.raw_code})
        return "ignored_stale"

    if kind == TransferStatus.NOT_FOUND:
        if status == S.SUBMITTED and refund.channel is not None and refund.submitted_at is not None:
            # Committed as submitted, yet the bank never saw it: once our own call can no longer be
            # on its way (its timeout has passed), the process died between commit and call (G3).
            # Without this the refund would sit in `submitted`, queried forever.
            call_window = timedelta(seconds=refund.channel.timeout_seconds) + settings.REFUND_UNKNOWN_QUERY_DELAY
            if timezone.now() - refund.submitted_at > call_window:
                _move(
                    refund,
                    "mark_unknown",
                    code="unknown",
                    party=Party.PLATFORM,
                    actor=actor,
                    detail={"request_id": refund.request_id, "why": "submitted but the call never reached the bank"},
                )
                status = refund.status
        if status == S.UNKNOWN:
            if _hold_if_frozen(refund, actor=actor):
                return "held"
            refund.submitted_at = timezone.now()
            refund.next_poll_at = refund.submitted_at + settings.REFUND_POLL_INTERVAL
            refund.send_seq += 1
            _move(
                refund,
                "resubmit",
                code="resubmitted",
                party=Party.PLATFORM,
                actor=actor,
                fields=("next_poll_at", "submitted_at", "send_seq"),
                detail={"request_id": refund.request_id, "why": "bank confirmed it never executed the request"},
            )
            return "resend"
        return "no_change"
    return "no_change"


def _succeed(refund: Refund, actor: str) -> None:
    now = timezone.now()
    refund.succeeded_at = now
    refund.verify_until = verify_window_end(since=now, checks=settings.REFUND_VERIFY_CHECKS)
    refund.next_poll_at = _next_verify_check(refund, now)
    refund.failure_code = ""
    refund.responsible_party = ""
    _move(
        refund,
        "succeed",
        code="succeeded",
        party=Party.BANK,
        actor=actor,
        fields=("succeeded_at", "verify_until", "next_poll_at", "failure_code", "responsible_party"),
    )
    _post(
        refund,
        "settle",
        debit=("platform", _IN_FLIGHT),
        credit=("platform", _CASH),
        description=f"refund {refund.pk} arrived",
    )


def _next_verify_check(refund: Refund, now: datetime) -> datetime | None:
    return verify_next_check(since=refund.succeeded_at, now=now, checks=settings.REFUND_VERIFY_CHECKS)


def _reverse(refund: Refund, actor: str, result: ChannelResult) -> None:
    refund.next_poll_at = None
    refund.failure_code = result.reason.code if result.reason else "returned"
    refund.responsible_party = result.reason.responsible_party if result.reason else Party.CUSTOMER
    _move(
        refund,
        "reverse",
        code="reversed",
        party=refund.responsible_party,
        actor=actor,
        fields=("next_poll_at", "failure_code", "responsible_party"),
        message_key=f"refund.reversed.{refund.failure_code}",
        detail={"raw_code": result.raw_code},
    )
    _post(
        refund,
        "returned",
        debit=("platform", _CASH),
        credit=(f"customer:{refund.customer_id}", LedgerAccount.Kind.CUSTOMER_BALANCE),
        description=f"refund {refund.pk} returned by the bank",
    )
    _anomaly(refund, "reversed_after_success", {"failure_code": refund.failure_code, "amount": refund.amount})


def _fail(refund: Refund, actor: str, result: ChannelResult) -> None:
    reason = result.reason
    refund.failure_code = reason.code if reason else (result.raw_code or "failed")
    refund.responsible_party = reason.responsible_party if reason else Party.BANK
    retryable = bool(reason and reason.retryable) and refund.retry_count < settings.REFUND_MAX_RETRIES
    refund.next_poll_at = timezone.now() + _backoff(refund.retry_count) if retryable else None
    if refund.responsible_party != Party.CUSTOMER:
        _push_eta(refund)  # retried later or looked at by staff: either way, later than promised
    _move(
        refund,
        "fail",
        code="failed",
        party=refund.responsible_party,
        actor=actor,
        fields=("failure_code", "responsible_party", "next_poll_at"),
        message_key=f"refund.failed.{refund.failure_code}",
        detail={"raw_code": result.raw_code, "retryable": retryable, "retry_count": refund.retry_count},
    )
    _post(
        refund,
        f"release:{refund.attempt}",
        debit=("platform", _IN_FLIGHT),
        credit=(_merchant_owner(refund), _MERCHANT),
        description=f"refund {refund.pk} failed: {refund.failure_code}",
    )
    if not retryable and refund.responsible_party == Party.CUSTOMER:
        _move(
            refund,
            "require_action",
            code="needs_action",
            party=Party.CUSTOMER,
            actor="system",
            message_key=f"refund.needs_action.{refund.failure_code}",
        )


# --- polling and retries -----------------------------------------------------------------------------

POLLED_STATUSES = (S.APPROVED, S.SUBMITTED, S.PROCESSING, S.UNKNOWN, S.SUCCEEDED, S.FAILED, S.HELD)


def refund_claim_due(*, limit: int, lease: timedelta | None = None) -> list[int]:
    """Claim up to `limit` refunds whose next poll is due; concurrent pollers get disjoint sets.

    `SELECT … FOR UPDATE SKIP LOCKED` (PostgreSQL) and pushing `next_poll_at` by a lease mean two
    beat ticks or two workers never poll the same refund at once.
    """
    return claim_due(Refund, statuses=POLLED_STATUSES, limit=limit, lease=lease or settings.REFUND_POLL_INTERVAL)


_POLL_SELECT = ("channel", "destination_account", "order")


def refund_poll(*, refund_id: int) -> Refund:
    """Bring one due refund forward: submit if stuck approved, retry if failed, else query the bank."""
    refund = Refund.objects.select_related(*_POLL_SELECT).get(pk=refund_id)
    done = _poll_without_query(refund)
    if done is not None:
        return done
    try:
        result = channel_query(channel=refund.channel, request_id=refund.request_id, reference=f"refund:{refund.pk}")
    except ChannelError:
        return _poll_unanswered(refund)
    return _poll_answered(refund, result)


def refund_poll_batch(*, refund_ids: Sequence[int]) -> list[Refund]:
    """`refund_poll` for a claimed chunk: the bank queries run concurrently, results apply one by one.

    Up to REFUND_POLL_CONCURRENCY queries are in flight at once (threads doing HTTP only; every
    database write stays in this thread, each refund in its own locked transaction as in
    `refund_poll`). A refund whose poll raises is logged and skipped: its claim lease runs out and
    the next tick polls it again, and the rest of the chunk still moves. Caller: the batch task.
    """
    refunds = Refund.objects.select_related(*_POLL_SELECT).in_bulk(refund_ids)
    polled: list[Refund] = []
    to_query: list[Refund] = []
    for refund_id in refund_ids:
        refund = refunds.get(refund_id)
        if refund is None:
            continue
        try:
            done = _poll_without_query(refund)
        except Exception:
            logger.exception("poll of refund=%s failed; it is polled again when its lease ends", refund_id)
            continue
        if done is None:
            to_query.append(refund)
        else:
            polled.append(done)
    answers = channel_query_many(
        queries=[Query(refund.channel, refund.request_id, f"refund:{refund.pk}") for refund in to_query],
        concurrency=settings.REFUND_POLL_CONCURRENCY,
    )
    for refund, answer in zip(to_query, answers, strict=True):
        try:
            if isinstance(answer, ChannelError):
                polled.append(_poll_unanswered(refund))
            elif isinstance(answer, Exception):
                raise answer
            else:
                polled.append(_poll_answered(refund, answer))
        except Exception:
            logger.exception("poll of refund=%s failed; it is polled again when its lease ends", refund.pk)
    return polled


def _poll_without_query(refund: Refund) -> Refund | None:
    """What a poll does without asking the bank; None when the bank must be asked."""
    if refund.status == S.APPROVED:
        return refund_submit(refund_id=refund.pk)
    if refund.status == S.FAILED:
        return refund_retry(refund_id=refund.pk)
    if refund.status == S.HELD:
        return refund_release_hold(refund_id=refund.pk)
    if refund.status == S.SUCCEEDED and refund.succeeded_at is None:  # no arrival time to schedule from
        Refund.objects.filter(pk=refund.pk, status=S.SUCCEEDED).update(next_poll_at=None)
        return refund
    if refund.status not in (S.SUBMITTED, S.PROCESSING, S.UNKNOWN, S.SUCCEEDED) or refund.channel is None:
        return refund
    return None


def _poll_unanswered(refund: Refund) -> Refund:
    now = timezone.now()
    # A verification check the bank did not answer is not repeated: the schedule's next one asks.
    next_at = _next_verify_check(refund, now) if refund.status == S.SUCCEEDED else now + _backoff(1)
    Refund.objects.filter(pk=refund.pk).update(next_poll_at=next_at)
    return refund


def _poll_answered(refund: Refund, result: ChannelResult) -> Refund:
    was_succeeded = refund.status == S.SUCCEEDED
    refund = _apply_and_follow_up(refund.pk, result, source="poll", channel_code=refund.channel.code)
    if was_succeeded and refund.status == S.SUCCEEDED:
        # A verification poll: schedule the next one. A refund that succeeded during this poll (or
        # under a concurrent webhook, after our claim) already got it from `_succeed`.
        next_at = _next_verify_check(refund, timezone.now())
        Refund.objects.filter(pk=refund.pk, status=S.SUCCEEDED).update(next_poll_at=next_at)
    return refund


def refund_retry(*, refund_id: int) -> Refund:
    """Resend a refund whose failure was retryable, if the order can still afford it."""
    with transaction.atomic():
        refund = Refund.objects.select_related("order").get(pk=refund_id)
        Order.objects.select_for_update().filter(pk=refund.order_id).first()
        refund = _lock(refund_id)
        if refund.status != S.FAILED or refund.next_poll_at is None:
            return refund
        if refund.amount > refundable_remaining(order=refund.order):
            refund.next_poll_at = None
            refund.save(update_fields=["next_poll_at"])
            _record(refund, code="retry_refused", party=Party.PLATFORM, actor="system", from_status=refund.status)
            return refund
        refund.retry_count += 1
        _move(
            refund,
            "retry",
            code="retrying",
            party=Party.PLATFORM,
            actor="system",
            fields=("retry_count",),
            detail={"retry_count": refund.retry_count},
        )
        _audit(
            refund,
            "refund.retry",
            before={"status": S.FAILED, "retry_count": refund.retry_count - 1},
            after={"status": refund.status, "retry_count": refund.retry_count},
        )
    return refund_submit(refund_id=refund_id)


# --- freeze holds (G17) -----------------------------------------------------------------------------


def _freeze_hold(refund: Refund):
    return freeze_hold_for(
        merchant_id=refund.merchant_id, customer_ids=[refund.customer_id], bank_account=refund.destination_account
    )


def _hold_if_frozen(refund: Refund, *, actor: str) -> bool:
    """Hold a locked refund, about to be sent (approved) or resent (unknown, the bank said it never
    executed it), whose customer or destination account is frozen; True if held.

    Nothing reaches the bank. One `held_frozen` event names the freezes and who answers for them
    (platform for the risk engine's, else merchant); `refund_anomaly` "held_frozen" becomes a P1
    alert; the customer is not told it failed. From `unknown` the in-flight posting is released,
    so the submission after the hold posts afresh. The poller looks again every
    FREEZE_HOLD_RECHECK. Callers: `refund_submit`, `_apply_result`, inside their transactions.
    """
    hold = _freeze_hold(refund)
    if hold is None:
        return False
    if refund.status == S.UNKNOWN:
        _post(
            refund,
            f"release:{refund.attempt}",
            debit=("platform", _IN_FLIGHT),
            credit=(_merchant_owner(refund), _MERCHANT),
            description=f"refund {refund.pk} held: account frozen",
        )
    refund.next_poll_at = timezone.now() + settings.FREEZE_HOLD_RECHECK
    _move(
        refund,
        "hold_for_freeze",
        code="held_frozen",
        party=hold.party,
        actor=actor,
        fields=("next_poll_at",),
        detail=hold.detail,
    )
    _anomaly(refund, "held_frozen", {**hold.detail, "amount": refund.amount, "currency": refund.currency})
    return True


def refund_release_hold(*, refund_id: int, actor: str = "system") -> Refund:
    """Release a refund held by a freeze once no freeze holds it: back to `approved`, its submission
    scheduled as after any approval. Exactly once: only a `held` refund moves, under its lock, and
    only an `approved` one is ever sent. While a freeze still holds it, the next look is pushed by
    FREEZE_HOLD_RECHECK. Callers: the `account_unfrozen` receiver, the poller's sweep."""
    with transaction.atomic():
        refund = _lock(refund_id)
        if refund.status != S.HELD:
            return refund
        now = timezone.now()
        if _freeze_hold(refund) is not None:
            refund.next_poll_at = now + settings.FREEZE_HOLD_RECHECK
            refund.save(update_fields=["next_poll_at"])
            return refund
        refund.next_poll_at = now + settings.REFUND_SUBMIT_GRACE
        _move(refund, "release_hold", code="hold_released", party=Party.PLATFORM, actor=actor, fields=("next_poll_at",))
        _submit_after_commit(refund)
    return refund
