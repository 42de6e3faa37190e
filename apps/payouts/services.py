"""Every write to a payout or withdrawal: create, pre-check, approve (maker-checker), hold, release,
cancel, submit, apply channel results, poll, retry, recall; and the incidents that track recovery.

The two kinds share one table and one state machine (models.py); services named `payout_*` act on
either, by primary key. Locking: each service re-reads the row with `select_for_update()`; the
pre-checks first lock the owner (the merchant's row for a payout, the customer's for a withdrawal)
so that balance, limit and duplicate checks of one owner run one at a time. Channel calls never
run inside a transaction: a movement is committed as `submitted` (with its in-flight ledger
posting) *before* the bank is called, so a crash after the call is recovered by querying, never by
a blind resend. Request ids are "<kind>:<id>:submit" for the life of the row.

Ledger (references "<kind>:<id>:<step>", owner = merchant_payable for payouts, customer_balance for
withdrawals, via fx_clearing when the currencies differ):
  inflight   source → payouts_in_flight, at the first submit (a retry reuses it)
  paid       payouts_in_flight → cash_clearing
  release    payouts_in_flight → source, after a final failure or a cancel while in flight
  returned   cash_clearing → source (the bank gave the money back)
  recalled   cash_clearing → source (a recall succeeded)
  recovered:<n>  cash_clearing → source (a negotiated return, part of the amount)
After the in-flight posting the source balance must still be owed (never negative), or the
posting is rolled back and the movement held.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.core import signing
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from apps.accounts.models import BankAccount, Customer, Merchant, User
from apps.accounts.selectors import bank_account_is_frozen, customer_is_frozen, freeze_hold_for
from apps.accounts.services import (
    account_freeze,
    bank_account_get_or_create,
    bank_account_mark_verified,
    staff_totp_refusal,
)
from apps.common.audit import audit_record
from apps.common.errors import ConflictError, InvalidStateError, NotFoundError, ServiceError, UnprocessableError
from apps.common.money import currency_is_supported
from apps.common.polling import backoff, claim_call, claim_due, verify_next_check, verify_window_end
from apps.common.publish import publish_after_commit
from apps.gateways import reasons
from apps.gateways.base import (
    Account,
    ChannelError,
    ChannelResult,
    ChannelTimeout,
    RecallResult,
    TransferRequest,
    TransferStatus,
    VerifyResult,
)
from apps.gateways.services import (
    Query,
    channel_for,
    channel_query,
    channel_query_many,
    channel_recall,
    channel_submit,
    destination_verify,
)
from apps.ledger.models import LedgerAccount
from apps.ledger.services import Line, ledger_account_get_or_create, ledger_post
from apps.payouts.checks import CheckReport, run_prechecks, source_ledger_key, source_owed
from apps.payouts.models import (
    Approval,
    Disbursement,
    DisbursementEvent,
    Incident,
    IncidentStep,
    Kind,
    Party,
    PrecheckResult,
)
from apps.payouts.signals import payout_anomaly, payout_event_recorded, payout_state_changed
from apps.risk.services import risk_record

logger = logging.getLogger(__name__)

S = Disbursement.Status
R = PrecheckResult.Result
MAX_SETTLEMENT_LINES = 500


# --- helpers ------------------------------------------------------------------------------------


def _lock(pk: int) -> Disbursement:
    # of=("self",): the joined rows are nullable, and PostgreSQL refuses FOR UPDATE on an outer join.
    return (
        Disbursement.objects.select_for_update(of=("self",))
        .select_related("channel", "destination_account", "merchant", "customer")
        .get(pk=pk)
    )


def _record(
    d: Disbursement,
    *,
    code: str,
    party: str,
    actor: str,
    from_status: str = "",
    message_key: str | None = None,
    detail: dict | None = None,
) -> DisbursementEvent:
    event = DisbursementEvent.objects.create(
        disbursement=d,
        code=code,
        from_status=from_status,
        to_status=d.status,
        message_key=message_key or f"{d.kind}.{code}",
        responsible_party=party,
        actor=actor[:150],
        detail=detail or {},
    )
    payout_event_recorded.send(sender=Disbursement, disbursement=d, event=event)
    return event


def _move(
    d: Disbursement,
    transition: str,
    *,
    code: str,
    party: str,
    actor: str,
    fields: Sequence[str] = (),
    message_key: str | None = None,
    detail: dict | None = None,
) -> DisbursementEvent:
    """Run one FSM transition on a locked row, save it, write its event, announce after commit."""
    before = d.status
    getattr(d, transition)()
    d.save(update_fields=["status", "updated_at", *fields])
    event = _record(d, code=code, party=party, actor=actor, from_status=before, message_key=message_key, detail=detail)
    payload = {
        "disbursement_id": d.pk,
        "kind": d.kind,
        "merchant_id": d.merchant_id,
        "from_status": before,
        "to_status": d.status,
        "event_code": code,
        "responsible_party": party,
    }
    transaction.on_commit(lambda: payout_state_changed.send(sender=Disbursement, **payload), robust=True)
    return event


WITHDRAWAL_PROGRESS_SALT = "payouts.withdrawal.progress"


def withdrawal_progress_url(d: Disbursement) -> str:
    """The customer's signed, expiring link to one withdrawal's progress page (read-only)."""
    token = signing.dumps(d.pk, salt=WITHDRAWAL_PROGRESS_SALT, compress=True)
    return settings.PUBLIC_BASE_URL.rstrip("/") + reverse("track:withdrawal", kwargs={"token": token})


def withdrawal_get_by_progress_token(token: str) -> Disbursement | None:
    """The withdrawal a customer link points at, or None when tampered or expired."""
    try:
        pk = signing.loads(token, salt=WITHDRAWAL_PROGRESS_SALT, max_age=settings.REFUND_LINK_MAX_AGE)
    except signing.BadSignature:
        return None
    return Disbursement.objects.filter(pk=pk, kind=Kind.WITHDRAWAL).first()


def _anomaly(d: Disbursement, anomaly: str, detail: dict) -> None:
    logger.warning("%s anomaly id=%s kind=%s detail=%s", d.kind, d.pk, anomaly, detail)
    payload = {"disbursement_id": d.pk, "kind": d.kind, "merchant_id": d.merchant_id, "anomaly": anomaly}
    payload["detail"] = detail
    transaction.on_commit(lambda: payout_anomaly.send(sender=Disbursement, **payload), robust=True)


def _backoff(retry_count: int) -> timedelta:
    return backoff(retry_count, base=settings.PAYOUT_RETRY_BASE, cap=settings.PAYOUT_RETRY_CAP)


# --- ledger -------------------------------------------------------------------------------------


def _platform_account(kind: str, currency: str) -> LedgerAccount:
    return ledger_account_get_or_create(owner="platform", kind=kind, currency=currency)


def _source_lines(d: Disbursement, *, counter: LedgerAccount, amount: int, source_amount: int, out: bool) -> list[Line]:
    """Lines moving `source_amount` out of (or back into) the source account against `amount` on
    `counter` (in the payout currency). Across currencies both legs go through fx_clearing, so each
    currency balances on its own."""
    sign = 1 if out else -1  # money leaving a liability debits it
    owner, kind = source_ledger_key(d)
    source = ledger_account_get_or_create(owner=owner, kind=kind, currency=d.source_currency)
    if not d.is_cross_currency:
        return [Line(source, sign * source_amount), Line(counter, -sign * amount)]
    fx_source = _platform_account(LedgerAccount.Kind.FX_CLEARING, d.source_currency)
    fx_target = _platform_account(LedgerAccount.Kind.FX_CLEARING, d.currency)
    return [
        Line(source, sign * source_amount),
        Line(fx_source, -sign * source_amount),
        Line(fx_target, sign * amount),
        Line(counter, -sign * amount),
    ]


def _post(d: Disbursement, step: str, lines: list[Line], description: str) -> None:
    ledger_post(
        reference=f"{d.owner_reference}:{step}",
        kind=f"{d.kind}_{step.split(':')[0]}",
        lines=lines,
        description=description,
    )


def _in_flight() -> str:
    return LedgerAccount.Kind.PAYOUTS_IN_FLIGHT


class _WouldOverdrawError(Exception):
    """The in-flight posting would leave the source owing the platform."""


def _post_in_flight(d: Disbursement) -> bool:
    """Post source → in flight; False (and nothing posted) if the source balance would go negative."""
    flight = _platform_account(_in_flight(), d.currency)
    try:
        with transaction.atomic():
            _post(
                d,
                "inflight",
                _source_lines(d, counter=flight, amount=d.amount, source_amount=d.source_amount, out=True),
                f"{d.kind} {d.pk} sent",
            )
            # Read after our own UPDATE of the balance row: it includes every committed posting
            # and waits for none (we hold the row lock), so it is the real balance.
            if source_owed(d) < 0:
                raise _WouldOverdrawError
    except _WouldOverdrawError:
        return False
    return True


def _release_funds(d: Disbursement, why: str) -> None:
    if not d.has_funds_in_flight:
        return
    flight = _platform_account(_in_flight(), d.currency)
    _post(
        d,
        "release",
        _source_lines(d, counter=flight, amount=d.amount, source_amount=d.source_amount, out=False),
        f"{d.kind} {d.pk} released: {why}",
    )
    d.has_funds_in_flight = False


def _to_source(d: Disbursement, amount: int) -> int:
    """Part of the payout amount in source units, proportional to the original conversion, rounded
    down (a partial return never credits more than was taken)."""
    if not d.is_cross_currency:
        return amount
    return amount * d.source_amount // d.amount


# --- create and pre-check -----------------------------------------------------------------------


def _destination_extras(destination_account: dict, currency: str) -> tuple[dict, str, str]:
    account = dict(destination_account)
    country = (account.pop("country", None) or settings.PAYOUT_HOME_COUNTRY).upper()
    account_currency = account.pop("currency", None) or currency
    if len(country) != 2 or not country.isascii() or not country.isalpha():
        raise ServiceError(_("Unknown country."), fields={"destination_account.country": [_("ISO 3166 alpha-2 code.")]})
    if not currency_is_supported(account_currency):
        raise ServiceError(_("Unsupported currency."), fields={"destination_account.currency": [_("Unsupported.")]})
    return account, country, account_currency


def _validated_lines(settlement_lines: list[dict] | None) -> list[dict]:
    if not settlement_lines:
        return []
    if len(settlement_lines) > MAX_SETTLEMENT_LINES:
        raise ServiceError(
            _("Too many settlement lines."),
            fields={"settlement_lines": [format_lazy(_("At most {value}."), value=MAX_SETTLEMENT_LINES)]},
        )
    lines = []
    for line in settlement_lines:
        amount = line.get("amount")
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise ServiceError(
                _("Invalid settlement line."), fields={"settlement_lines": [_("Amounts are positive integers.")]}
            )
        lines.append({"reference": str(line.get("reference", ""))[:100], "amount": amount})
    return lines


def payout_create(
    *,
    merchant: Merchant,
    reference: str,
    amount: int,
    currency: str,
    destination_account: dict,
    actor: str,
    source_currency: str | None = None,
    settlement_lines: list[dict] | None = None,
    device_id: str = "",
    ip: str | None = None,
) -> Disbursement:
    """Open a payout of the merchant's payable balance to its bank account, then run the pre-checks.

    The row is committed in `checking` first (nothing leaves before the checks pass); the checks
    (one of them a channel call) then decide it: failed, held, pending_approval or approved, the
    last with its submission scheduled. A check that cannot finish leaves it in `checking` for the
    poller to run again. Raises, writing nothing: ServiceError for bad input (account number,
    currency, lines), ConflictError for a reference this merchant already used.
    """
    source_currency = source_currency or currency
    if not currency_is_supported(source_currency):
        raise ServiceError(_("Unsupported currency."), fields={"source_currency": [_("Unsupported currency.")]})
    lines = _validated_lines(settlement_lines)
    account_fields, country, account_currency = _destination_extras(destination_account, currency)
    if Disbursement.objects.filter(kind=Kind.PAYOUT, merchant=merchant, reference=reference).exists():
        raise _duplicate_reference()
    with transaction.atomic():
        account = bank_account_get_or_create(merchant=merchant, customer=None, **account_fields)
        try:
            with transaction.atomic():
                d = _create(
                    kind=Kind.PAYOUT,
                    merchant=merchant,
                    customer=None,
                    reference=reference,
                    amount=amount,
                    currency=currency,
                    source_currency=source_currency,
                    source_documents=lines,
                    destination_account=account,
                    destination_country=country,
                    destination_currency=account_currency,
                    device_id=device_id,
                    ip=ip,
                    actor=actor,
                )
        except IntegrityError:
            raise _duplicate_reference() from None
    return _checks_after_create(d)


def _duplicate_reference() -> ConflictError:
    return ConflictError(
        _("A payout with this reference already exists."),
        code="duplicate_reference",
        fields={"reference": [_("Already used.")]},
    )


def withdrawal_create(
    *,
    merchant: Merchant,
    customer_external_id: str,
    amount: int,
    currency: str,
    destination_account: dict,
    actor: str,
    source_currency: str | None = None,
    device_id: str = "",
    ip: str | None = None,
) -> Disbursement:
    """Open a withdrawal of a customer's wallet balance to their bank card, then run the pre-checks
    (as `payout_create`). Raises ServiceError, writing nothing, for an unknown customer or bad input."""
    customer = Customer.objects.filter(merchant=merchant, external_id=customer_external_id).first()
    if customer is None:
        raise ServiceError(_("Unknown customer."), fields={"customer": [_("No such customer.")]})
    source_currency = source_currency or currency
    if not currency_is_supported(source_currency):
        raise ServiceError(_("Unsupported currency."), fields={"source_currency": [_("Unsupported currency.")]})
    account_fields, country, account_currency = _destination_extras(destination_account, currency)
    with transaction.atomic():
        account = bank_account_get_or_create(merchant=merchant, customer=customer, **account_fields)
        d = _create(
            kind=Kind.WITHDRAWAL,
            merchant=merchant,
            customer=customer,
            reference="",
            amount=amount,
            currency=currency,
            source_currency=source_currency,
            source_documents=[],
            destination_account=account,
            destination_country=country,
            destination_currency=account_currency,
            device_id=device_id,
            ip=ip,
            actor=actor,
        )
    return _checks_after_create(d)


def _create(*, kind: str, actor: str, **fields) -> Disbursement:
    now = timezone.now()
    d = Disbursement(
        kind=kind,
        created_by=actor[:150],
        # Same currency: the source amount is the amount; otherwise the FX check decides it.
        source_amount=fields["amount"] if fields["currency"] == fields["source_currency"] else 0,
        next_poll_at=now + settings.PAYOUT_SUBMIT_GRACE,  # the poller re-runs checks a crash interrupted
        **fields,
    )
    d.save(force_insert=True)
    party = Party.MERCHANT if kind == Kind.PAYOUT else Party.CUSTOMER
    _record(d, code="created", party=party, actor=actor, detail={"amount": d.amount, "currency": d.currency})
    _move(d, "start_checks", code="checking", party=Party.PLATFORM, actor="system")
    _audit(
        d,
        "create",
        after={
            "reference": d.reference,
            "amount": d.amount,
            "currency": d.currency,
            "destination_account": d.destination_account.masked_number,
        },
    )
    return d


def _audit(d: Disbursement, verb: str, *, before: dict | None = None, after: dict | None = None) -> None:
    """The audit row of a staff or money-moving action on `d` ("payout.approve", "withdrawal.cancel"…)."""
    audit_record(
        action=f"{d.kind}.{verb}",
        target_type=d.kind,
        target_id=d.pk,
        merchant_id=d.merchant_id,
        before=before,
        after=after,
    )


def _checks_after_create(d: Disbursement) -> Disbursement:
    try:
        return payout_run_checks(disbursement_id=d.pk)
    except Exception:
        # The row is committed in `checking`: the poller runs the checks again. Raising here would
        # let the client retry the create and open a second payout.
        logger.exception("pre-checks of %s %s failed; the poller runs them again", d.kind, d.pk)
        return Disbursement.objects.get(pk=d.pk)


def _verify(d: Disbursement) -> VerifyResult | ChannelError | None:
    account = d.destination_account
    answer = destination_verify(
        account=Account(holder_name=account.holder_name, bank=account.bank, number=account.reveal_number()),
        reference=d.owner_reference,
        request_id=f"{d.owner_reference}:verify",
    )
    if isinstance(answer, VerifyResult) and answer.ok:
        bank_account_mark_verified(bank_account=account)
    return answer


def _lock_owner(disbursement_id: int) -> None:
    """Lock the row of whoever the money is paid from: the merchant (payout) or the customer
    (withdrawal). Taken before the disbursement's own lock, always in that order."""
    kind, merchant_id, customer_id = (
        Disbursement.objects.filter(pk=disbursement_id).values_list("kind", "merchant_id", "customer_id").get()
    )
    if kind == Kind.PAYOUT:
        Merchant.objects.select_for_update().filter(pk=merchant_id).values_list("pk", flat=True).get()
    else:
        Customer.objects.select_for_update().filter(pk=customer_id).values_list("pk", flat=True).get()


def payout_run_checks(*, disbursement_id: int) -> Disbursement:
    """Run every pre-check of a payout or withdrawal in `checking` and act on the results.

    Account verification asks the channel first, outside any transaction; a channel that cannot
    answer leaves the row in `checking` for the poller to try again (VERIFY_ATTEMPTS in all, then
    the verification check holds it). Then, under the owner's
    lock (merchant or customer) and the row's, the other checks read balances, reservations,
    limits and recent movements, one result row each, plus a risk observation; any failed check
    fails the movement (nothing was sent, nothing posted), any held one holds it (a suspected
    duplicate is announced), any review sends it to approval (two approvers when large), else it
    is approved and its submission scheduled. No-op unless `checking`. Callers: the create
    services, the poller.
    """
    d = Disbursement.objects.select_related("destination_account").get(pk=disbursement_id)
    if d.status != S.CHECKING:
        return d
    verification = _verify(d)
    with transaction.atomic():
        _lock_owner(disbursement_id)
        d = _lock(disbursement_id)
        if d.status != S.CHECKING:
            return d
        if isinstance(verification, ChannelError) and _verification_retry(d, verification):
            return d
        report = run_prechecks(d, verification=verification)
        PrecheckResult.objects.bulk_create(
            PrecheckResult(
                disbursement=d,
                name=outcome.name,
                result=outcome.result,
                detail=outcome.detail,
                responsible_party=outcome.party,
            )
            for outcome in report.outcomes
        )
        risk_record(
            scope=d.kind,
            merchant=d.merchant,
            subject_id=d.pk,
            context=report.risk_context,
            verdict=report.risk_verdict,
        )
        _decide(d, report)
    return d


# A channel that cannot answer a verification is asked again (by the poller, with backoff) this many
# times in all before the movement is held for a person: a slow answer is not a reason to stop it.
VERIFY_ATTEMPTS = 3


def _verification_retry(d: Disbursement, error: ChannelError) -> bool:
    """Leave the row in `checking` to verify again later; False once the attempts are used up."""
    earlier = d.events.filter(code="verification_unanswered").count()
    if earlier + 1 >= VERIFY_ATTEMPTS:
        return False
    d.next_poll_at = timezone.now() + _backoff(earlier)
    d.save(update_fields=["next_poll_at"])
    code = error.reason.code if error.reason else "channel_error"
    _record(
        d,
        code="verification_unanswered",
        party=Party.BANK,
        actor="prechecks",
        from_status=d.status,
        detail={"code": code, "attempt": earlier + 1, "next_at": d.next_poll_at.isoformat()},
    )
    return True


def _decide(d: Disbursement, report: CheckReport) -> None:
    d.source_amount = report.source_amount
    fields = ["source_amount", "review_reasons", "required_approvals", "next_poll_at"]
    if report.conversion is not None:
        d.fx_pair = report.conversion.pair
        d.fx_rate = report.conversion.rate
        d.fx_rate_source = report.conversion.rate_source
        d.fx_rounding = report.conversion.rounding
        fields += ["fx_pair", "fx_rate", "fx_rate_source", "fx_rounding"]
    d.review_reasons = report.review_reasons
    d.required_approvals = report.required_approvals
    d.next_poll_at = None
    failed, held = report.with_result(R.FAILED), report.with_result(R.HELD)
    if failed:
        first = failed[0]
        d.failure_code = f"precheck_{first.name}"
        d.responsible_party = first.party or Party.PLATFORM
        _move(
            d,
            "fail_checks",
            code="precheck_failed",
            party=d.responsible_party,
            actor="prechecks",
            fields=[*fields, "failure_code", "responsible_party"],
            message_key=f"{d.kind}.precheck_failed.{first.name}",
            detail={"failed": [outcome.name for outcome in failed], "reason": first.detail.get("reason", "")},
        )
        return
    if held:
        d.hold_reason = ", ".join(outcome.name for outcome in held)
        _move(
            d,
            "hold",
            code="held",
            party=held[0].party or Party.PLATFORM,
            actor="prechecks",
            fields=[*fields, "hold_reason"],
            detail={"held": [outcome.name for outcome in held]},
        )
        duplicate = next((outcome for outcome in held if outcome.name == "duplicate"), None)
        if duplicate is not None:
            _anomaly(d, "duplicate_suspected", {**duplicate.detail, "amount": d.amount, "currency": d.currency})
        return
    if report.review_reasons:
        _move(
            d,
            "request_approval",
            code="pending_approval",
            party=Party.PLATFORM,
            actor="prechecks",
            fields=fields,
            detail={"reasons": report.review_reasons, "approvals_required": report.required_approvals},
        )
        return
    _move(d, "approve_auto", code="approved", party=Party.PLATFORM, actor="prechecks", fields=fields)
    _schedule_submit(d)


def _schedule_submit(d: Disbursement) -> None:
    """Queue the submission after commit; the poller submits it if the task is lost."""
    from apps.payouts.tasks import payout_submit_task  # tasks import this module

    d.next_poll_at = timezone.now() + settings.PAYOUT_SUBMIT_GRACE
    d.save(update_fields=["next_poll_at"])
    pk = d.pk
    publish_after_commit(payout_submit_task, pk)


# --- approval, hold, cancel ---------------------------------------------------------------------


def _approver_party(approver: User) -> str:
    return Party.MERCHANT if approver.merchant_id else Party.PLATFORM


def _check_approver(d: Disbursement, approver: User) -> None:
    allowed = approver.is_active and (
        (approver.merchant_id == d.merchant_id and approver.role in settings.PAYOUT_APPROVER_ROLES)
        or (approver.merchant_id is None and approver.is_staff)
    )
    if not allowed:
        raise ServiceError(
            _("This person may not approve payouts for this merchant."),
            code="approver_not_allowed",
            fields={
                "approver": [
                    format_lazy(
                        _("Must be active staff with a role in {value}."),
                        value=", ".join(settings.PAYOUT_APPROVER_ROLES),
                    )
                ]
            },
        )


def payout_needs_second_factor(d: Disbursement) -> bool:
    """The approval that would complete a large movement (the second of its two) needs a code."""
    large = "large_amount" in d.review_reasons or d.source_amount >= settings.PAYOUT_LARGE_AMOUNT
    return large and Approval.objects.filter(disbursement=d).exists()


def payout_approve(*, disbursement_id: int, approver: User, note: str = "", otp_token: str = "") -> Disbursement:
    """One staff approval (checker) of a payout or withdrawal waiting for approval.

    Maker-checker: the person who created it cannot approve it (422 creator_cannot_approve), and
    nobody approves twice (409 duplicate_approver); a large one needs two different approvers, and
    the second of them the current code of their authenticator (`otp_token`; 422 otp_required,
    otp_invalid for a wrong or already used one, otp_not_enrolled, otp_throttled). When enough
    approvals are in, it moves to `approved` and its submission is scheduled. Locks the row;
    ServiceError (nothing written) for anything else than `pending_approval`.
    """
    with transaction.atomic():
        d = _lock(disbursement_id)
        _check_approver(d, approver)
        if d.status != S.PENDING_APPROVAL:
            raise InvalidStateError(
                format_lazy(
                    _("Only a {kind} waiting for approval can be approved (this one is {status})."),
                    kind=d.kind,
                    status=d.status,
                )
            )
        username = approver.get_username()
        if username == d.created_by:
            raise UnprocessableError(
                format_lazy(
                    _(
                        "The person who created this {kind} cannot approve it (maker-checker): "
                        "another staff member must."
                    ),
                    kind=d.kind,
                ),
                code="creator_cannot_approve",
                fields={"approver": [_("Is the creator.")]},
            )
        if Approval.objects.filter(disbursement=d, approver=approver).exists():
            raise ConflictError(
                format_lazy(
                    _("{username} has already approved this {kind}; the next approval must come from someone else."),
                    username=username,
                    kind=d.kind,
                ),
                code="duplicate_approver",
                fields={"approver": [_("Already approved.")]},
            )
        # Checked last, under the row lock. A refused code is raised after the block: the block
        # then commits only django-otp's failure count (its guessing throttle), no approval.
        refusal = staff_totp_refusal(user=approver, token=otp_token) if payout_needs_second_factor(d) else None
        if refusal is None:
            _approval_record(d, approver, note)
    if refusal is not None:
        raise refusal
    return d


def _approval_record(d: Disbursement, approver: User, note: str) -> None:
    username = approver.get_username()
    try:
        with transaction.atomic():
            Approval.objects.create(disbursement=d, approver=approver, note=note)
    except IntegrityError:
        raise ConflictError(
            format_lazy(_("{username} has already approved this {kind}."), username=username, kind=d.kind),
            code="duplicate_approver",
        ) from None
    count = Approval.objects.filter(disbursement=d).count()
    party = _approver_party(approver)
    detail = {"approvals": count, "required": d.required_approvals, "note": note}
    if count >= max(1, d.required_approvals):
        _move(d, "approve", code="approved", party=party, actor=username, detail=detail)
        _schedule_submit(d)
    else:
        _record(d, code="approval_recorded", party=party, actor=username, from_status=d.status, detail=detail)
    _audit(
        d,
        "approve",
        before={"status": S.PENDING_APPROVAL, "approvals": count - 1},
        after={"status": d.status, "approvals": count, "approver": username},
    )


def payout_release(*, disbursement_id: int, actor: str, note: str = "") -> Disbursement:
    """A person looked at a held payout or withdrawal and lets it go on: to approval, which needs at
    least one approver (maker-checker applies there)."""
    with transaction.atomic():
        d = _lock(disbursement_id)
        if d.status != S.HELD:
            raise InvalidStateError(
                format_lazy(
                    _("Only a held {kind} can be released (this one is {status})."), kind=d.kind, status=d.status
                )
            )
        if d.hold_kind == Disbursement.HoldKind.FREEZE:
            raise ConflictError(
                format_lazy(
                    _("This {kind} is held by a freeze: it goes on by itself when the freeze is lifted."), kind=d.kind
                ),
                code="held_by_freeze",
            )
        before = {"status": d.status, "required_approvals": d.required_approvals}
        d.required_approvals = max(1, d.required_approvals)
        d.review_reasons = sorted({*d.review_reasons, "released_from_hold"})
        _move(
            d,
            "release",
            code="released",
            party=Party.MERCHANT,
            actor=actor,
            fields=["required_approvals", "review_reasons"],
            detail={"note": note, "hold_reason": d.hold_reason},
        )
        _audit(d, "release", before=before, after={"status": d.status, "required_approvals": d.required_approvals})
    return d


def payout_cancel(*, disbursement_id: int, actor: str, party: str = Party.MERCHANT, note: str = "") -> Disbursement:
    """Cancel a payout or withdrawal that is not with a bank (up to approved, held, or failed);
    money still in flight from a failed attempt goes back to the source."""
    with transaction.atomic():
        d = _lock(disbursement_id)
        cancellable = (S.CREATED, S.CHECKING, S.PENDING_APPROVAL, S.APPROVED, S.HELD, S.FAILED)
        if d.status not in cancellable:
            raise InvalidStateError(
                format_lazy(_("A {kind} that is {status} can no longer be cancelled."), kind=d.kind, status=d.status)
            )
        before = {"status": d.status}
        _release_funds(d, "cancelled")
        d.next_poll_at = None
        _move(
            d,
            "cancel",
            code="cancelled",
            party=party,
            actor=actor,
            fields=["next_poll_at", "has_funds_in_flight"],
            detail={"note": note},
        )
        _audit(d, "cancel", before=before, after={"status": d.status, "note": note})
    return d


# --- submission ---------------------------------------------------------------------------------


def _transfer_request(d: Disbursement) -> TransferRequest:
    account = d.destination_account
    return TransferRequest(
        request_id=d.request_id,
        reference=d.owner_reference,
        amount=d.amount,
        currency=d.currency,
        account=Account(holder_name=account.holder_name, bank=account.bank, number=account.reveal_number()),
        kind=d.kind,
        memo=d.reference or f"{d.kind} {d.pk}",
    )


def payout_submit(*, disbursement_id: int) -> Disbursement:
    """Send an approved payout or withdrawal to a channel, exactly once.

    Commits `submitted` and the in-flight ledger posting (first attempt only) before calling the
    bank; the answer is then applied like a webhook. A timeout moves it to `unknown`, queried
    before anything is sent again. Channel: `channel_for(capability=kind)`, avoiding the last one
    after an outage. If the source balance no longer covers it (something else spent it since the
    checks) it is held instead, nothing posted; if the receiving customer or the destination account
    is frozen it is held until the freezes lift (`_hold_if_frozen`, under the same locks: retries
    and failovers come through here too). Safe to call twice: only `approved` is sent.
    Locks the owner, then the row, like the pre-checks: the move from "reserved" to "posted" must
    not fall between the two reads of a concurrent check (balance, then reservations). Callers:
    the submit task, the poller, retries.
    """
    with transaction.atomic():
        _lock_owner(disbursement_id)
        d = _lock(disbursement_id)
        if d.status != S.APPROVED:
            return d
        if _hold_if_frozen(d, actor="system"):
            return d
        avoid = [d.channel.code] if d.channel and d.failure_code == reasons.OUTAGE.code else []
        channel = channel_for(capability=d.kind, exclude=avoid) or channel_for(capability=d.kind)
        if channel is None:
            d.next_poll_at = timezone.now() + settings.PAYOUT_POLL_INTERVAL
            d.save(update_fields=["next_poll_at"])
            logger.error("no enabled channel for %ss; %s=%s waits", d.kind, d.kind, d.pk)
            return d
        if not d.has_funds_in_flight:
            if not _post_in_flight(d):
                d.hold_reason = "insufficient_balance_at_submit"
                d.next_poll_at = None
                _move(
                    d,
                    "hold",
                    code="held",
                    party=Party.PLATFORM,
                    actor="system",
                    fields=["hold_reason", "next_poll_at"],
                    detail={"held": ["balance_sufficient"], "owed": source_owed(d)},
                )
                _anomaly(d, "insufficient_funds_at_submit", {"source_amount": d.source_amount})
                return d
            d.has_funds_in_flight = True
        now = timezone.now()
        d.channel = channel
        d.attempt += 1
        d.send_seq += 1
        d.submitted_at = now
        d.next_poll_at = now + settings.PAYOUT_POLL_INTERVAL
        _move(
            d,
            "submit",
            code="submitted",
            party=Party.PLATFORM,
            actor="system",
            fields=["channel", "attempt", "send_seq", "submitted_at", "next_poll_at", "has_funds_in_flight"],
            detail={"channel": channel.code, "request_id": d.request_id, "attempt": d.attempt},
        )
    return _send(d)


def _send(d: Disbursement) -> Disbursement:
    """Call the channel for a row committed as `submitted` (no transaction may be open). Each
    submit or resubmit owes one call, claimed first: a racing worker finds nothing to send."""
    if not claim_call(Disbursement, d.pk, owed="send_seq", done="sent_seq"):
        logger.info("send for %s=%s already claimed; not calling the channel again", d.kind, d.pk)
        return d
    request = _transfer_request(d)
    try:
        result = channel_submit(channel=d.channel, request=request)
    except ChannelTimeout:
        with transaction.atomic():
            d = _lock(d.pk)
            if d.status in (S.SUBMITTED, S.PROCESSING):
                d.next_poll_at = timezone.now() + settings.PAYOUT_UNKNOWN_QUERY_DELAY
                _move(
                    d,
                    "mark_unknown",
                    code="unknown",
                    party=Party.BANK,
                    actor="system",
                    fields=["next_poll_at"],
                    detail={"request_id": request.request_id},
                )
        return d
    except ChannelError as exc:
        # Raised only when the bank was not reached or refused the instruction unexecuted.
        result = ChannelResult(
            status=TransferStatus.FAILED,
            request_id=request.request_id,
            reason=exc.reason or reasons.OUTAGE,
            raw_code=exc.raw_code or "channel_error",
        )
    return _apply_and_follow_up(d.pk, result, source="submit")


def payout_resend(*, disbursement_id: int) -> Disbursement:
    """Send again a row the bank confirmed it never executed (`submitted` after a resubmit)."""
    d = Disbursement.objects.select_related("channel", "destination_account").get(pk=disbursement_id)
    if d.status != S.SUBMITTED:
        return d
    return _send(d)


# --- applying channel results -------------------------------------------------------------------


def _parse_request_id(request_id: str) -> tuple[str, int] | None:
    parts = request_id.split(":")
    if len(parts) != 3 or parts[0] not in Kind.values or not parts[1].isdigit() or parts[2] != "submit":
        return None
    return parts[0], int(parts[1])


def payout_apply_channel_result(result: ChannelResult, *, channel_code: str, source: str) -> str:
    """Registry handler for "payout:*" and "withdrawal:*" results from webhooks (runs inside the
    receiver's transaction). Never calls a bank: a resend goes to a worker after commit."""
    parsed = _parse_request_id(result.request_id)
    if parsed is None:
        return "unknown_reference"
    kind, pk = parsed
    if not Disbursement.objects.filter(pk=pk, kind=kind).exists():
        return "unknown_reference"
    d = _lock(pk)
    outcome = _apply(d, result, source=source)
    if outcome == "resend":
        from apps.payouts.tasks import payout_resend_task  # tasks import this module

        publish_after_commit(payout_resend_task, pk)
    return outcome


def _apply_and_follow_up(pk: int, result: ChannelResult, *, source: str) -> Disbursement:
    with transaction.atomic():
        d = _lock(pk)
        outcome = _apply(d, result, source=source)
    if outcome == "resend":
        return _send(d)
    return d


def _apply(d: Disbursement, result: ChannelResult, *, source: str) -> str:
    """Move a locked row according to a channel result; never backwards. Returns what happened."""
    status = d.status
    actor = f"channel:{source}"
    wrong_amount = result.amount is not None and result.amount != d.amount
    wrong_currency = bool(result.currency) and result.currency != d.currency
    if wrong_amount or wrong_currency:
        _anomaly(
            d, "amount_mismatch", {"reported": [result.amount, result.currency], "expected": [d.amount, d.currency]}
        )
        return "rejected_mismatch"
    if result.channel_reference and not d.channel_reference:
        d.channel_reference = result.channel_reference[:128]
        d.save(update_fields=["channel_reference"])

    kind = result.status
    if kind in (TransferStatus.ACCEPTED, TransferStatus.PROCESSING, TransferStatus.HELD):
        held = kind == TransferStatus.HELD
        if status in (S.SUBMITTED, S.UNKNOWN):
            d.next_poll_at = timezone.now() + settings.PAYOUT_POLL_INTERVAL
            _move(
                d,
                "mark_processing",
                code="held_by_bank" if held else "processing",
                party=Party.BANK,
                actor=actor,
                fields=["next_poll_at"],
            )
            return "applied"
        if status == S.PROCESSING:
            last = d.events.order_by("-created_at", "-id").values_list("code", flat=True).first()
            if held and last != "held_by_bank":
                _record(d, code="held_by_bank", party=Party.BANK, actor=actor, from_status=status)
                return "applied"
            return "no_change"
        return "ignored_stale"

    if kind == TransferStatus.SUCCEEDED:
        if status in Disbursement.IN_FLIGHT:
            _pay(d, actor)
            return "applied"
        if status in (S.PAID, S.RETURNED, S.RECALL_REQUESTED, S.RECALLED, S.RECALL_FAILED):
            return "no_change"
        return "ignored_stale"

    if kind == TransferStatus.RETURNED:
        if status in Disbursement.IN_FLIGHT:
            _pay(d, actor)
            status = d.status
        if status in (S.PAID, S.RECALL_REQUESTED, S.RECALL_FAILED):
            _return(d, actor, result)
            return "applied"
        return "no_change" if status in (S.RETURNED, S.RECALLED) else "ignored_stale"

    if kind == TransferStatus.FAILED:
        if status in Disbursement.IN_FLIGHT:
            _fail(d, actor, result)
            return "applied"
        if status == S.PAID:
            _anomaly(d, "late_failure_after_success", {"raw_code": result.raw_code})
        return "ignored_stale"

    if kind == TransferStatus.NOT_FOUND:
        if status == S.SUBMITTED and d.channel is not None and d.submitted_at is not None:
            # Committed as submitted, yet the bank never saw it: once our own call can no longer be
            # on its way, the process died between commit and call. Query showed nothing: resend.
            window = timedelta(seconds=d.channel.timeout_seconds) + settings.PAYOUT_UNKNOWN_QUERY_DELAY
            if timezone.now() - d.submitted_at > window:
                _move(
                    d,
                    "mark_unknown",
                    code="unknown",
                    party=Party.PLATFORM,
                    actor=actor,
                    detail={"request_id": d.request_id, "why": "submitted but the call never reached the bank"},
                )
                status = d.status
        if status == S.UNKNOWN:
            if _hold_if_frozen(d, actor=actor):
                return "held"
            d.submitted_at = timezone.now()
            d.next_poll_at = d.submitted_at + settings.PAYOUT_POLL_INTERVAL
            d.send_seq += 1
            _move(
                d,
                "resubmit",
                code="resubmitted",
                party=Party.PLATFORM,
                actor=actor,
                fields=["next_poll_at", "submitted_at", "send_seq"],
                detail={"request_id": d.request_id, "why": "bank confirmed it never executed the request"},
            )
            return "resend"
        return "no_change"
    return "no_change"


def _next_verify_check(d: Disbursement, now: datetime) -> datetime | None:
    return verify_next_check(since=d.paid_at, now=now, checks=settings.PAYOUT_VERIFY_CHECKS)


def _pay(d: Disbursement, actor: str) -> None:
    now = timezone.now()
    d.paid_at = now
    d.verify_until = verify_window_end(since=now, checks=settings.PAYOUT_VERIFY_CHECKS)
    d.next_poll_at = _next_verify_check(d, now)
    d.failure_code = ""
    d.responsible_party = ""
    d.has_funds_in_flight = False
    _move(
        d,
        "pay",
        code="paid",
        party=Party.BANK,
        actor=actor,
        fields=["paid_at", "verify_until", "next_poll_at", "failure_code", "responsible_party", "has_funds_in_flight"],
    )
    flight = _platform_account(_in_flight(), d.currency)
    cash = _platform_account(LedgerAccount.Kind.CASH_CLEARING, d.currency)
    _post(d, "paid", [Line(flight, d.amount), Line(cash, -d.amount)], f"{d.kind} {d.pk} paid")


def _recovered(d: Disbursement) -> int:
    """What negotiated returns already brought back of this movement's amount."""
    return sum(Incident.objects.filter(disbursement=d).values_list("amount_recovered", flat=True))


def _money_back(d: Disbursement, step: str, amount: int, why: str) -> int:
    """Post `amount` (payout currency) from cash back to the source; returns what was posted."""
    if amount <= 0:
        return 0
    cash = _platform_account(LedgerAccount.Kind.CASH_CLEARING, d.currency)
    source_amount = d.source_amount if amount == d.amount else _to_source(d, amount)
    _post(d, step, _source_lines(d, counter=cash, amount=amount, source_amount=source_amount, out=False), why)
    return amount


def _all_back(d: Disbursement, step: str, actor: str, why: str) -> None:
    """The whole movement came back (bank return, recall): post what negotiated returns did not
    already bring back, and close the gap in the open incident."""
    incident = _open_incident(d)
    outstanding = d.amount - _recovered(d)
    posted = _money_back(d, step, outstanding, why)
    if incident is not None and posted:
        incident.amount_recovered = min(incident.amount_at_risk, incident.amount_recovered + posted)
        incident.save(update_fields=["amount_recovered"])
        action = IncidentStep.Action.RECALL_SUCCEEDED if step == "recalled" else IncidentStep.Action.FUNDS_RETURNED
        _incident_step(
            incident, action, actor=actor, amount=posted, detail={"ledger_reference": f"{d.owner_reference}:{step}"}
        )


def _return(d: Disbursement, actor: str, result: ChannelResult) -> None:
    d.next_poll_at = None
    d.failure_code = result.reason.code if result.reason else "returned"
    d.responsible_party = result.reason.responsible_party if result.reason else Party.BANK
    _move(
        d,
        "mark_returned",
        code="returned",
        party=d.responsible_party,
        actor=actor,
        fields=["next_poll_at", "failure_code", "responsible_party"],
        message_key=f"{d.kind}.returned.{d.failure_code}",
        detail={"raw_code": result.raw_code},
    )
    _all_back(d, "returned", actor, f"{d.kind} {d.pk} returned by the bank")
    _anomaly(d, "reversed", {"failure_code": d.failure_code, "amount": d.amount, "currency": d.currency})


def _fail(d: Disbursement, actor: str, result: ChannelResult) -> None:
    reason = result.reason
    d.failure_code = reason.code if reason else (result.raw_code or "failed")
    d.responsible_party = reason.responsible_party if reason else Party.BANK
    retryable = bool(reason and reason.retryable) and d.retry_count < settings.PAYOUT_MAX_RETRIES
    d.next_poll_at = timezone.now() + _backoff(d.retry_count) if retryable else None
    if not retryable:
        _release_funds(d, d.failure_code)
    _move(
        d,
        "fail",
        code="failed",
        party=d.responsible_party,
        actor=actor,
        fields=["failure_code", "responsible_party", "next_poll_at", "has_funds_in_flight"],
        message_key=f"{d.kind}.failed.{d.failure_code}",
        detail={"raw_code": result.raw_code, "retryable": retryable, "retry_count": d.retry_count},
    )


# --- polling and retries ------------------------------------------------------------------------

POLLED_STATUSES = (
    S.HELD,  # freeze holds only: a review hold has no next poll
    S.CHECKING,
    S.APPROVED,
    S.SUBMITTED,
    S.PROCESSING,
    S.UNKNOWN,
    S.PAID,
    S.FAILED,
    S.RECALL_REQUESTED,
)


def payout_claim_due(*, limit: int, lease: timedelta | None = None) -> list[int]:
    """Claim up to `limit` payouts and withdrawals whose next poll is due; concurrent pollers get
    disjoint sets (apps.common.polling.claim_due)."""
    return claim_due(Disbursement, statuses=POLLED_STATUSES, limit=limit, lease=lease or settings.PAYOUT_POLL_INTERVAL)


_POLL_SELECT = ("channel", "destination_account")


def payout_poll(*, disbursement_id: int) -> Disbursement:
    """Bring one due row forward: re-run interrupted checks, submit if stuck approved, retry if
    failed retryably, send an owed recall, else query the bank."""
    d = Disbursement.objects.select_related(*_POLL_SELECT).get(pk=disbursement_id)
    done = _poll_without_query(d)
    if done is not None:
        return done
    try:
        result = channel_query(channel=d.channel, request_id=d.request_id, reference=d.owner_reference)
    except ChannelError:
        return _poll_unanswered(d)
    return _poll_answered(d, result)


def payout_poll_batch(*, disbursement_ids: Sequence[int]) -> list[Disbursement]:
    """`payout_poll` for a claimed chunk: bank queries run concurrently (HTTP threads only), results
    apply one by one in this thread. A row whose poll raises is logged and skipped: its lease runs
    out and the next tick polls it again. Caller: the batch task."""
    rows = Disbursement.objects.select_related(*_POLL_SELECT).in_bulk(disbursement_ids)
    polled: list[Disbursement] = []
    to_query: list[Disbursement] = []
    for pk in disbursement_ids:
        d = rows.get(pk)
        if d is None:
            continue
        try:
            done = _poll_without_query(d)
        except Exception:
            logger.exception("poll of %s=%s failed; it is polled again when its lease ends", d.kind, pk)
            continue
        if done is None:
            to_query.append(d)
        else:
            polled.append(done)
    answers = channel_query_many(
        queries=[Query(d.channel, d.request_id, d.owner_reference) for d in to_query],
        concurrency=settings.PAYOUT_POLL_CONCURRENCY,
    )
    for d, answer in zip(to_query, answers, strict=True):
        try:
            if isinstance(answer, ChannelError):
                polled.append(_poll_unanswered(d))
            elif isinstance(answer, Exception):
                raise answer
            else:
                polled.append(_poll_answered(d, answer))
        except Exception:
            logger.exception("poll of %s=%s failed; it is polled again when its lease ends", d.kind, d.pk)
    return polled


def _poll_without_query(d: Disbursement) -> Disbursement | None:
    if d.status == S.CHECKING:
        return payout_run_checks(disbursement_id=d.pk)
    if d.status == S.APPROVED:
        return payout_submit(disbursement_id=d.pk)
    if d.status == S.FAILED:
        return payout_retry(disbursement_id=d.pk)
    if d.status == S.RECALL_REQUESTED:
        return payout_recall_send(disbursement_id=d.pk, from_poll=True)
    if d.status == S.HELD:
        return payout_release_freeze_hold(disbursement_id=d.pk)
    if d.status == S.PAID and d.paid_at is None:  # no arrival time to schedule from
        Disbursement.objects.filter(pk=d.pk, status=S.PAID).update(next_poll_at=None)
        return d
    if d.status not in (S.SUBMITTED, S.PROCESSING, S.UNKNOWN, S.PAID) or d.channel is None:
        return d
    return None


def _poll_unanswered(d: Disbursement) -> Disbursement:
    now = timezone.now()
    # A verification check the bank did not answer is not repeated: the schedule's next one asks.
    next_at = _next_verify_check(d, now) if d.status == S.PAID else now + _backoff(1)
    Disbursement.objects.filter(pk=d.pk).update(next_poll_at=next_at)
    return d


def _poll_answered(d: Disbursement, result: ChannelResult) -> Disbursement:
    was_paid = d.status == S.PAID
    d = _apply_and_follow_up(d.pk, result, source="poll")
    if was_paid and d.status == S.PAID:
        next_at = _next_verify_check(d, timezone.now())
        Disbursement.objects.filter(pk=d.pk, status=S.PAID).update(next_poll_at=next_at)
    return d


def payout_retry(*, disbursement_id: int) -> Disbursement:
    """Send again a payout or withdrawal whose failure was retryable (its money is still in flight)."""
    with transaction.atomic():
        d = _lock(disbursement_id)
        if d.status != S.FAILED or d.next_poll_at is None:
            return d
        d.retry_count += 1
        _move(
            d,
            "retry",
            code="retrying",
            party=Party.PLATFORM,
            actor="system",
            fields=["retry_count"],
            detail={"retry_count": d.retry_count},
        )
        _audit(
            d,
            "retry",
            before={"status": S.FAILED, "retry_count": d.retry_count - 1},
            after={"status": d.status, "retry_count": d.retry_count},
        )
    return payout_submit(disbursement_id=disbursement_id)


# --- freeze holds (G17) --------------------------------------------------------------------------


def _freeze_hold(d: Disbursement):
    return freeze_hold_for(merchant_id=d.merchant_id, customer_ids=[d.customer_id], bank_account=d.destination_account)


def _hold_if_frozen(d: Disbursement, *, actor: str) -> bool:
    """Hold a locked payout or withdrawal, about to be sent (approved) or resent (unknown, the bank
    said it never executed it), whose receiving customer or destination account is frozen; True if
    held. A freeze hold (hold_kind "freeze") is released by the lift, not by a person.

    Nothing reaches the bank; money already posted in flight stays there (the submission after
    the hold reuses it). One `held_frozen` event names the freezes and who answers for them;
    `payout_anomaly` "held_frozen" becomes a P1 alert; the customer is not told it failed. The
    poller looks again every FREEZE_HOLD_RECHECK. Callers: `payout_submit`, `_apply`.
    """
    hold = _freeze_hold(d)
    if hold is None:
        return False
    d.hold_kind = Disbursement.HoldKind.FREEZE
    d.hold_reason = "frozen: freeze " + ", ".join(str(pk) for pk in hold.freeze_ids)
    d.next_poll_at = timezone.now() + settings.FREEZE_HOLD_RECHECK
    _move(
        d,
        "hold_for_freeze",
        code="held_frozen",
        party=hold.party,
        actor=actor,
        fields=["hold_kind", "hold_reason", "next_poll_at"],
        detail=hold.detail,
    )
    _anomaly(d, "held_frozen", {**hold.detail, "amount": d.amount, "currency": d.currency})
    return True


def payout_release_freeze_hold(*, disbursement_id: int, actor: str = "system") -> Disbursement:
    """Release a payout or withdrawal held by a freeze once no freeze holds it: back to `approved`,
    its submission scheduled. Exactly once: only a freeze-held row moves, under its lock, and only
    an `approved` one is ever sent. While a freeze still holds it, the next look is pushed by
    FREEZE_HOLD_RECHECK. Callers: the `account_unfrozen` receiver, the poller's sweep."""
    with transaction.atomic():
        d = _lock(disbursement_id)
        if d.status != S.HELD or d.hold_kind != Disbursement.HoldKind.FREEZE:
            return d
        if _freeze_hold(d) is not None:
            d.next_poll_at = timezone.now() + settings.FREEZE_HOLD_RECHECK
            d.save(update_fields=["next_poll_at"])
            return d
        d.hold_kind = Disbursement.HoldKind.REVIEW
        d.hold_reason = ""
        _move(
            d,
            "release_freeze_hold",
            code="hold_released",
            party=Party.PLATFORM,
            actor=actor,
            fields=["hold_kind", "hold_reason"],
        )
        _schedule_submit(d)
    return d


# --- recall -------------------------------------------------------------------------------------


def _open_incident(d: Disbursement) -> Incident | None:
    return Incident.objects.select_for_update().filter(disbursement=d).exclude(status=Incident.Status.RESOLVED).first()


def _incident_step(incident: Incident | None, action: str, *, actor: str, notes: str = "", amount=None, detail=None):
    if incident is None:
        return None
    return IncidentStep.objects.create(
        incident=incident, action=action, actor=actor[:150], notes=notes, amount=amount, detail=detail or {}
    )


def payout_recall_request(*, disbursement_id: int, actor: str, note: str = "") -> Disbursement:
    """Ask the channel to pull back a paid payout or withdrawal (again, after a refused recall).

    Commits `recall_requested` with one recall call owed, sent by a worker after commit (the
    poller sends it if that task is lost). ConflictError unless paid or recall_failed.
    """
    with transaction.atomic():
        d = _lock(disbursement_id)
        if d.status not in (S.PAID, S.RECALL_FAILED) or d.channel is None:
            raise InvalidStateError(
                format_lazy(
                    _("Only a paid {kind} can be recalled (this one is {status})."), kind=d.kind, status=d.status
                )
            )
        before = {"status": d.status}
        d.recall_seq += 1
        d.next_poll_at = timezone.now() + settings.PAYOUT_POLL_INTERVAL
        _move(
            d,
            "request_recall",
            code="recall_requested",
            party=Party.PLATFORM,
            actor=actor,
            fields=["recall_seq", "next_poll_at"],
            detail={"note": note},
        )
        _incident_step(_open_incident(d), IncidentStep.Action.RECALL_REQUESTED, actor=actor, notes=note)
        _audit(d, "recall", before=before, after={"status": d.status, "note": note})
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
            d = _lock(disbursement_id)
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
            d = _lock(disbursement_id)
            if d.status == S.RECALL_REQUESTED:
                d.next_poll_at = timezone.now() + _backoff(1)
                d.save(update_fields=["next_poll_at"])
                _record(
                    d,
                    code="recall_unanswered",
                    party=Party.BANK,
                    actor="system",
                    from_status=d.status,
                    detail={"error": type(exc).__name__},
                )
        return d
    with transaction.atomic():
        d = _lock(disbursement_id)
        if d.status != S.RECALL_REQUESTED:
            return d
        _apply_recall(d, answer)
    return d


def _apply_recall(d: Disbursement, answer: RecallResult) -> None:
    incident = _open_incident(d)
    d.next_poll_at = None
    if answer.ok:
        _move(d, "mark_recalled", code="recalled", party=Party.BANK, actor="channel:recall", fields=["next_poll_at"])
        _all_back(d, "recalled", "channel:recall", f"{d.kind} {d.pk} recalled")
        return
    _move(
        d,
        "mark_recall_failed",
        code="recall_failed",
        party=Party.BANK,
        actor="channel:recall",
        fields=["next_poll_at"],
        detail={"raw_code": answer.raw_code},
    )
    _anomaly(d, "recall_failed", {"raw_code": answer.raw_code, "amount": d.amount, "currency": d.currency})
    _incident_step(
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
        d = _lock(disbursement_id)
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
        _incident_step(incident, IncidentStep.Action.OPENED, actor=actor, notes=summary, detail={"status": d.status})
        _record(
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
        d = _lock(incident.disbursement_id)
        held = False
        if d.status in (S.PENDING_APPROVAL, S.APPROVED):
            d.hold_reason = f"incident {incident.pk}"
            d.next_poll_at = None
            _move(
                d,
                "hold",
                code="held",
                party=Party.PLATFORM,
                actor=actor,
                fields=["hold_reason", "next_poll_at"],
                detail={"incident_id": incident.pk},
            )
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
        _incident_step(
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
        _incident_step(incident, action, actor=actor, notes=notes)
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
        d = _lock(incident.disbursement_id)
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
        _money_back(d, f"recovered:{n}", amount, f"{d.kind} {d.pk}: negotiated return {n}")
        incident.amount_recovered += amount
        if incident.status in (Incident.Status.OPEN, Incident.Status.RECOVERING):
            incident.status = Incident.Status.NEGOTIATING
        incident.save(update_fields=["amount_recovered", "status"])
        _incident_step(
            incident,
            IncidentStep.Action.FUNDS_RETURNED,
            actor=actor,
            notes=notes,
            amount=amount,
            detail={"ledger_reference": f"{d.owner_reference}:recovered:{n}"},
        )
        _record(
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
        _incident_step(incident, IncidentStep.Action.LEGAL_ESCALATION, actor=actor, notes=notes)
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
        _incident_step(
            incident,
            IncidentStep.Action.RESOLVED,
            actor=actor,
            notes=notes,
            detail={"category": category, "amount_recovered": incident.amount_recovered},
        )
    return incident
