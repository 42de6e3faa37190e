"""The pre-checks run before any money leaves: each a named check with a result (passed, failed,
held, review) and its evidence. Reads only; `services.payout_run_checks` runs them under the
owner's lock (merchant for payouts, customer for withdrawals) and writes the results.

| check | fails / holds / reviews when |
|---|---|
| account_verification | the channel says the account does not match its holder (failed); it cannot be asked (held) |
| account_status | the destination account, the customer (withdrawal) or the merchant is frozen or inactive (failed) |
| currency_match | the destination account holds another currency than the payout's (failed) |
| fx_simulation | a cross-currency movement has no rate (failed); otherwise records rate, source and rounding |
| amount_matches_source | payout: amount ≠ its settlement lines or the available payable, converted |
|  | (failed); withdrawal: more than the customer's ledger balance (failed) |
| balance_sufficient | the source balance minus what other approved movements reserve is short (failed) |
| per_transaction_limit | above PAYOUT/WITHDRAWAL_MAX_PER_TRANSACTION (failed) |
| daily_limit | the owner's rolling 24 h total would pass PAYOUT/WITHDRAWAL_DAILY_LIMIT (failed) |
| destination_frequency | more than PAYOUT_FREQUENCY_MAX movements to the account within the window (failed) |
| duplicate | same destination, amount and currency within PAYOUT_DUPLICATE_WINDOW (held) |
| risk | the risk engine blocks (failed) or wants a review (review) |
| large_amount | at or above PAYOUT_LARGE_AMOUNT (review, two approvers) |
| cross_border | currency or country differs from the source / home (review) |
| new_destination | nothing was ever paid to this account by this owner (review) |

Amounts in limits are minor units of the source currency (what the ledger is debited).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR

from django.conf import settings
from django.db.models import Sum
from django.utils import timezone

from apps.accounts.selectors import bank_account_is_frozen, customer_is_frozen
from apps.gateways.base import ChannelError, VerifyResult
from apps.ledger.models import LedgerAccount
from apps.ledger.selectors import ledger_balance_get
from apps.payouts import fx
from apps.payouts.models import Disbursement, Kind, Party, PrecheckResult
from apps.risk.services import RiskVerdict, risk_evaluate

R = PrecheckResult.Result
S = Disbursement.Status
DAY = timedelta(hours=24)


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    result: str
    detail: dict = field(default_factory=dict)
    party: str = ""


@dataclass
class CheckReport:
    outcomes: list[CheckOutcome]
    source_amount: int
    conversion: fx.Conversion | None
    risk_verdict: RiskVerdict
    risk_context: dict

    def with_result(self, result: str) -> list[CheckOutcome]:
        return [outcome for outcome in self.outcomes if outcome.result == result]

    @property
    def review_reasons(self) -> list[str]:
        return [outcome.name for outcome in self.with_result(R.REVIEW)]

    @property
    def required_approvals(self) -> int:
        if not self.review_reasons:
            return 0
        return 2 if "large_amount" in self.review_reasons else 1


def source_ledger_key(d: Disbursement) -> tuple[str, str]:
    """(owner, kind) of the ledger account a movement is paid from."""
    if d.kind == Kind.PAYOUT:
        return f"merchant:{d.merchant_id}", LedgerAccount.Kind.MERCHANT_PAYABLE
    return f"customer:{d.customer_id}", LedgerAccount.Kind.CUSTOMER_BALANCE


def source_owed(d: Disbursement) -> int:
    """What the platform owes the source (a liability: credit balance), in the source currency."""
    owner, kind = source_ledger_key(d)
    return -ledger_balance_get(owner=owner, kind=kind, currency=d.source_currency)


def _same_owner(d: Disbursement):
    others = Disbursement.objects.filter(kind=d.kind, merchant_id=d.merchant_id).exclude(pk=d.pk)
    if d.kind == Kind.WITHDRAWAL:
        others = others.filter(customer_id=d.customer_id)
    return others


def _reserved(d: Disbursement) -> int:
    """Source money promised to the owner's other movements and not yet posted to the ledger."""
    total = (
        _same_owner(d)
        .filter(status__in=Disbursement.RESERVED_UNPOSTED, has_funds_in_flight=False, source_currency=d.source_currency)
        .aggregate(total=Sum("source_amount"))["total"]
    )
    return total or 0


def run_prechecks(d: Disbursement, *, verification: VerifyResult | ChannelError | None) -> CheckReport:
    """Every pre-check for a locked disbursement in `checking`, in a fixed order."""
    now = timezone.now()
    outcomes: list[CheckOutcome] = [_verification(verification), _account_status(d), _currency_match(d)]

    owed = source_owed(d)
    available = owed - _reserved(d)
    fx_outcome, source_amount, conversion, expected = _amounts(d, owed=owed, available=available)
    outcomes.append(fx_outcome)
    outcomes.append(
        _amount_matches_source(d, owed=owed, available=available, source_amount=source_amount, expected=expected)
    )
    owner_party = Party.MERCHANT if d.kind == Kind.PAYOUT else Party.CUSTOMER
    outcomes.append(_balance_sufficient(source_amount=source_amount, available=available, party=owner_party))

    is_payout = d.kind == Kind.PAYOUT
    max_one = settings.PAYOUT_MAX_PER_TRANSACTION if is_payout else settings.WITHDRAWAL_MAX_PER_TRANSACTION
    daily = settings.PAYOUT_DAILY_LIMIT if is_payout else settings.WITHDRAWAL_DAILY_LIMIT
    outcomes.append(_limit("per_transaction_limit", source_amount, max_one))
    today = (
        _same_owner(d)
        .filter(status__in=Disbursement.LIVE, source_currency=d.source_currency, created_at__gte=now - DAY)
        .aggregate(total=Sum("source_amount"))["total"]
        or 0
    )
    outcomes.append(_limit("daily_limit", today + source_amount, daily, detail={"earlier_24h": today}))

    fingerprint = d.destination_account.fingerprint
    same_destination = (
        Disbursement.objects.filter(
            merchant_id=d.merchant_id, destination_account__fingerprint=fingerprint, status__in=Disbursement.LIVE
        )
        .exclude(pk=d.pk)
        .order_by("id")
    )
    recent = same_destination.filter(created_at__gte=now - settings.PAYOUT_FREQUENCY_WINDOW).count() + 1
    outcomes.append(
        _limit(
            "destination_frequency",
            recent,
            settings.PAYOUT_FREQUENCY_MAX,
            detail={"window_minutes": int(settings.PAYOUT_FREQUENCY_WINDOW.total_seconds() // 60)},
        )
    )
    duplicates = list(
        same_destination.filter(
            amount=d.amount, currency=d.currency, created_at__gte=now - settings.PAYOUT_DUPLICATE_WINDOW
        ).values_list("id", flat=True)[:10]
    )
    outcomes.append(
        CheckOutcome("duplicate", R.HELD, {"duplicate_of": duplicates}, Party.PLATFORM)
        if duplicates
        else CheckOutcome("duplicate", R.PASSED)
    )

    context = {
        "customer_id": d.customer_id,
        "customer_external_id": d.customer.external_id if d.customer_id else "",
        "amount": source_amount,
        "currency": d.source_currency,
        "device_id": d.device_id,
        "ip": d.ip,
        "account_fingerprint": fingerprint,
    }
    verdict = risk_evaluate(scope=d.kind, merchant=d.merchant, context=context, now=now)
    outcomes.append(_risk(verdict))

    large = source_amount >= settings.PAYOUT_LARGE_AMOUNT
    outcomes.append(
        CheckOutcome(
            "large_amount",
            R.REVIEW if large else R.PASSED,
            {"threshold": settings.PAYOUT_LARGE_AMOUNT, "approvals_required": 2 if large else None},
        )
    )
    foreign = d.destination_country != settings.PAYOUT_HOME_COUNTRY
    cross = foreign or d.is_cross_currency
    outcomes.append(
        CheckOutcome(
            "cross_border",
            R.REVIEW if cross else R.PASSED,
            {
                "country": d.destination_country,
                "home_country": settings.PAYOUT_HOME_COUNTRY,
                "currency": d.currency,
                "source_currency": d.source_currency,
            },
        )
    )
    paid_before = _same_owner(d).filter(destination_account__fingerprint=fingerprint, paid_at__isnull=False).exists()
    new = settings.PAYOUT_REVIEW_NEW_DESTINATION and not paid_before
    outcomes.append(CheckOutcome("new_destination", R.REVIEW if new else R.PASSED, {"paid_before": paid_before}))
    return CheckReport(
        outcomes=outcomes,
        source_amount=source_amount,
        conversion=conversion,
        risk_verdict=verdict,
        risk_context=context,
    )


def _verification(answer: VerifyResult | ChannelError | None) -> CheckOutcome:
    name = "account_verification"
    if answer is None:
        return CheckOutcome(name, R.HELD, {"reason": "no_verification_channel"}, Party.PLATFORM)
    if isinstance(answer, ChannelError):
        code = answer.reason.code if answer.reason else "channel_error"
        return CheckOutcome(name, R.HELD, {"reason": "verification_unavailable", "code": code}, Party.BANK)
    if answer.ok:
        return CheckOutcome(name, R.PASSED)
    reason = answer.reason
    return CheckOutcome(
        name,
        R.FAILED,
        {"reason": reason.code if reason else "mismatch", "raw_code": answer.raw_code},
        reason.responsible_party if reason else Party.CUSTOMER,
    )


def _account_status(d: Disbursement) -> CheckOutcome:
    name = "account_status"
    if not d.merchant.is_active:
        return CheckOutcome(name, R.FAILED, {"reason": "merchant_inactive"}, Party.MERCHANT)
    if bank_account_is_frozen(bank_account=d.destination_account):
        return CheckOutcome(name, R.FAILED, {"reason": "destination_account_frozen"}, Party.PLATFORM)
    if d.customer is not None and customer_is_frozen(customer=d.customer):
        return CheckOutcome(name, R.FAILED, {"reason": "customer_frozen"}, Party.CUSTOMER)
    return CheckOutcome(name, R.PASSED)


def _currency_match(d: Disbursement) -> CheckOutcome:
    detail = {"account_currency": d.destination_currency, "currency": d.currency}
    if d.destination_currency != d.currency:
        party = Party.MERCHANT if d.kind == Kind.PAYOUT else Party.CUSTOMER
        return CheckOutcome("currency_match", R.FAILED, detail, party)
    return CheckOutcome("currency_match", R.PASSED, detail)


def _amounts(d: Disbursement, *, owed: int, available: int) -> tuple[CheckOutcome, int, fx.Conversion | None, int]:
    """(fx outcome, source amount, conversion, amount the documents say should arrive).

    Payout: the source documents (settlement lines, else the available payable) are converted to
    the payout currency rounding down — never pay more than is owed — and are what the ledger is
    debited. Withdrawal: the amount asked is converted to the source currency rounding up — never
    take less from the balance than what is paid out.
    """
    document = sum(line["amount"] for line in d.source_documents) if d.source_documents else available
    if not d.is_cross_currency:
        expected = document if d.kind == Kind.PAYOUT else d.amount
        return CheckOutcome("fx_simulation", R.PASSED, {"conversion": "none"}), d.amount, None, expected
    source = fx.rate_source()
    # Each direction uses its own quote: a payout converts the documents (source currency) into the
    # amount, rounding down; a withdrawal converts the amount asked into what the balance pays,
    # rounding up.
    base, quote = (d.source_currency, d.currency) if d.kind == Kind.PAYOUT else (d.currency, d.source_currency)
    rate = source.rate(base=base, quote=quote)
    if rate is None:
        detail = {"reason": "no_rate", "pair": f"{base}:{quote}", "rate_source": source.name}
        return CheckOutcome("fx_simulation", R.FAILED, detail, Party.PLATFORM), 0, None, -1
    if d.kind == Kind.PAYOUT:
        conversion = fx.convert(
            amount=document, source=base, target=quote, rate=rate, rounding=ROUND_FLOOR, rate_source=source.name
        )
        expected = conversion.amount
        # On a mismatch the amount check fails; the source amount is then only for the record.
        source_amount = document
    else:
        conversion = fx.convert(
            amount=d.amount, source=base, target=quote, rate=rate, rounding=ROUND_CEILING, rate_source=source.name
        )
        source_amount = expected = conversion.amount
    detail = {
        "source_amount": source_amount,
        "source_currency": d.source_currency,
        "amount": d.amount,
        "currency": d.currency,
        "converted": "document → amount" if d.kind == Kind.PAYOUT else "amount → source_amount",
        **conversion.as_detail(),
    }
    return CheckOutcome("fx_simulation", R.PASSED, detail), source_amount, conversion, expected


def _amount_matches_source(
    d: Disbursement, *, owed: int, available: int, source_amount: int, expected: int
) -> CheckOutcome:
    name = "amount_matches_source"
    if d.kind == Kind.PAYOUT:
        source = "settlement_lines" if d.source_documents else "merchant_payable"
        detail = {"source": source, "expected": expected, "amount": d.amount, "available_payable": available}
        if d.source_documents:
            detail["lines"] = len(d.source_documents)
        ok = expected >= 0 and d.amount == expected
        return CheckOutcome(name, R.PASSED if ok else R.FAILED, detail, "" if ok else Party.MERCHANT)
    detail = {"source": "customer_balance", "balance": owed, "source_amount": source_amount}
    ok = 0 < source_amount <= owed
    return CheckOutcome(name, R.PASSED if ok else R.FAILED, detail, "" if ok else Party.CUSTOMER)


def _balance_sufficient(*, source_amount: int, available: int, party: str) -> CheckOutcome:
    detail = {"available": available, "needed": source_amount}
    ok = 0 < source_amount <= available
    return CheckOutcome("balance_sufficient", R.PASSED if ok else R.FAILED, detail, "" if ok else party)


def _limit(name: str, value: int, limit: int, *, detail: dict | None = None) -> CheckOutcome:
    detail = {"value": value, "limit": limit, **(detail or {})}
    if value > limit:
        return CheckOutcome(name, R.FAILED, detail, Party.PLATFORM)
    return CheckOutcome(name, R.PASSED, detail)


def _risk(verdict: RiskVerdict) -> CheckOutcome:
    detail = {
        "action": verdict.action,
        "rules": [hit["code"] for hit in verdict.matches if hit["mode"] == "active"],
        "list": verdict.list_hit,
    }
    if verdict.action in ("block", "block_and_freeze"):
        return CheckOutcome("risk", R.FAILED, detail, Party.PLATFORM)
    if verdict.action == "review":
        return CheckOutcome("risk", R.REVIEW, detail)
    return CheckOutcome("risk", R.PASSED, detail)
