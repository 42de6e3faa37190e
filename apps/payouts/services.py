"""Every write to a payout or withdrawal that is the payouts' own: create, pre-check, approve
(maker-checker), hold, release, cancel; and the disbursement policy the transfer kernel
(apps.transfers) runs submission, channel results, polling, retries and freeze holds with.
Recalls and incidents: apps.payouts.incidents; ledger postings: apps.payouts.postings.

The two kinds share one table and one state machine (models.py); services named `payout_*` act on
either, by primary key. Locking: each service re-reads the row with `select_for_update()`; the
pre-checks and submissions first lock the owner (the merchant's row for a payout, the customer's
for a withdrawal) so that balance, limit and duplicate checks of one owner run one at a time.
Request ids are "<kind>:<id>:submit" for the life of the row: a retry, a resend after a timeout
and a failover to another channel all reuse it, and the bank dedupes on it.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core import signing
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from apps.accounts.models import Customer, Merchant, User
from apps.accounts.services import bank_account_get_or_create, staff_totp_refusal
from apps.common.errors import ConflictError, InvalidStateError, ServiceError, UnprocessableError
from apps.common.money import currency_is_supported
from apps.gateways.base import ChannelError, ChannelResult
from apps.ledger.models import LedgerAccount
from apps.ledger.services import Line
from apps.payouts.checks import CheckReport, run_prechecks, source_owed
from apps.payouts.models import Approval, Disbursement, DisbursementEvent, Kind, Party, PrecheckResult
from apps.payouts.postings import all_back, platform_account, post_in_flight, post_step, release_funds
from apps.payouts.signals import payout_anomaly, payout_event_recorded, payout_state_changed
from apps.risk.services import risk_record
from apps.transfers.lifecycle import announce_anomaly, audit, lock, move, record, stage
from apps.transfers.policy import TransferPolicy
from apps.transfers.services import (
    transfer_schedule_submit,
    transfer_submit,
    transfer_verification_unanswered,
    transfer_verify_destination,
)

logger = logging.getLogger(__name__)

S = Disbursement.Status
R = PrecheckResult.Result
MAX_SETTLEMENT_LINES = 500


# --- the customer's progress link ---------------------------------------------------------------


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
    record(
        DISBURSEMENTS, d, code="created", party=party, actor=actor, detail={"amount": d.amount, "currency": d.currency}
    )
    move(DISBURSEMENTS, d, "start_checks", code="checking", party=Party.PLATFORM, actor="system")
    audit(
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


def _checks_after_create(d: Disbursement) -> Disbursement:
    try:
        return payout_run_checks(disbursement_id=d.pk)
    except Exception:
        # The row is committed in `checking`: the poller runs the checks again. Raising here would
        # let the client retry the create and open a second payout.
        logger.exception("pre-checks of %s %s failed; the poller runs them again", d.kind, d.pk)
        return Disbursement.objects.get(pk=d.pk)


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
    verification = transfer_verify_destination(d, request_id=f"{d.owner_reference}:verify")
    with transaction.atomic():
        _lock_owner(disbursement_id)
        d = lock(DISBURSEMENTS, disbursement_id)
        if d.status != S.CHECKING:
            return d
        if isinstance(verification, ChannelError) and transfer_verification_unanswered(
            DISBURSEMENTS, d, verification, actor="prechecks", attempts=VERIFY_ATTEMPTS
        ):
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


VERIFY_ATTEMPTS = 3


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
        move(
            DISBURSEMENTS,
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
        move(
            DISBURSEMENTS,
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
            announce_anomaly(
                DISBURSEMENTS,
                d,
                "duplicate_suspected",
                {**duplicate.detail, "amount": d.amount, "currency": d.currency},
            )
        return
    if report.review_reasons:
        move(
            DISBURSEMENTS,
            d,
            "request_approval",
            code="pending_approval",
            party=Party.PLATFORM,
            actor="prechecks",
            fields=fields,
            detail={"reasons": report.review_reasons, "approvals_required": report.required_approvals},
        )
        return
    move(DISBURSEMENTS, d, "approve_auto", code="approved", party=Party.PLATFORM, actor="prechecks", fields=fields)
    transfer_schedule_submit(DISBURSEMENTS, d)


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
        d = lock(DISBURSEMENTS, disbursement_id)
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
        move(DISBURSEMENTS, d, "approve", code="approved", party=party, actor=username, detail=detail)
        transfer_schedule_submit(DISBURSEMENTS, d)
    else:
        record(
            DISBURSEMENTS, d, code="approval_recorded", party=party, actor=username, from_status=d.status, detail=detail
        )
    audit(
        d,
        "approve",
        before={"status": S.PENDING_APPROVAL, "approvals": count - 1},
        after={"status": d.status, "approvals": count, "approver": username},
    )


def disbursement_hold(d: Disbursement, *, reason: str, actor: str, detail: dict) -> None:
    """Hold a locked payout or withdrawal for a person to look at (released with `payout_release`):
    nothing is polled or sent until then. Callers: the submission (balance gone), an incident."""
    d.hold_reason = reason
    d.next_poll_at = None
    move(
        DISBURSEMENTS,
        d,
        "hold",
        code="held",
        party=Party.PLATFORM,
        actor=actor,
        fields=["hold_reason", "next_poll_at"],
        detail=detail,
    )


def payout_release(*, disbursement_id: int, actor: str, note: str = "") -> Disbursement:
    """A person looked at a held payout or withdrawal and lets it go on: to approval, which needs at
    least one approver (maker-checker applies there)."""
    with transaction.atomic():
        d = lock(DISBURSEMENTS, disbursement_id)
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
        move(
            DISBURSEMENTS,
            d,
            "release",
            code="released",
            party=Party.MERCHANT,
            actor=actor,
            fields=["required_approvals", "review_reasons"],
            detail={"note": note, "hold_reason": d.hold_reason},
        )
        audit(d, "release", before=before, after={"status": d.status, "required_approvals": d.required_approvals})
    return d


def payout_cancel(*, disbursement_id: int, actor: str, party: str = Party.MERCHANT, note: str = "") -> Disbursement:
    """Cancel a payout or withdrawal that is not with a bank (up to approved, held, or failed);
    money still in flight from a failed attempt goes back to the source."""
    with transaction.atomic():
        d = lock(DISBURSEMENTS, disbursement_id)
        cancellable = (S.CREATED, S.CHECKING, S.PENDING_APPROVAL, S.APPROVED, S.HELD, S.FAILED)
        if d.status not in cancellable:
            raise InvalidStateError(
                format_lazy(_("A {kind} that is {status} can no longer be cancelled."), kind=d.kind, status=d.status)
            )
        before = {"status": d.status}
        release_funds(d, "cancelled")
        d.next_poll_at = None
        move(
            DISBURSEMENTS,
            d,
            "cancel",
            code="cancelled",
            party=party,
            actor=actor,
            fields=["next_poll_at", "has_funds_in_flight"],
            detail={"note": note},
        )
        audit(d, "cancel", before=before, after={"status": d.status, "note": note})
    return d


# --- submission: the kernel's, the owner locked first --------------------------------------------


def payout_submit(*, disbursement_id: int) -> Disbursement:
    """Send an approved payout or withdrawal to a channel, exactly once (the kernel's
    `transfer_submit`, with the owner locked first and the in-flight posting checked against the
    source balance: `DisbursementPolicy.before_submit`)."""
    return transfer_submit(DISBURSEMENTS, disbursement_id)


# --- the disbursement policy --------------------------------------------------------------------------


class DisbursementPolicy(TransferPolicy):
    """What payouts and withdrawals plug into the transfer kernel: the owner's balance posted in
    flight once (a retry reuses it), holds a person or a freeze releases, recalls after payment."""

    label = "disbursement"
    prefixes = tuple(Kind.values)
    model = Disbursement
    event_model = DisbursementEvent
    event_fk = "disbursement"
    settings_prefix = "PAYOUT"
    state_changed_signal, anomaly_signal = payout_state_changed, payout_anomaly
    event_recorded_signal = payout_event_recorded
    anomaly_key = "anomaly"  # "kind" says payout or withdrawal
    tasks_module = "apps.payouts.tasks"
    lock_related = ("channel", "destination_account", "merchant", "customer")
    polled_statuses = (
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
    settle_transition, settled_status, settled_at_field = "pay", S.PAID, "paid_at"
    settled_family = (S.PAID, S.RETURNED, S.RECALL_REQUESTED, S.RECALLED, S.RECALL_FAILED)
    return_transition, returned_code, return_party = "mark_returned", S.RETURNED, Party.BANK
    returnable = (S.PAID, S.RECALL_REQUESTED, S.RECALL_FAILED)
    returned_family = (S.RETURNED, S.RECALLED)

    def signal_ids(self, item: Disbursement) -> dict:
        return {"disbursement_id": item.pk, "kind": item.kind}

    def lookup(self, request_id: str) -> int | None:
        parts = request_id.split(":")
        if len(parts) != 3 or parts[0] not in Kind.values or not parts[1].isdigit() or parts[2] != "submit":
            return None
        pk = int(parts[1])
        return pk if Disbursement.objects.filter(pk=pk, kind=parts[0]).exists() else None

    def lock_before(self, pk: int, step: str) -> None:
        # The move from "reserved" to "posted" must not fall between the two reads of a concurrent
        # pre-check (balance, then reservations): the owner first, as the checks take it.
        if step == "submit":
            _lock_owner(pk)

    def before_submit(self, item: Disbursement) -> bool:
        """Post the money in flight at the first attempt; if the source balance no longer covers it
        (something else spent it since the checks) hold it instead, nothing posted."""
        if item.has_funds_in_flight:
            return True
        if post_in_flight(item):
            stage(item, has_funds_in_flight=True)
            return True
        disbursement_hold(
            item,
            reason="insufficient_balance_at_submit",
            actor="system",
            detail={"held": ["balance_sufficient"], "owed": source_owed(item)},
        )
        announce_anomaly(self, item, "insufficient_funds_at_submit", {"source_amount": item.source_amount})
        return False

    def before_settle(self, item: Disbursement) -> None:
        stage(item, has_funds_in_flight=False)

    def after_settle(self, item: Disbursement) -> None:
        flight = platform_account(LedgerAccount.Kind.PAYOUTS_IN_FLIGHT, item.currency)
        cash = platform_account(LedgerAccount.Kind.CASH_CLEARING, item.currency)
        post_step(item, "paid", [Line(flight, item.amount), Line(cash, -item.amount)], f"{item.kind} {item.pk} paid")

    def on_return(self, item: Disbursement, *, actor: str, result: ChannelResult) -> None:
        all_back(item, "returned", actor, f"{item.kind} {item.pk} returned by the bank")
        detail = {"failure_code": item.failure_code, "amount": item.amount, "currency": item.currency}
        announce_anomaly(self, item, "reversed", detail)

    def before_fail(self, item: Disbursement, *, retryable: bool) -> None:
        if not retryable:  # a retry reuses the money in flight; a final failure gives it back
            release_funds(item, item.failure_code)
            stage(item, has_funds_in_flight=item.has_funds_in_flight)

    def on_freeze_hold(self, item: Disbursement, *, hold) -> None:
        # Money already posted in flight stays there: the submission after the hold reuses it.
        reason = "frozen: freeze " + ", ".join(str(pk) for pk in hold.freeze_ids)
        stage(item, hold_kind=Disbursement.HoldKind.FREEZE, hold_reason=reason)

    def is_freeze_held(self, item: Disbursement) -> bool:
        return item.status == S.HELD and item.hold_kind == Disbursement.HoldKind.FREEZE

    def freeze_held(self, rows):
        return rows.filter(status=S.HELD, hold_kind=Disbursement.HoldKind.FREEZE)

    def on_freeze_release(self, item: Disbursement) -> None:
        stage(item, hold_kind=Disbursement.HoldKind.REVIEW, hold_reason="")

    def poll_own(self, item: Disbursement) -> Disbursement | None:
        if item.status == S.CHECKING:
            return payout_run_checks(disbursement_id=item.pk)
        if item.status == S.RECALL_REQUESTED:
            from apps.payouts.incidents import payout_recall_send  # incidents import this module

            return payout_recall_send(disbursement_id=item.pk, from_poll=True)
        return None


DISBURSEMENTS = DisbursementPolicy()
