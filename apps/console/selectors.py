"""Read-only figures the console pages show, every one scoped to one merchant."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from django.db.models import Avg, Count, DurationField, ExpressionWrapper, F, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from apps.accounts.models import Merchant
from apps.alerts.models import Alert, Tier
from apps.common.crypto import mask_account_number
from apps.gateways.models import ChannelCall, ChannelHealth
from apps.gateways.services import channel_failed_q
from apps.orders.models import Order
from apps.payouts.models import Disbursement, Kind
from apps.refunds.models import Refund
from apps.risk.models import Case, Scope

REFUND_DONE = (
    Refund.Status.SUCCEEDED,
    Refund.Status.REJECTED,
    Refund.Status.CANCELLED,
    Refund.Status.REVERSED,
    Refund.Status.TECH_SUPPORT,
)
DISBURSEMENT_DONE = (
    Disbursement.Status.PAID,
    Disbursement.Status.CANCELLED,
    Disbursement.Status.RETURNED,
    Disbursement.Status.RECALLED,
    Disbursement.Status.FAILED,
)
OPEN_ALERT = (Alert.Status.OPEN, Alert.Status.ACKED)


def _start_of_today() -> datetime:
    return timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)


def open_alerts_for_merchant(*, merchant: Merchant):
    """Open and acked alerts (not the per-item children of a group), most severe then newest first."""
    return (
        Alert.objects.filter(merchant=merchant, status__in=OPEN_ALERT, parent__isnull=True)
        .select_related("assignee")
        .order_by("tier", "-last_seen_at", "-id")
    )


def alert_counts_by_tier(*, merchant: Merchant) -> dict[str, int]:
    rows = (
        Alert.objects.filter(merchant=merchant, status__in=OPEN_ALERT, parent__isnull=True)
        .values("tier")
        .annotate(n=Count("id"))
    )
    counts = {tier: 0 for tier in Tier.values}
    counts.update({row["tier"]: row["n"] for row in rows})
    return counts


def in_flight_by_state(*, merchant: Merchant) -> dict[str, list[tuple[str, str, int]]]:
    """Refunds, payouts and withdrawals not yet finished, counted per state: (state, label, count)."""
    refunds = (
        Refund.objects.filter(merchant=merchant)
        .exclude(status__in=REFUND_DONE)
        .values("status")
        .annotate(n=Count("id"))
        .order_by("status")
    )
    labels_r = dict(Refund.Status.choices)
    out = {"refunds": [(r["status"], labels_r.get(r["status"], r["status"]), r["n"]) for r in refunds]}
    labels_d = dict(Disbursement.Status.choices)
    for kind, key in ((Kind.PAYOUT, "payouts"), (Kind.WITHDRAWAL, "withdrawals")):
        rows = (
            Disbursement.objects.filter(merchant=merchant, kind=kind)
            .exclude(status__in=DISBURSEMENT_DONE)
            .values("status")
            .annotate(n=Count("id"))
            .order_by("status")
        )
        out[key] = [(r["status"], labels_d.get(r["status"], r["status"]), r["n"]) for r in rows]
    return out


def refund_figures_today(*, merchant: Merchant) -> dict:
    """Today's refund rate (refunds requested ÷ orders paid today) and the average time from request
    to arrival of the refunds that arrived today."""
    start = _start_of_today()
    orders = Order.objects.filter(merchant=merchant, paid_at__gte=start).count()
    refunds = Refund.objects.filter(merchant=merchant, created_at__gte=start).count()
    arrived = Refund.objects.filter(merchant=merchant, succeeded_at__gte=start).aggregate(
        n=Count("id"), avg=Avg(F("succeeded_at") - F("created_at"))
    )
    avg: timedelta | None = arrived["avg"]
    return {
        "orders": orders,
        "refunds": refunds,
        "rate_pct": round(100 * refunds / orders, 1) if orders else None,
        "arrived": arrived["n"],
        "avg_arrival_seconds": int(avg.total_seconds()) if avg is not None else None,
    }


def channel_health_list():
    """Every bank channel's health: channels are the platform's, shared by every merchant."""
    return ChannelHealth.objects.select_related("channel").order_by("channel__priority", "channel__code")


def open_case_count(*, merchant: Merchant) -> int:
    return Case.objects.filter(merchant=merchant).exclude(status=Case.Status.DECIDED).count()


def pending_approval_count(*, merchant: Merchant) -> int:
    return Disbursement.objects.filter(merchant=merchant, status=Disbursement.Status.PENDING_APPROVAL).count()


# --- reports ------------------------------------------------------------------------------------


def report_refund_rate_by_day(*, merchant: Merchant, since: date) -> list[dict]:
    orders = dict(
        Order.objects.filter(merchant=merchant, paid_at__date__gte=since)
        .annotate(day=TruncDate("paid_at"))
        .values("day")
        .annotate(n=Count("id"))
        .values_list("day", "n")
    )
    refunds = dict(
        Refund.objects.filter(merchant=merchant, created_at__date__gte=since)
        .annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(n=Count("id"))
        .values_list("day", "n")
    )
    days = []
    day = since
    today = timezone.localdate()
    while day <= today:
        o, r = orders.get(day, 0), refunds.get(day, 0)
        days.append({"day": day.isoformat(), "orders": o, "refunds": r, "rate_pct": round(100 * r / o, 1) if o else 0})
        day += timedelta(days=1)
    return days


def report_top_reasons_by_product(*, merchant: Merchant, since: date, limit: int = 10) -> list[dict]:
    rows = (
        Refund.objects.filter(merchant=merchant, created_at__date__gte=since)
        .values("order__product__sku", "order__product__name", "reason")
        .annotate(n=Count("id"))
        .order_by("-n", "order__product__sku", "reason")[:limit]
    )
    return [
        {"sku": r["order__product__sku"], "product": r["order__product__name"], "reason": r["reason"], "count": r["n"]}
        for r in rows
    ]


def report_decision_outcomes(*, merchant: Merchant, since: date) -> list[dict]:
    rows = (
        Refund.objects.filter(merchant=merchant, created_at__date__gte=since)
        .values("decision__outcome")
        .annotate(n=Count("id"))
        .order_by("decision__outcome")
    )
    return [{"outcome": r["decision__outcome"] or "none", "count": r["n"]} for r in rows]


def report_channel_failure_rate(*, merchant: Merchant, since: date) -> list[dict]:
    """Failure rate (as channel health counts failures) of the submissions made for this merchant's
    refunds and disbursements, never another merchant's traffic: calls reference `<kind>:<id>`."""
    refs = [f"refund:{pk}" for pk in Refund.objects.filter(merchant=merchant).values_list("pk", flat=True)]
    refs += [f"{kind}:{pk}" for pk, kind in Disbursement.objects.filter(merchant=merchant).values_list("pk", "kind")]
    if not refs:
        return []
    rows = (
        ChannelCall.objects.filter(reference__in=refs, created_at__date__gte=since, action=ChannelCall.Action.SUBMIT)
        .values("channel__code")
        .annotate(calls=Count("id"), failures=Count("id", filter=channel_failed_q()))
        .order_by("channel__code")
    )
    return [
        {
            "channel": r["channel__code"],
            "calls": r["calls"],
            "failures": r["failures"],
            "rate_pct": round(100 * r["failures"] / r["calls"], 1) if r["calls"] else 0,
        }
        for r in rows
    ]


# Hours from request to money arriving: [lower, upper) bounds; the last bucket has no upper bound.
ARRIVAL_BUCKETS = (
    ("<1h", timedelta(0), timedelta(hours=1)),
    ("1-6h", timedelta(hours=1), timedelta(hours=6)),
    ("6-24h", timedelta(hours=6), timedelta(hours=24)),
    ("1-3d", timedelta(days=1), timedelta(days=3)),
    (">3d", timedelta(days=3), None),
)


def report_time_to_arrival(*, merchant: Merchant, since: date) -> list[dict]:
    """Refunds that succeeded since `since` (local date), counted by time from request to success."""
    took = ExpressionWrapper(F("succeeded_at") - F("created_at"), output_field=DurationField())
    counts = (
        Refund.objects.filter(merchant=merchant, succeeded_at__isnull=False, succeeded_at__date__gte=since)
        .alias(took=took)
        .aggregate(
            **{
                f"b{i}": Count("id", filter=Q(took__gte=low) & (Q(took__lt=high) if high else Q()))
                for i, (_, low, high) in enumerate(ARRIVAL_BUCKETS)
            }
        )
    )
    return [{"bucket": label, "refunds": counts[f"b{i}"]} for i, (label, _, _) in enumerate(ARRIVAL_BUCKETS)]


def _mask_name(name: str) -> str:
    return f"{name[:1]}{'*' * min(max(len(name) - 1, 1), 4)}" if name else ""


def backtest_sample_for_merchant(*, merchant: Merchant, scope: str, subject_ids: list[int]) -> list[dict]:
    """The back-test's sample subjects as the console may show them: this merchant's rows only,
    customer name and account masked (the account to its last four digits)."""
    if scope == Scope.REFUND:
        rows = Refund.objects.filter(merchant=merchant, pk__in=subject_ids)
    else:
        rows = Disbursement.objects.filter(merchant=merchant, kind=scope, pk__in=subject_ids)
    found = {row.pk: row for row in rows.select_related("customer", "destination_account")}
    out = []
    for pk in subject_ids:
        row = found.get(pk)
        if row is None:
            continue
        account = row.destination_account
        out.append(
            {
                "id": pk,
                "amount": row.amount,
                "currency": row.currency,
                "status": row.get_status_display(),
                "customer": _mask_name(row.customer.name if row.customer_id else ""),
                "account": mask_account_number(account.last4) if account else "",
                "created_at": row.created_at,
            }
        )
    return out
