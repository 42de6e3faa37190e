"""Every write to a refund that is the refunds' own: request, decide, review, cancel, take a new
account; and the refund policy the transfer kernel (apps.transfers) runs submission, channel
results, polling, retries and freeze holds with.

Locking: each service re-reads the refund with `select_for_update()`; requests and retries lock the
order row first, which serialises everything that reserves money against one order (PostgreSQL).
Channel calls never run inside a transaction (the kernel's rule): a refund is committed as
`submitted` *before* the bank is called, so a crash after the call is recovered by querying.

Ledger (references "refund:<id>:<step>"):
  inflight:<attempt>  merchant_payable → refunds_in_flight, at each submission
  settle              refunds_in_flight → cash_clearing, when it arrived
  release:<attempt>   refunds_in_flight → merchant_payable, after a failure or a freeze hold
  returned            cash_clearing → the customer's balance (the bank gave it back)
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.db import connection, transaction
from django.db.models import Sum
from django.urls import reverse
from django.utils import timezone
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from apps.accounts.models import Merchant
from apps.accounts.services import bank_account_get_or_create
from apps.common.crypto import fingerprint
from apps.common.errors import InvalidStateError, ServiceError
from apps.gateways.base import ChannelError, ChannelResult, VerifyResult
from apps.ledger.models import LedgerAccount
from apps.ledger.services import Line, ledger_account_get_or_create, ledger_post
from apps.orders.models import Order
from apps.orders.selectors import order_for_refund
from apps.refunds.decision import Decision, decide_refund
from apps.refunds.models import Party, Refund, RefundEvent, SupportTicket
from apps.refunds.routing import guidance_for
from apps.refunds.signals import refund_anomaly, refund_event_recorded, refund_state_changed
from apps.risk.services import case_close, case_open, risk_record
from apps.transfers.lifecycle import announce_anomaly, announce_move, audit, lock, move, publish_step, stage
from apps.transfers.policy import TransferPolicy
from apps.transfers.services import (
    transfer_schedule_submit,
    transfer_submit,
    transfer_verification_unanswered,
    transfer_verify_destination,
)

logger = logging.getLogger(__name__)

S = Refund.Status
PROGRESS_SALT = "refunds.progress"


# --- helpers ------------------------------------------------------------------------------------


def _push_eta(refund: Refund) -> None:
    """A delay the customer is told about comes with a new expected arrival: at least
    `REFUND_DELAY_ETA` from now (staged for the transition that records the delay)."""
    later = timezone.now() + settings.REFUND_DELAY_ETA
    if refund.expected_arrival_at is None or refund.expected_arrival_at < later:
        stage(refund, expected_arrival_at=later)


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


def _release(refund: Refund, why: str) -> None:
    """Give the in-flight money of the current attempt back to the merchant's payable."""
    _post(
        refund,
        f"release:{refund.attempt}",
        debit=("platform", _IN_FLIGHT),
        credit=(_merchant_owner(refund), _MERCHANT),
        description=f"refund {refund.pk} {why}",
    )


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
        audit(
            refund,
            "decide",
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
    announce_move(REFUNDS, refund, from_status=S.REQUESTED, code=code, party=Party.PLATFORM)


def _follow_up_decision(refund: Refund, decision: Decision) -> None:
    """What a decided refund needs next: its submission, a review case or a support ticket."""
    if decision.outcome == "approved":
        publish_step(REFUNDS, "submit", refund)
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


def refund_review(*, refund_id: int, approve: bool, actor: str, note: str = "") -> Refund:
    """A reviewer's verdict on a refund in manual review (approve schedules the submission)."""
    with transaction.atomic():
        refund = lock(REFUNDS, refund_id)
        if refund.status != S.MANUAL_REVIEW:
            raise InvalidStateError(
                format_lazy(
                    _("Only refunds in manual review can be reviewed (this one is {status})."), status=refund.status
                )
            )
        if approve:
            move(
                REFUNDS,
                refund,
                "approve_review",
                code="approved",
                party=Party.MERCHANT,
                actor=actor,
                detail={"note": note},
            )
            transfer_schedule_submit(REFUNDS, refund)
        else:
            move(REFUNDS, refund, "reject", code="rejected", party=Party.MERCHANT, actor=actor, detail={"note": note})
        audit(refund, "review", before={"status": S.MANUAL_REVIEW}, after={"status": refund.status, "note": note})
        case_close(
            subject_type="refund", subject_id=refund.pk, decision="approve" if approve else "decline", actor=actor
        )
    return refund


def refund_cancel(*, refund_id: int, actor: str, party: str = Party.CUSTOMER) -> Refund:
    """Cancel a refund that has not reached the bank (requested, approved, in review, needs action,
    held by a freeze)."""
    with transaction.atomic():
        refund = lock(REFUNDS, refund_id)
        if refund.status not in (S.REQUESTED, S.APPROVED, S.MANUAL_REVIEW, S.NEEDS_ACTION, S.HELD):
            raise InvalidStateError(
                format_lazy(_("A refund that is {status} can no longer be cancelled."), status=refund.status)
            )
        in_review = refund.status == S.MANUAL_REVIEW
        before = {"status": refund.status}
        refund.next_poll_at = None
        move(REFUNDS, refund, "cancel", code="cancelled", party=party, actor=actor, fields=("next_poll_at",))
        audit(refund, "cancel", before=before, after={"status": refund.status})
        if in_review:  # nothing is left to review: the case leaves the reviewers' queue
            case_close(subject_type="refund", subject_id=refund.pk, decision="withdrawn", actor=actor)
    return refund


def refund_update_destination(*, refund_id: int, destination_account: dict, actor: str) -> Refund:
    """The customer fixed their account: a refund needing action goes back to approved, new request id.
    The same number with a corrected holder name (the bank said the name did not match) corrects
    the refund's account record; either way the channel verifies it before the resend
    (`refund_submit`)."""
    with transaction.atomic():
        refund = lock(REFUNDS, refund_id)
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
        move(
            REFUNDS,
            refund,
            "action_taken",
            code="account_updated",
            party=Party.CUSTOMER,
            actor=actor,
            fields=("destination_account", "submission_seq", "failure_code"),
        )
        audit(
            refund,
            "destination",
            before=before,
            after={"status": refund.status, "destination_account": refund.destination_account.masked_number},
        )
        transfer_schedule_submit(REFUNDS, refund)
    return refund


# --- submission: the kernel's, a named destination verified first ---------------------------------


def refund_submit(*, refund_id: int) -> Refund:
    """Send an approved refund to its channel, exactly once (apps.transfers.services.transfer_submit):
    a destination the customer named is verified first (`RefundPolicy.verify_before_submit`)."""
    return transfer_submit(REFUNDS, refund_id)


def _verify_destination(refund_id: int) -> Refund | None:
    """Wrong-payee interception: money goes to a destination the customer named (not the way it
    came) only once the channel confirms that number belongs to that holder name
    (`transfer_verify_destination`, the payouts' rule too). Returns None when the refund may be sent; else
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
    answer = transfer_verify_destination(refund, request_id=f"{refund.request_id}:verify")
    if answer is None or (isinstance(answer, VerifyResult) and answer.ok):
        return None
    with transaction.atomic():
        refund = lock(REFUNDS, refund_id)
        if refund.status != S.APPROVED or refund.destination_account_id != account.pk:
            return refund  # moved on meanwhile: whoever moved it decides
        if isinstance(answer, ChannelError):
            transfer_verification_unanswered(REFUNDS, refund, answer, actor="system")
            return refund
        reason = answer.reason
        refund.failure_code = reason.code if reason else (answer.raw_code or "account_mismatch")
        refund.responsible_party = reason.responsible_party if reason else Party.CUSTOMER
        refund.next_poll_at = None
        move(
            REFUNDS,
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


# --- the refund policy ------------------------------------------------------------------------------


class RefundPolicy(TransferPolicy):
    """What refunds plug into the transfer kernel: money reserved on the order, postings against
    the merchant's payable, a customer who is told when it arrives and when it is late."""

    label = "refund"
    prefixes = ("refund",)
    model = Refund
    event_model = RefundEvent
    event_fk = "refund"
    settings_prefix = "REFUND"
    state_changed_signal, anomaly_signal = refund_state_changed, refund_anomaly
    event_recorded_signal = refund_event_recorded
    tasks_module = "apps.refunds.tasks"
    poll_related = ("channel", "destination_account", "order")
    polled_statuses = (S.APPROVED, S.SUBMITTED, S.PROCESSING, S.UNKNOWN, S.SUCCEEDED, S.FAILED, S.HELD)
    settle_transition, settled_status, settled_at_field = "succeed", S.SUCCEEDED, "succeeded_at"
    settled_family = (S.SUCCEEDED,)
    return_transition, returned_code, return_party = "reverse", S.REVERSED, Party.CUSTOMER
    returnable = (S.SUCCEEDED,)
    returned_family = (S.REVERSED,)

    def signal_ids(self, item: Refund) -> dict:
        return {"refund_id": item.pk}

    def lookup(self, request_id: str) -> int | None:
        parts = request_id.split(":")
        if len(parts) != 3 or parts[0] != "refund" or not parts[1].isdigit():
            return None
        pk = int(parts[1])
        return pk if Refund.objects.filter(pk=pk).exists() else None

    def verify_before_submit(self, pk: int) -> Refund | None:
        return _verify_destination(pk)

    def lock_before(self, pk: int, step: str) -> None:
        if step == "retry":  # a retry reserves again: the order row first, as a request does
            order_id = Refund.objects.filter(pk=pk).values_list("order_id", flat=True).get()
            Order.objects.select_for_update().filter(pk=order_id).first()

    def may_retry(self, item: Refund) -> bool:
        return item.amount <= refundable_remaining(order=item.order)

    def after_submit(self, item: Refund) -> None:
        _post(
            item,
            f"inflight:{item.attempt}",
            debit=(_merchant_owner(item), _MERCHANT),
            credit=("platform", _IN_FLIGHT),
            description=f"refund {item.pk} sent to {item.channel.code}",
        )

    def on_delay(self, item: Refund) -> None:
        _push_eta(item)

    def after_settle(self, item: Refund) -> None:
        _post(item, "settle", ("platform", _IN_FLIGHT), ("platform", _CASH), f"refund {item.pk} arrived")

    def on_return(self, item: Refund, *, actor: str, result: ChannelResult) -> None:
        _post(
            item,
            "returned",
            debit=("platform", _CASH),
            credit=(f"customer:{item.customer_id}", LedgerAccount.Kind.CUSTOMER_BALANCE),
            description=f"refund {item.pk} returned by the bank",
        )
        detail = {"failure_code": item.failure_code, "amount": item.amount}
        announce_anomaly(self, item, "reversed_after_success", detail)

    def before_fail(self, item: Refund, *, retryable: bool) -> None:
        if item.responsible_party != Party.CUSTOMER:
            _push_eta(item)  # retried later or looked at by staff: either way, later than promised

    def after_fail(self, item: Refund, *, retryable: bool) -> None:
        _release(item, f"failed: {item.failure_code}")
        if not retryable and item.responsible_party == Party.CUSTOMER:
            move(
                self,
                item,
                "require_action",
                code="needs_action",
                party=Party.CUSTOMER,
                actor="system",
                message_key=f"refund.needs_action.{item.failure_code}",
            )

    def on_freeze_hold(self, item: Refund, *, hold) -> None:
        if item.status == S.UNKNOWN:  # the submission after the hold posts afresh
            _release(item, "held: account frozen")


REFUNDS = RefundPolicy()
