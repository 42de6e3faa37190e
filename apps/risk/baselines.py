"""Adaptive thresholds: per-merchant robust baselines of refund traffic, refreshed nightly.

For each merchant, over the last `days` whole UTC days:
- "refund_amount": median and MAD of the amounts of refund requests (Observation, scope refund);
- "daily_refund_rate": median and MAD of the per-day rate refund requests ÷ orders paid that day
  (days without orders are skipped: the rate is undefined there).

Median and MAD (median absolute deviation) are used instead of mean and standard deviation because
one abusive burst must not drag the baseline towards itself. Features turn them into robust
z-scores, `(x − median) ÷ (1.4826 × MAD)` (1.4826 makes the MAD estimate σ for normal data), so a
rule like `amount_robust_z > 4` keeps its meaning as a merchant's traffic grows or shrinks: the
threshold moves with the merchant's own recent history.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, time, timedelta

import numpy as np
from django.db.models import Count
from django.db.models.functions import TruncDate
from django.utils import timezone

from apps.accounts.models import Merchant
from apps.common import localcache
from apps.orders.models import Order
from apps.risk.models import MerchantBaseline, Observation, Scope

logger = logging.getLogger(__name__)

# Scale factor that makes the MAD a consistent estimator of σ for normally distributed data.
MAD_TO_SIGMA = 1.4826
METRIC_AMOUNT = "refund_amount"
METRIC_DAILY_RATE = "daily_refund_rate"


def robust_z(value: float, *, median: float, mad: float) -> float:
    """How many robust standard deviations `value` lies from the median (0 when MAD is 0)."""
    if mad <= 0:
        return 0.0
    return (value - median) / (MAD_TO_SIGMA * mad)


def median_mad(values) -> tuple[float, float]:
    """(median, median absolute deviation) of a non-empty sequence of numbers."""
    data = np.asarray(values, dtype=float)
    median = float(np.median(data))
    return median, float(np.median(np.abs(data - median)))


def _window(now: datetime, days: int) -> tuple[datetime, datetime]:
    # Whole UTC days only: today's partial day would pull the rate baseline down every morning.
    end = datetime.combine(now.astimezone(UTC).date(), time.min, tzinfo=UTC)
    return end - timedelta(days=days), end


def _store(merchant: Merchant, metric: str, values, now: datetime) -> MerchantBaseline | None:
    if len(values) == 0:
        MerchantBaseline.objects.filter(merchant=merchant, metric=metric).delete()
        return None
    median, mad = median_mad(values)
    row, _ = MerchantBaseline.objects.update_or_create(
        merchant=merchant,
        metric=metric,
        defaults={"median": median, "mad": mad, "samples": len(values), "computed_at": now},
    )
    return row


def _daily_rates(merchant: Merchant, start: datetime, end: datetime) -> list[float]:
    def per_day(queryset, field: str) -> dict:
        return dict(
            queryset.annotate(day=TruncDate(field, tzinfo=UTC))
            .values("day")
            .annotate(n=Count("id"))
            .values_list("day", "n")
        )

    refunds = per_day(
        Observation.objects.filter(merchant=merchant, scope=Scope.REFUND, created_at__gte=start, created_at__lt=end),
        "created_at",
    )
    orders = per_day(Order.objects.filter(merchant=merchant, paid_at__gte=start, paid_at__lt=end), "paid_at")
    return [refunds.get(day, 0) / count for day, count in sorted(orders.items()) if count]


def risk_baselines_refresh(*, merchant: Merchant | None = None, now: datetime | None = None, days: int = 30) -> dict:
    """Recompute every merchant's (or one merchant's) refund baselines over the last `days` whole
    UTC days and store them as MerchantBaseline rows (update_or_create; a metric without data is
    removed so stale numbers never judge new traffic).

    Reads observations and orders, writes only MerchantBaseline. Safe to run twice. Called nightly
    by `risk_baselines_refresh_task`. Returns {merchant_id: {metric: (median, mad, samples)}}.
    """
    now = now or timezone.now()
    start, end = _window(now, days)
    merchants = [merchant] if merchant is not None else Merchant.objects.filter(is_active=True)
    result: dict = {}
    for each in merchants:
        amounts = list(
            Observation.objects.filter(
                merchant=each, scope=Scope.REFUND, created_at__gte=start, created_at__lt=end
            ).values_list("amount", flat=True)
        )
        rates = _daily_rates(each, start, end)
        stored = {}
        for metric, values in ((METRIC_AMOUNT, amounts), (METRIC_DAILY_RATE, rates)):
            row = _store(each, metric, values, now)
            if row is not None:
                stored[metric] = (row.median, row.mad, row.samples)
        result[each.pk] = stored
        logger.info("risk baselines refreshed for merchant %s: %s", each.pk, stored)
    return result


# The current refund rate is a merchant-wide aggregate: it moves slowly, so one count per merchant
# per CURRENT_RATE_TTL seconds (shared through the cache) keeps the per-decision cost flat however
# busy the merchant is. Below MIN_ORDERS_FOR_RATE orders in 24 h the rate is noise: no signal.
CURRENT_RATE_TTL = 60
CURRENT_RATE_LOCAL_SECONDS = 10  # per process, in front of the shared cache
MIN_ORDERS_FOR_RATE = 20


def current_refund_rate(*, merchant_id: int, now: datetime) -> float | None:
    """Refund requests ÷ orders paid over the 24 hours before `now` (None with too few orders).

    Two index range counts (obs_merchant_time_idx, order_merchant_paid_idx), cached per merchant
    for CURRENT_RATE_TTL seconds.
    """

    def rate() -> tuple[float | None]:
        since = now - timedelta(days=1)
        refunds = Observation.objects.filter(
            merchant_id=merchant_id, scope=Scope.REFUND, created_at__gte=since, created_at__lte=now
        ).count()
        orders = Order.objects.filter(merchant_id=merchant_id, paid_at__gte=since, paid_at__lte=now).count()
        return (refunds / orders if orders >= MIN_ORDERS_FOR_RATE else None,)

    key = f"risk:current_refund_rate:{merchant_id}"
    return localcache.get_or_set(key, rate, local_seconds=CURRENT_RATE_LOCAL_SECONDS, timeout=CURRENT_RATE_TTL)[0]
