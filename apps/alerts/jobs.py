"""Periodic alert jobs (called by `apps.alerts.tasks`). Each takes effect once per window through
the shared period claim (apps.common.periodic): a second beat firing in the same window does
nothing; a job that fails rolls its claim back and the next beat retries the window."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, DurationField, ExpressionWrapper, F

from apps.alerts import rules
from apps.alerts.models import Alert, Tier
from apps.alerts.services import alert_auto_resolve, alert_escalate, alert_raise, alert_resolve, alert_upgrade
from apps.common.periodic import periodic_run_once
from apps.orders.models import Order
from apps.payouts.models import Disbursement
from apps.refunds.models import Refund

logger = logging.getLogger(__name__)

S = Alert.Status
LIVE = (S.OPEN, S.ACKED, S.SUPPRESSED)


def run_once(
    job: str, window_seconds: int, work: Callable[[datetime], dict], *, now: datetime | None = None
) -> dict | None:
    """Run `work(now)` unless this job already ran in the current window. Returns its result, or
    None when skipped."""
    return periodic_run_once(job=f"alerts.{job}", window_seconds=window_seconds, work=work, now=now)


def _live_keys(prefix_keys: list[str]) -> set[str]:
    return set(Alert.objects.filter(dedup_key__in=prefix_keys, status__in=LIVE).values_list("dedup_key", flat=True))


# --- SLA: not arrived ----------------------------------------------------------------------------


def sla_watch(now: datetime) -> dict:
    """Refunds and payouts in flight longer than ALERT_NOT_ARRIVED_AFTER → P1 "…_not_arrived"."""
    cutoff = now - settings.ALERT_NOT_ARRIVED_AFTER
    raised = 0
    refunds = list(
        Refund.objects.filter(status__in=Refund.IN_FLIGHT, submitted_at__lt=cutoff)
        .select_related("channel")
        .order_by("id")[:1000]
    )
    live = _live_keys([rules.refund_key(r.pk, "not_arrived") for r in refunds])
    for refund in refunds:
        key = rules.refund_key(refund.pk, "not_arrived")
        if key in live:
            continue
        hours = int((now - refund.submitted_at).total_seconds() // 3600)
        alert_raise(
            tier=Tier.P1,
            kind="refund_not_arrived",
            dedup_key=key,
            subject_type="refund",
            subject_id=refund.pk,
            merchant=refund.merchant_id,
            channel=refund.channel.code if refund.channel_id else "",
            summary=f"Refund {refund.pk} submitted {hours} h ago has not arrived",
            detail={"submitted_at": refund.submitted_at.isoformat(), "status": refund.status, "hours": hours},
            actor="job:sla_watch",
        )
        raised += 1
    movements = list(
        Disbursement.objects.filter(status__in=Disbursement.IN_FLIGHT, submitted_at__lt=cutoff)
        .select_related("channel")
        .order_by("id")[:1000]
    )
    live = _live_keys([rules.payout_key(d.kind, d.pk, "not_arrived") for d in movements])
    for d in movements:
        key = rules.payout_key(d.kind, d.pk, "not_arrived")
        if key in live:
            continue
        hours = int((now - d.submitted_at).total_seconds() // 3600)
        alert_raise(
            tier=Tier.P1,
            kind=f"{d.kind}_not_arrived",
            dedup_key=key,
            subject_type=d.kind,
            subject_id=d.pk,
            merchant=d.merchant_id,
            channel=d.channel.code if d.channel_id else "",
            summary=f"{d.kind.capitalize()} {d.pk} submitted {hours} h ago has not arrived",
            detail={"submitted_at": d.submitted_at.isoformat(), "status": d.status, "hours": hours},
            actor="job:sla_watch",
        )
        raised += 1
    return {"raised": raised}


# --- card refund deadline -------------------------------------------------------------------------

DEADLINE_OPEN = (
    Refund.Status.REQUESTED,
    Refund.Status.APPROVED,
    Refund.Status.MANUAL_REVIEW,
    Refund.Status.SUBMITTED,
    Refund.Status.PROCESSING,
    Refund.Status.UNKNOWN,
    Refund.Status.FAILED,
    Refund.Status.NEEDS_ACTION,
)


def deadline_watch(now: datetime) -> dict:
    """Card refunds must complete within ALERT_CARD_DEADLINE_DAYS of the request: a P1 from the
    warning day on, while not arrived."""
    warn_cutoff = now - timedelta(days=settings.ALERT_CARD_DEADLINE_WARN_DAYS)
    refunds = list(
        Refund.objects.filter(
            status__in=DEADLINE_OPEN, created_at__lte=warn_cutoff, order__payment_method=Order.PaymentMethod.CARD
        ).order_by("id")[:1000]
    )
    live = _live_keys([rules.refund_key(r.pk, "deadline") for r in refunds])
    raised = 0
    for refund in refunds:
        key = rules.refund_key(refund.pk, "deadline")
        if key in live:
            continue
        deadline = refund.created_at + timedelta(days=settings.ALERT_CARD_DEADLINE_DAYS)
        alert_raise(
            tier=Tier.P1,
            kind="refund_deadline_near",
            dedup_key=key,
            subject_type="refund",
            subject_id=refund.pk,
            merchant=refund.merchant_id,
            summary=f"Card refund {refund.pk} must complete by {deadline:%Y-%m-%d %H:%M} UTC",
            detail={"deadline_at": deadline.isoformat(), "status": refund.status, "is_overdue": now >= deadline},
            actor="job:deadline_watch",
        )
        raised += 1
    return {"raised": raised}


# --- category spike -------------------------------------------------------------------------------


def _quick_refunds(since: datetime, until: datetime):
    """Refunds requested within ALERT_SPIKE_WINDOW_MINUTES of payment, counted per merchant and kind."""
    gap = ExpressionWrapper(F("created_at") - F("order__paid_at"), output_field=DurationField())
    return (
        Refund.objects.filter(created_at__gte=since, created_at__lt=until)
        .annotate(gap=gap)
        .filter(gap__lte=timedelta(minutes=settings.ALERT_SPIKE_WINDOW_MINUTES))
        .values("merchant_id", "order__product__kind")
        .annotate(count=Count("id"))
        .order_by()
    )


def spike_detect(now: datetime) -> dict:
    """Per merchant and product kind: quick refunds today vs the daily mean of the baseline days; a
    P1 "refund_spike" once per merchant, kind and day."""
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    days = settings.ALERT_SPIKE_BASELINE_DAYS
    baseline = {
        (row["merchant_id"], row["order__product__kind"]): row["count"] / days
        for row in _quick_refunds(today - timedelta(days=days), today)
    }
    raised = 0
    for row in _quick_refunds(today, now + timedelta(seconds=1)):
        merchant_id, kind, count = row["merchant_id"], row["order__product__kind"], row["count"]
        mean = baseline.get((merchant_id, kind), 0.0)
        if count < settings.ALERT_SPIKE_MIN_COUNT or count < settings.ALERT_SPIKE_FACTOR * mean:
            continue
        key = f"spike:{merchant_id}:{kind}:{today:%Y-%m-%d}"
        if _live_keys([key]):
            continue
        alert_raise(
            tier=Tier.P1,
            kind="refund_spike",
            dedup_key=key,
            subject_type="product_kind",
            subject_id=kind,
            merchant=merchant_id,
            summary=f"{count} {kind} refunds within {settings.ALERT_SPIKE_WINDOW_MINUTES} min of payment today "
            f"(baseline {mean:.1f}/day)",
            detail={"count": count, "baseline_daily_mean": round(mean, 2), "date": f"{today:%Y-%m-%d}"},
            actor="job:spike_detect",
        )
        raised += 1
    return {"raised": raised}


# --- escalation -------------------------------------------------------------------------------------


def escalate_due(now: datetime) -> dict:
    """Re-page unacked P0s (next on-call) and upgrade long-unresolved P1s to P0."""
    repage = list(
        Alert.objects.filter(
            tier=Tier.P0, status=S.OPEN, parent__isnull=True, last_paged_at__lt=now - settings.ALERT_P0_REPAGE_AFTER
        ).values_list("pk", flat=True)
    )
    upgrade = list(
        Alert.objects.filter(
            tier=Tier.P1,
            status__in=(S.OPEN, S.ACKED),
            parent__isnull=True,
            first_seen_at__lt=now - settings.ALERT_P1_UPGRADE_AFTER,
        ).values_list("pk", flat=True)
    )
    escalated = sum(1 for pk in repage if alert_escalate(alert_id=pk))
    upgraded = sum(1 for pk in upgrade if alert_upgrade(alert_id=pk))
    return {"escalated": escalated, "upgraded": upgraded}


# --- auto-resolve -----------------------------------------------------------------------------------

REFUND_KINDS = ("refund_not_arrived", "refund_retryable_failure", "refund_outcome_unknown", "refund_deadline_near")
REFUND_DONE = (Refund.Status.SUCCEEDED, Refund.Status.CANCELLED, Refund.Status.REJECTED)
PAYOUT_DONE = (Disbursement.Status.PAID, Disbursement.Status.CANCELLED, Disbursement.Status.RECALLED)


def auto_resolve_due(now: datetime) -> dict:
    """Resolve watched alerts whose subject has since arrived or ended (a missed signal, a restart),
    and group alerts whose every item is resolved."""
    resolved = 0
    refund_alerts = Alert.objects.filter(kind__in=REFUND_KINDS, subject_type="refund", status__in=LIVE, is_group=False)
    by_subject = {a.subject_id: a for a in refund_alerts}
    done = {
        str(pk)
        for pk in Refund.objects.filter(
            pk__in=[int(s) for s in by_subject if s.isdigit()], status__in=REFUND_DONE
        ).values_list("pk", flat=True)
    }
    for alert in refund_alerts:
        if alert.subject_id in done and alert_auto_resolve(
            dedup_key=alert.dedup_key, reason="refund ended", actor="job:auto_resolve"
        ):
            resolved += 1
    payout_alerts = Alert.objects.filter(
        subject_type__in=("payout", "withdrawal"),
        status__in=LIVE,
        is_group=False,
        kind__regex=r"_(not_arrived|retryable_failure|outcome_unknown)$",
    )
    ids = [int(a.subject_id) for a in payout_alerts if a.subject_id.isdigit()]
    done = {
        str(pk) for pk in Disbursement.objects.filter(pk__in=ids, status__in=PAYOUT_DONE).values_list("pk", flat=True)
    }
    for alert in payout_alerts:
        if alert.subject_id in done and alert_auto_resolve(
            dedup_key=alert.dedup_key, reason="payout ended", actor="job:auto_resolve"
        ):
            resolved += 1
    for group in Alert.objects.filter(is_group=True, status__in=LIVE):
        if not group.children.filter(status__in=LIVE).exists():
            alert_resolve(alert_id=group.pk, actor="job:auto_resolve", note="every item resolved")
            resolved += 1
    return {"resolved": resolved}
