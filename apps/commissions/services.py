"""Every write to commissions: plans, accrual, maturity, settlement, freeze / clawback / release on
refunds, debts, the distributor's statement link and the abuse watch.

Locking: every change of an order's commissions first locks all of them with `select_for_update()`
in id order (one order → one lock order, so two refunds of the same order serialise instead of
deadlocking); settlement locks one commission, then the distributor's open debts. Refund-driven
changes run inside the refund's own transaction (receivers of `refund_event_recorded`), so a
commission is frozen or clawed back exactly when the refund change commits.

Once per cause: each refund-driven change writes a `CommissionEvent` whose `cause`
("refund:<id>:frozen", "refund:<id>:clawback", "refund:<id>:released") is unique per commission;
a repeated signal (duplicate webhook, redelivered task) finds it and does nothing.

Rounding (SPEC: STYLE.md §4): a percent plan accrues floor(order.amount × bp / 10 000) per level —
the remainder stays with the merchant. A partial refund claws back cumulatively: after each
succeeded refund the commission's clawed-back total becomes
floor(commission.amount × Σ refunded of the order / order.amount) and only the difference to what
was already clawed back moves. Each step rounds down, yet the sum of steps is the last target, so
a full refund (Σ refunded = order.amount) claws back exactly `commission.amount`: no unit is lost
or created however the refunds are split.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core import signing
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Count, Q, Sum
from django.urls import reverse
from django.utils import timezone
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from apps.accounts.models import Customer, Merchant
from apps.commissions.models import Commission, CommissionDebt, CommissionEvent, CommissionPlan
from apps.common.errors import ConflictError, ServiceError
from apps.ledger.models import LedgerAccount
from apps.ledger.services import Line, ledger_account_get_or_create, ledger_post
from apps.notifications import triggers
from apps.orders.models import Order, Product
from apps.refunds.models import Refund, RefundEvent
from apps.risk.services import customer_watch

logger = logging.getLogger(__name__)

S = Commission.Status
R = Refund.Status
STATEMENT_SALT = "commissions.statement"
MAX_DEPTH = 10
BASIS_POINTS = 10_000

# A refund in one of these may still move money: its order's commissions stay frozen. A failed
# refund with a retry scheduled (next_poll_at set) is live too.
LIVE_REFUND = (
    R.REQUESTED,
    R.APPROVED,
    R.MANUAL_REVIEW,
    R.SUBMITTED,
    R.PROCESSING,
    R.UNKNOWN,
    R.NEEDS_ACTION,
)
# Money that reached the customer (a reversed refund's money sits in the customer's wallet: the
# order stays refunded, so its clawback stands).
REFUNDED = (R.SUCCEEDED, R.REVERSED)

REASON_TEXT = {
    "frozen": {"zh-hans": "买家申请了退款", "en": "the buyer asked for a refund"},
    "full": {"zh-hans": "订单已全额退款", "en": "the order was refunded in full"},
    "partial": {
        "zh-hans": "订单部分退款,按退款比例扣回,其余佣金照常结算",
        "en": "part of the order was refunded; the same share is taken back and the rest is settled as usual",
    },
    "debt": {
        "zh-hans": "余额不足的部分将从您之后的佣金中抵扣",
        "en": "what your balance could not cover is deducted from your next commissions",
    },
    "released": {"zh-hans": "退款未成立", "en": "the refund did not go through"},
}


def _say(key: str, locale: str) -> str:
    texts = REASON_TEXT[key]
    return texts.get(locale, texts["en"])


# --- plans ----------------------------------------------------------------------------------------


def _plan_validate(*, mode: str, levels: list, depth: int, currency: str) -> None:
    errors: dict[str, list[str]] = {}
    if mode not in CommissionPlan.Mode.values:
        errors["mode"] = [format_lazy(_("Must be one of: {value}."), value=", ".join(CommissionPlan.Mode.values))]
    if (
        not isinstance(levels, list)
        or not levels
        or len(levels) > MAX_DEPTH
        or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in levels)
    ):
        errors["levels"] = [
            format_lazy(_("A list of 1–{value} non-negative integers, nearest upline first."), value=MAX_DEPTH)
        ]
    elif mode == CommissionPlan.Mode.PERCENT and sum(levels) > BASIS_POINTS:
        errors["levels"] = [_("Basis points across levels cannot exceed 10000 (100 %).")]
    if isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= MAX_DEPTH:
        errors["depth"] = [format_lazy(_("Must be an integer from 1 to {value}."), value=MAX_DEPTH)]
    if mode == CommissionPlan.Mode.FIXED and not currency:
        errors["currency"] = [_("Required for a fixed plan.")]
    if errors:
        raise ServiceError(_("Some fields are invalid."), fields=errors)


def commission_plan_create(
    *,
    merchant: Merchant,
    product_sku: str | None = None,
    mode: str = CommissionPlan.Mode.PERCENT,
    levels: list[int],
    depth: int = 2,
    currency: str = "",
    name: str = "",
    is_active: bool = True,
) -> CommissionPlan:
    """Add the merchant's default plan (no product) or a product's plan; one of each. 409 on a second."""
    _plan_validate(mode=mode, levels=levels, depth=depth, currency=currency)
    product = None
    if product_sku:
        product = Product.objects.filter(merchant=merchant, sku=product_sku).first()
        if product is None:
            raise ServiceError(_("Unknown product."), fields={"product": [_("No product with this sku.")]})
    try:
        with transaction.atomic():
            return CommissionPlan.objects.create(
                merchant=merchant,
                product=product,
                mode=mode,
                levels=levels,
                depth=depth,
                currency=currency,
                name=name,
                is_active=is_active,
            )
    except IntegrityError:
        raise ConflictError(
            _("A plan for this product (or a default plan) already exists; update it instead."),
            code="duplicate_plan",
            fields={"product": [_("Already has a plan.")]},
        ) from None


_PLAN_EDITABLE = frozenset({"mode", "levels", "depth", "currency", "name", "is_active"})


def commission_plan_update(*, plan: CommissionPlan, **changes) -> CommissionPlan:
    """Change a plan. Orders already accrued keep their commissions; the new values apply from now."""
    unknown = set(changes) - _PLAN_EDITABLE
    if unknown:
        raise ServiceError(_("These fields cannot be changed."), fields={f: [_("Cannot be changed.")] for f in unknown})
    merged = {f: changes.get(f, getattr(plan, f)) for f in ("mode", "levels", "depth", "currency")}
    _plan_validate(**merged)
    for field, value in changes.items():
        setattr(plan, field, value)
    if changes:
        plan.save(update_fields=[*changes, "updated_at"])
    return plan


def commission_plan_for(*, order: Order) -> CommissionPlan | None:
    """The product's active plan, else the merchant's active default plan, else None."""
    plans = CommissionPlan.objects.filter(merchant_id=order.merchant_id, is_active=True).filter(
        Q(product_id=order.product_id) | Q(product__isnull=True)
    )
    by_product = {plan.product_id: plan for plan in plans}
    return by_product.get(order.product_id) or by_product.get(None)


# --- accrual ----------------------------------------------------------------------------------------


def upline_of(*, order: Order, depth: int) -> list[Customer]:
    """The order's referrer, its referrer, … up to `depth` people, nearest first.

    The walk stops at the buyer (nobody earns on their own purchase), at anyone already seen (a
    cycle in the tree) and at another merchant's customer.
    """
    chain: list[Customer] = []
    seen = {order.customer_id}
    person = order.referrer
    while person is not None and len(chain) < depth:
        if person.pk in seen or person.merchant_id != order.merchant_id:
            break
        chain.append(person)
        seen.add(person.pk)
        person = person.referrer
    return chain


def commission_accrue(*, order: Order) -> list[Commission]:
    """Accrue the commissions a paid order earns its uplines (pending until the settlement period).

    Level n earns the plan's n-th value: floor(amount × bp / 10 000) in percent mode, the fixed
    amount in fixed mode (only when the plan's currency is the order's) — capped so the order's
    commissions never exceed the order. Zero amounts earn no row. Idempotent: (order,
    beneficiary, level) is unique and a second call returns what exists. Caller: the
    `order_captured` receiver, inside `order_create`'s transaction.
    """
    existing = list(Commission.objects.filter(order=order).order_by("level"))
    if existing:
        return existing
    plan = commission_plan_for(order=order)
    if plan is None:
        return []
    if plan.mode == CommissionPlan.Mode.FIXED and plan.currency != order.currency:
        logger.warning(
            "commission plan %s is in %s, order %s in %s: no accrual", plan.pk, plan.currency, order.pk, order.currency
        )
        return []
    depth = min(plan.depth, len(plan.levels))
    rows: list[Commission] = []
    total = 0
    for level, person in enumerate(upline_of(order=order, depth=depth), start=1):
        value = plan.levels[level - 1]
        amount = order.amount * value // BASIS_POINTS if plan.mode == CommissionPlan.Mode.PERCENT else value
        amount = min(amount, order.amount - total)
        if amount <= 0:
            continue
        total += amount
        rows.append(
            Commission(
                merchant_id=order.merchant_id,
                order=order,
                beneficiary=person,
                plan=plan,
                level=level,
                amount=amount,
                currency=order.currency,
            )
        )
    if not rows:
        return []
    created = Commission.objects.bulk_create(rows)
    CommissionEvent.objects.bulk_create(
        [
            CommissionEvent(
                commission=c,
                code="accrued",
                to_status=c.status,
                amount=c.amount,
                reason=f"level {c.level} of order {order.external_id}",
                cause="accrued",
                actor="system",
                detail={"plan_id": plan.pk, "mode": plan.mode, "value": plan.levels[c.level - 1]},
            )
            for c in created
        ]
    )
    logger.info("commissions accrued order=%s rows=%s total=%s", order.pk, len(created), total)
    return created


# --- helpers ------------------------------------------------------------------------------------------


def _record(
    commission: Commission,
    *,
    code: str,
    from_status: str,
    amount: int = 0,
    reason: str = "",
    refund_id: int | None = None,
    cause: str = "",
    actor: str = "system",
    detail: dict | None = None,
) -> CommissionEvent:
    return CommissionEvent.objects.create(
        commission=commission,
        code=code,
        from_status=from_status,
        to_status=commission.status,
        amount=amount,
        reason=reason[:300],
        refund_id=refund_id,
        cause=cause,
        actor=actor,
        detail=detail or {},
    )


def _lock_order_commissions(order_id: int) -> list[Commission]:
    return list(
        Commission.objects.select_for_update(of=("self",))
        .select_related("beneficiary", "order")
        .filter(order_id=order_id)
        .order_by("id")
    )


def _causes(commissions: Iterable[Commission]) -> set[tuple[int, str]]:
    ids = [c.pk for c in commissions]
    return set(
        CommissionEvent.objects.filter(commission_id__in=ids).exclude(cause="").values_list("commission_id", "cause")
    )


def _notify(commission: Commission, *, change: str, amount: int, reason: str, refund_id: int) -> None:
    """Tell the distributor, in this transaction (the notifications outbox). A bug in building the
    message must not undo the commission change: it is logged; a database error propagates."""
    try:
        with transaction.atomic():
            triggers.commission_changed(
                distributor=commission.beneficiary,
                change=change,
                commission_id=commission.pk,
                order_reference=commission.order.external_id,
                amount=amount,
                currency=commission.currency,
                link=commission_statement_url(commission.beneficiary),
                reason=reason,
                cause=f"refund:{refund_id}",
            )
    except DatabaseError:
        raise
    except Exception:
        logger.exception("commissions: no %s message for commission %s", change, commission.pk)


def _distributor_account(commission: Commission) -> LedgerAccount:
    return ledger_account_get_or_create(
        owner=f"customer:{commission.beneficiary_id}",
        kind=LedgerAccount.Kind.DISTRIBUTOR_BALANCE,
        currency=commission.currency,
    )


def _merchant_account(commission: Commission) -> LedgerAccount:
    return ledger_account_get_or_create(
        owner=f"merchant:{commission.merchant_id}",
        kind=LedgerAccount.Kind.MERCHANT_PAYABLE,
        currency=commission.currency,
    )


def _live_refund_exists(*, order_id: int, exclude_id: int | None) -> bool:
    live = Refund.objects.filter(order_id=order_id).filter(
        Q(status__in=LIVE_REFUND) | Q(status=R.FAILED, next_poll_at__isnull=False)
    )
    if exclude_id is not None:
        live = live.exclude(pk=exclude_id)
    return live.exists()


# --- refund facts ------------------------------------------------------------------------------------


def commission_on_refund_event(*, refund: Refund, event: RefundEvent) -> str:
    """Route one refund timeline event to its commission change; returns what was done.

    - a new refund decided `approved` or `manual_review` → freeze the order's commissions;
    - `succeeded` → claw back (proportionally), then release the rest if no other refund is live;
    - `rejected`, `cancelled`, a final `failed` (not retryable and not the customer's to fix) or
      `retry_refused` → release, unless another refund of the order is still live.
    `needs_action` is not final (the customer may fix the account and the refund goes on): the
    commissions stay frozen until the refund succeeds or is cancelled. `reversed` changes nothing:
    the money went back to the customer's wallet, the order stays refunded.
    Caller: the `refund_event_recorded` receiver, inside the refund's transaction.
    """
    code = event.code
    if code in ("approved", "manual_review") and event.from_status == R.REQUESTED:
        return "frozen" if commission_freeze_for_refund(refund=refund) else "nothing"
    if code == "succeeded":
        return "clawed_back" if commission_claw_back_for_refund(refund=refund) else "nothing"
    final_failure = (
        code == "failed" and not (event.detail or {}).get("retryable") and refund.responsible_party != "customer"
    )
    if code in ("rejected", "cancelled", "retry_refused") or final_failure:
        return "released" if commission_release_for_refund(refund=refund, why=code) else "nothing"
    return "nothing"


def _freeze(commission: Commission, *, refund_id: int, cause: str, actor: str) -> None:
    before = commission.status
    commission.status_before_freeze = before
    commission.freeze()
    commission.save(update_fields=["status", "status_before_freeze", "updated_at"])
    reason = _say("frozen", commission.beneficiary.locale)
    _record(commission, code="frozen", from_status=before, reason=reason, refund_id=refund_id, cause=cause, actor=actor)
    _notify(
        commission,
        change="frozen",
        amount=commission.amount - commission.clawed_back_amount,
        reason=reason,
        refund_id=refund_id,
    )


def commission_freeze_for_refund(*, refund: Refund, actor: str = "system") -> int:
    """Freeze every commission of the refund's order, whatever its status (pending, available or
    paid), remembering the status to restore. Already frozen by another refund: the statement notes
    this refund too, without a second message. Returns how many commissions were frozen now."""
    commissions = _lock_order_commissions(refund.order_id)
    done = _causes(commissions)
    cause = f"refund:{refund.pk}:frozen"
    frozen = 0
    for c in commissions:
        if (c.pk, cause) in done:
            continue
        if c.status in Commission.FREEZABLE:
            _freeze(c, refund_id=refund.pk, cause=cause, actor=actor)
            frozen += 1
        elif c.status == S.FROZEN:
            _record(
                c,
                code="frozen",
                from_status=c.status,
                reason=_say("frozen", c.beneficiary.locale),
                refund_id=refund.pk,
                cause=cause,
                actor=actor,
                detail={"already_frozen": True},
            )
    return frozen


@dataclass(frozen=True)
class _Recovery:
    recovered: int
    debt: CommissionDebt | None


def _recover(commission: Commission, amount: int, *, refund_id: int) -> _Recovery:
    """Take `amount` of already paid commission back from the distributor's balance into the
    merchant's payable; what the balance cannot cover becomes a debt."""
    account = _distributor_account(commission)
    # Lock the balance row so a concurrent withdrawal and this clawback cannot both spend it.
    credit = LedgerAccount.objects.select_for_update().values_list("balance", flat=True).get(pk=account.pk)
    available = max(0, -credit)  # a liability: credit balance, negative in the ledger's signs
    recovered = min(amount, available)
    if recovered:
        ledger_post(
            reference=f"commission:{commission.pk}:clawback:{refund_id}",
            kind="commission_clawback",
            lines=[Line(account, recovered), Line(_merchant_account(commission), -recovered)],
            description=f"commission {commission.pk} clawed back (refund {refund_id})",
        )
    debt = None
    if amount > recovered:
        debt = CommissionDebt.objects.create(
            merchant_id=commission.merchant_id,
            beneficiary_id=commission.beneficiary_id,
            commission=commission,
            refund_id=refund_id,
            amount=amount - recovered,
            currency=commission.currency,
        )
    return _Recovery(recovered, debt)


def _refunded_total(order_id: int) -> int:
    return Refund.objects.filter(order_id=order_id, status__in=REFUNDED).aggregate(total=Sum("amount"))["total"] or 0


def clawback_target(*, commission_amount: int, refunded: int, order_amount: int) -> int:
    """Cumulative clawback after `refunded` of `order_amount` came back: rounded down, capped at the
    commission (see the module docstring for why totals reconcile to the unit)."""
    return min(commission_amount, commission_amount * min(refunded, order_amount) // order_amount)


def commission_claw_back_for_refund(*, refund: Refund, actor: str = "system") -> int:
    """A refund of the order succeeded: take back the refunded share of each of its commissions.

    Unpaid commission is simply reduced (void when nothing is left); paid commission is taken from
    the distributor's balance back to the merchant's payable, and a shortfall becomes a
    `CommissionDebt` offset against later settlements. A commission not frozen yet is frozen first.
    Afterwards, if no other refund of the order is live, what is left returns to its prior status.
    Returns the total clawed back now (minor units).
    """
    commissions = _lock_order_commissions(refund.order_id)
    done = _causes(commissions)
    cause = f"refund:{refund.pk}:clawback"
    refunded = _refunded_total(refund.order_id)
    others_live = _live_refund_exists(order_id=refund.order_id, exclude_id=refund.pk)
    total = 0
    for c in commissions:
        if (c.pk, cause) in done or c.status in (S.VOID, S.CLAWED_BACK):
            continue
        if c.status in Commission.FREEZABLE:
            _freeze(c, refund_id=refund.pk, cause=f"refund:{refund.pk}:frozen", actor=actor)
        locale = c.beneficiary.locale
        delta = clawback_target(commission_amount=c.amount, refunded=refunded, order_amount=c.order.amount) - (
            c.clawed_back_amount
        )
        delta = max(delta, 0)
        was_paid = c.status_before_freeze == S.PAID
        recovery = _Recovery(0, None)
        if delta and was_paid:
            recovery = _recover(c, delta, refund_id=refund.pk)
        c.clawed_back_amount += delta
        before = c.status
        if c.clawed_back_amount == c.amount:
            c.claw_back() if was_paid else c.void()
        c.save(update_fields=["status", "clawed_back_amount", "updated_at"])
        full = c.clawed_back_amount == c.amount
        reason = _say("full" if full else "partial", locale)
        if recovery.debt is not None:
            reason = f"{reason}; {_say('debt', locale)}"
        _record(
            c,
            code="clawed_back",
            from_status=before,
            amount=delta,
            reason=reason,
            refund_id=refund.pk,
            cause=cause,
            actor=actor,
            detail={
                "refunded": refunded,
                "order_amount": c.order.amount,
                "from_paid": was_paid,
                "recovered": recovery.recovered,
                "debt": recovery.debt.amount if recovery.debt else 0,
                "debt_id": recovery.debt.pk if recovery.debt else None,
            },
        )
        if delta:
            _notify(c, change="clawed_back", amount=delta, reason=reason, refund_id=refund.pk)
            total += delta
        if c.status == S.FROZEN and not others_live:
            _release(c, refund_id=refund.pk, actor=actor, reason=_say("partial", locale), notify=False)
    return total


def _release(commission: Commission, *, refund_id: int, actor: str, reason: str, notify: bool) -> None:
    before = commission.status
    commission.release()
    commission.status_before_freeze = ""
    commission.save(update_fields=["status", "status_before_freeze", "updated_at"])
    _record(
        commission,
        code="released",
        from_status=before,
        reason=reason,
        refund_id=refund_id,
        cause=f"refund:{refund_id}:released",
        actor=actor,
    )
    if notify:
        _notify(
            commission,
            change="released",
            amount=commission.amount - commission.clawed_back_amount,
            reason=reason,
            refund_id=refund_id,
        )


def commission_release_for_refund(*, refund: Refund, why: str, actor: str = "system") -> int:
    """The refund ended without money moving (rejected, cancelled, finally failed): unless another
    refund of the order is still live, every frozen commission of the order returns to the status
    it had. Returns how many were released."""
    if _live_refund_exists(order_id=refund.order_id, exclude_id=refund.pk):
        return 0
    commissions = _lock_order_commissions(refund.order_id)
    done = _causes(commissions)
    released = 0
    for c in commissions:
        if c.status != S.FROZEN or (c.pk, f"refund:{refund.pk}:released") in done:
            continue
        reason = f"{_say('released', c.beneficiary.locale)} ({why})"
        _release(c, refund_id=refund.pk, actor=actor, reason=reason, notify=True)
        released += 1
    return released


# --- maturity and settlement ----------------------------------------------------------------------


def commission_mature(*, now: datetime | None = None, limit: int = 1000) -> int:
    """Pending commissions older than the settlement period (COMMISSION_SETTLEMENT_DAYS) become
    available. Safe to run twice (only `pending` moves). Caller: the beat task. Returns the count."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.COMMISSION_SETTLEMENT_DAYS)
    ids = list(
        Commission.objects.filter(status=S.PENDING, created_at__lte=cutoff)
        .order_by("id")
        .values_list("pk", flat=True)[:limit]
    )
    moved = 0
    for pk in ids:
        with transaction.atomic():
            c = Commission.objects.select_for_update().get(pk=pk)
            if c.status != S.PENDING or c.created_at > cutoff:
                continue
            c.mature()
            c.available_at = now
            c.save(update_fields=["status", "available_at", "updated_at"])
            _record(c, code="available", from_status=S.PENDING, amount=c.amount - c.clawed_back_amount)
            moved += 1
    return moved


def commission_settle(*, now: datetime | None = None, limit: int = 1000) -> int:
    """Settle every available commission (see `commission_settle_one`). Caller: the beat task."""
    ids = list(Commission.objects.filter(status=S.AVAILABLE).order_by("id").values_list("pk", flat=True)[:limit])
    settled = 0
    for pk in ids:
        if commission_settle_one(commission_id=pk, now=now).status == S.PAID:
            settled += 1
    return settled


def commission_settle_one(*, commission_id: int, now: datetime | None = None) -> Commission:
    """Pay one available commission into the distributor's balance, netting open debts first.

    Posts `commission:<id>:settle` (debit the merchant's payable, credit the distributor's
    balance, the commission's unclawed amount), then for each open debt of that distributor and
    currency, oldest first, `commission:<id>:offset:<debt>` (debit the distributor, credit the
    merchant) until the settled amount is used up. Locks the commission, then the debts. Safe to
    run twice: only an `available` commission is settled, and postings are idempotent by reference.
    """
    now = now or timezone.now()
    with transaction.atomic():
        c = Commission.objects.select_for_update().get(pk=commission_id)
        if c.status != S.AVAILABLE:
            return c
        net = c.amount - c.clawed_back_amount
        distributor, merchant = _distributor_account(c), _merchant_account(c)
        ledger_post(
            reference=f"commission:{c.pk}:settle",
            kind="commission_settle",
            lines=[Line(merchant, net), Line(distributor, -net)],
            description=f"commission {c.pk} settled to customer {c.beneficiary_id}",
        )
        c.paid_amount = net
        c.paid_at = now
        c.pay()
        c.save(update_fields=["status", "paid_amount", "paid_at", "updated_at"])
        _record(c, code="paid", from_status=S.AVAILABLE, amount=net)
        remaining = net
        debts = CommissionDebt.objects.select_for_update().filter(
            merchant_id=c.merchant_id, beneficiary_id=c.beneficiary_id, currency=c.currency, settled_at__isnull=True
        )
        for debt in debts.order_by("id"):
            take = min(remaining, debt.open_amount)
            if take <= 0:
                break
            ledger_post(
                reference=f"commission:{c.pk}:offset:{debt.pk}",
                kind="commission_debt_offset",
                lines=[Line(distributor, take), Line(merchant, -take)],
                description=f"debt {debt.pk} offset against commission {c.pk}",
            )
            debt.recovered_amount += take
            if debt.open_amount == 0:
                debt.settled_at = now
            debt.save(update_fields=["recovered_amount", "settled_at"])
            _record(c, code="debt_offset", from_status=c.status, amount=take, detail={"debt_id": debt.pk})
            remaining -= take
    return c


# --- statement link -------------------------------------------------------------------------------------


def commission_statement_token(customer: Customer) -> str:
    return signing.dumps({"c": customer.pk, "m": customer.merchant_id}, salt=STATEMENT_SALT, compress=True)


def commission_statement_url(customer: Customer) -> str:
    """The distributor's signed, read-only statement page (expires after COMMISSION_LINK_MAX_AGE)."""
    path = reverse("track:commission-statement", kwargs={"token": commission_statement_token(customer)})
    return settings.PUBLIC_BASE_URL.rstrip("/") + path


def customer_get_by_statement_token(token: str) -> Customer | None:
    """The distributor a statement link points at, or None when tampered or expired."""
    try:
        data = signing.loads(token, salt=STATEMENT_SALT, max_age=settings.COMMISSION_LINK_MAX_AGE)
    except signing.BadSignature:
        return None
    if not isinstance(data, dict):
        return None
    return Customer.objects.filter(pk=data.get("c"), merchant_id=data.get("m")).first()


# --- abuse signal -------------------------------------------------------------------------------------


def commission_abuse_scan(*, now: datetime | None = None) -> list[int]:
    """Watch distributors whose downline refunds at a high rate after commissions are paid.

    Per distributor over the last COMMISSION_ABUSE_WINDOW_DAYS: commissions paid in the window,
    and of those, how many were later clawed back from paid money (a refund succeeded after
    payment). At least COMMISSION_ABUSE_MIN_PAID paid and a rate of at least
    COMMISSION_ABUSE_RATE puts the distributor on watch through the risk engine (every later refund
    of theirs goes to a person), with the numbers as the reason. Idempotent: `customer_watch` does
    nothing for a customer already watched for this. Returns the ids of customers flagged now.
    """
    now = now or timezone.now()
    since = now - timedelta(days=settings.COMMISSION_ABUSE_WINDOW_DAYS)
    clawed_after_paid = Q(events__code="clawed_back", events__detail__from_paid=True, events__amount__gt=0)
    rows = (
        Commission.objects.filter(paid_at__gte=since)
        .values("beneficiary_id", "merchant_id")
        .annotate(paid=Count("id", distinct=True), refunded=Count("id", filter=clawed_after_paid, distinct=True))
        .filter(paid__gte=settings.COMMISSION_ABUSE_MIN_PAID)
    )
    flagged = []
    for row in rows:
        rate = row["refunded"] / row["paid"]
        if rate < settings.COMMISSION_ABUSE_RATE:
            continue
        customer = Customer.objects.get(pk=row["beneficiary_id"])
        reason = (
            f"distributor downline refunds after commission payout: {row['refunded']} of {row['paid']} paid "
            f"commissions ({rate:.0%}) in {settings.COMMISSION_ABUSE_WINDOW_DAYS} days"
        )
        with transaction.atomic():
            if customer_watch(
                customer=customer,
                reason=reason,
                source="commission_abuse",
                detail={"paid": row["paid"], "refunded_after_paid": row["refunded"], "rate": round(rate, 4)},
                actor="commissions",
            ):
                flagged.append(customer.pk)
    return flagged
