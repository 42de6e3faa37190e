"""Adaptive thresholds: per-merchant median/MAD baselines that move with the merchant's traffic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from apps.common import localcache
from apps.risk.baselines import current_refund_rate, median_mad, risk_baselines_refresh, robust_z
from apps.risk.features import FEATURE_TYPES, features_for
from apps.risk.models import MerchantBaseline, Observation
from apps.risk.tasks import risk_baselines_refresh_task
from tests.factories import CustomerFactory, MerchantFactory, OrderFactory, ProductFactory

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

NOW = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)
# Refund amounts of the last days: median 200, |x − 200| = 100 100 0 0 100 300 800 → MAD 100.
AMOUNTS = [100, 100, 200, 200, 300, 500, 1000]


def _forget_cached() -> None:
    """Empty the shared cache and this process's copies in front of it."""
    cache.clear()
    localcache.clear()


@pytest.fixture(autouse=True)
def _fresh_cache():
    _forget_cached()
    yield
    _forget_cached()


def _refund(merchant, amount: int, at: datetime) -> Observation:
    return Observation.objects.create(
        merchant=merchant, scope="refund", amount=amount, currency="CNY", action="allow", created_at=at
    )


def _orders(merchant, count: int, at: datetime) -> None:
    customer = CustomerFactory(merchant=merchant)
    product = ProductFactory(merchant=merchant)
    for _ in range(count):
        OrderFactory(merchant=merchant, customer=customer, product=product, paid_at=at)


def test_median_and_mad_are_exact_on_a_known_set():
    assert median_mad(AMOUNTS) == (200.0, 100.0)
    assert robust_z(200 + 1.4826 * 100 * 3, median=200, mad=100) == pytest.approx(3.0)
    assert robust_z(999, median=200, mad=0) == 0.0


def test_refresh_stores_amount_baseline_and_amount_robust_z_uses_it(merchant):
    for day, amount in enumerate(AMOUNTS, start=1):
        _refund(merchant, amount, NOW - timedelta(days=day))
    _refund(merchant, 99_999, NOW - timedelta(days=40))  # outside the 30-day window
    _refund(merchant, 99_999, NOW - timedelta(hours=1))  # today: a partial day is not baseline
    other = MerchantFactory()
    _refund(other, 5, NOW - timedelta(days=1))

    result = risk_baselines_refresh(merchant=merchant, now=NOW)

    row = MerchantBaseline.objects.get(merchant=merchant, metric="refund_amount")
    assert (row.median, row.mad, row.samples) == (200.0, 100.0, 7)
    assert result[merchant.pk]["refund_amount"] == (200.0, 100.0, 7)
    assert not MerchantBaseline.objects.filter(merchant=other).exists()

    outlier = features_for(scope="refund", merchant=merchant, context={"amount": 5000, "currency": "CNY"}, now=NOW)
    typical = features_for(scope="refund", merchant=merchant, context={"amount": 250, "currency": "CNY"}, now=NOW)
    assert outlier["amount_robust_z"] == pytest.approx((5000 - 200) / 148.26)
    assert outlier["amount_robust_z"] > 30  # flagged by e.g. `amount_robust_z > 4`
    assert typical["amount_robust_z"] == pytest.approx(50 / 148.26)


def test_sensitivity_follows_the_merchants_traffic(merchant):
    for day, amount in enumerate(AMOUNTS, start=1):
        _refund(merchant, amount, NOW - timedelta(days=day))
    risk_baselines_refresh(now=NOW)
    before = features_for(scope="refund", merchant=merchant, context={"amount": 1000, "currency": "CNY"}, now=NOW)

    # The merchant starts selling a premium product: refunds of 5 000 – 5 400 become normal.
    for day in range(1, 15):
        _refund(merchant, 5000 + 100 * (day % 5), NOW - timedelta(days=day, hours=3))
    risk_baselines_refresh(now=NOW)
    after = features_for(scope="refund", merchant=merchant, context={"amount": 1000, "currency": "CNY"}, now=NOW)

    row = MerchantBaseline.objects.get(merchant=merchant, metric="refund_amount")
    assert row.samples == 21
    assert row.median == 5100.0
    assert before["amount_robust_z"] > 4  # 1 000 was an outlier against the old traffic…
    assert after["amount_robust_z"] < 0  # …and is below normal against the new


def test_daily_refund_rate_baseline_and_todays_rate_outlier(merchant):
    # Five whole days: 20 orders a day, refunds 1, 2, 2, 2, 4 → rates .05 .10 .10 .10 .20.
    for day, refunds in enumerate((1, 2, 2, 2, 4), start=1):
        at = NOW.replace(hour=10) - timedelta(days=day)
        _orders(merchant, 20, at)
        for _ in range(refunds):
            _refund(merchant, 100, at)

    risk_baselines_refresh(merchant=merchant, now=NOW)

    row = MerchantBaseline.objects.get(merchant=merchant, metric="daily_refund_rate")
    assert row.median == pytest.approx(0.10)
    assert row.mad == pytest.approx(0.0)
    # MAD 0: no robust z can be formed, so the feature stays quiet instead of dividing by zero.
    assert features_for(scope="refund", merchant=merchant, context={}, now=NOW)["refund_rate_robust_z"] == 0.0

    MerchantBaseline.objects.filter(pk=row.pk).update(mad=0.02)
    # Last 24 h (yesterday's orders at 10:00 are 26 h old): 20 orders and 12 refunds today → 0.6.
    _orders(merchant, 20, NOW - timedelta(hours=2))
    for _ in range(12):
        _refund(merchant, 100, NOW - timedelta(hours=1))
    _forget_cached()
    assert current_refund_rate(merchant_id=merchant.pk, now=NOW) == pytest.approx(0.6)
    z = features_for(scope="refund", merchant=merchant, context={}, now=NOW)["refund_rate_robust_z"]
    assert z == pytest.approx((0.6 - 0.10) / (1.4826 * 0.02))
    assert z > 4  # an outlier day for this merchant
    assert "refund_rate_robust_z" in FEATURE_TYPES


def test_current_rate_needs_enough_orders_and_is_cached(merchant):
    _orders(merchant, 5, NOW - timedelta(hours=1))
    _refund(merchant, 100, NOW - timedelta(minutes=5))
    assert current_refund_rate(merchant_id=merchant.pk, now=NOW) is None
    _orders(merchant, 30, NOW - timedelta(hours=1))
    assert current_refund_rate(merchant_id=merchant.pk, now=NOW) is None  # cached for a minute
    _forget_cached()
    assert current_refund_rate(merchant_id=merchant.pk, now=NOW) == pytest.approx(1 / 35)


def test_a_metric_without_data_is_removed_and_the_nightly_task_covers_every_merchant(merchant):
    MerchantBaseline.objects.create(merchant=merchant, metric="refund_amount", median=1, mad=1, samples=1)
    other = MerchantFactory()
    _refund(other, 300, timezone.now() - timedelta(days=1))  # the task uses the real clock

    assert risk_baselines_refresh(merchant=merchant, now=NOW) == {merchant.pk: {}}
    assert not MerchantBaseline.objects.filter(merchant=merchant).exists()
    assert risk_baselines_refresh_task.delay().get()["merchants"] >= 2
    assert risk_baselines_refresh_task.delay().get() is None  # once per day
    assert MerchantBaseline.objects.filter(merchant=other, metric="refund_amount").exists()
