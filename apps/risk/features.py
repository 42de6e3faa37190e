"""Features the rule expressions can use. Each is an index-backed query bounded by a time window
(never a scan of history), so the cost per decision stays flat as history grows.

| feature | meaning |
|---|---|
| amount, amount_major, currency | the request (minor units; major units as a float for readability) |
| refund_ratio | amount ÷ the order's captured amount (refunds) |
| customer_age_days | days since the customer registered with the merchant |
| customer_orders, customer_orders_30d | the customer's orders, all time and in 30 days |
| customer_refunds_1h / _24h / _7d / _30d | the customer's requests of this scope in the window, this one included |
| customer_refund_rate_30d | refunds ÷ orders over 30 days (0 without orders) |
| device_refunds_1h / _24h, device_customers_24h | requests from the device, distinct customers (this one included) |
| device_customers_same_product_24h | distinct customers refunding this product from the device |
| ip_refunds_1h / _24h, ip_customers_24h, ip_customers_same_product_24h | the same per IP |
| unfamiliar_account | the destination account was never used by this customer |
| account_customers | distinct customers of the merchant holding this bank account |
| product_refunds_24h, product_refund_spike | product refunds in 24 h; ÷ daily mean of the 7 days before (≤ 1 min old) |
| minutes_since_purchase | minutes between payment and the request |
| usage_progress_pct, usage_key_revealed, usage_downloaded | usage evidence (refunds) |
| cluster_size, cluster_refund_rate | the customer's linked-account cluster (shared device/IP/account) |
| model_score | the learned model's probability that the request is abusive (0 without a model) |
| amount_robust_z | (amount − merchant median) ÷ (1.4826 × MAD), from the nightly baseline |
| refund_rate_robust_z | merchant refund rate over the last 24 h vs its daily-rate baseline, same formula (refunds) |
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.core.cache import cache
from django.db.models import Count, Q

from apps.accounts.models import BankAccount, Customer, Merchant
from apps.common.money import currency_exponent
from apps.orders.models import Order
from apps.risk.baselines import METRIC_AMOUNT, METRIC_DAILY_RATE, current_refund_rate, robust_z
from apps.risk.clusters import cluster_stats
from apps.risk.models import MerchantBaseline, Observation
from apps.risk.scoring import model_score

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)

# name → rule-engine type, for compile-time checking of expressions ("float" covers ints).
FEATURE_TYPES: dict[str, str] = {
    "amount": "float",
    "amount_major": "float",
    "currency": "string",
    "refund_ratio": "float",
    "customer_age_days": "float",
    "customer_orders": "float",
    "customer_orders_30d": "float",
    "customer_refunds_1h": "float",
    "customer_refunds_24h": "float",
    "customer_refunds_7d": "float",
    "customer_refunds_30d": "float",
    "customer_refund_rate_30d": "float",
    "device_refunds_1h": "float",
    "device_refunds_24h": "float",
    "device_customers_24h": "float",
    "device_customers_same_product_24h": "float",
    "ip_refunds_1h": "float",
    "ip_refunds_24h": "float",
    "ip_customers_24h": "float",
    "ip_customers_same_product_24h": "float",
    "unfamiliar_account": "boolean",
    "account_customers": "float",
    "product_refunds_24h": "float",
    "product_refund_spike": "float",
    "minutes_since_purchase": "float",
    "usage_progress_pct": "float",
    "usage_key_revealed": "boolean",
    "usage_downloaded": "boolean",
    "cluster_size": "float",
    "cluster_refund_rate": "float",
    "model_score": "float",
    "amount_robust_z": "float",
    "refund_rate_robust_z": "float",
}


def _window_counts(queryset, now: datetime, field_prefix: str, windows: dict[str, timedelta]) -> dict:
    aggregates = {
        f"{field_prefix}_{name}": Count("id", filter=Q(created_at__gte=now - span)) for name, span in windows.items()
    }
    return queryset.aggregate(**aggregates)


def _per_attribute(base, *, field: str, value, now: datetime, product_id, customer_id, prefix: str) -> dict:
    if not value:
        return {
            f"{prefix}_refunds_1h": 0,
            f"{prefix}_refunds_24h": 0,
            f"{prefix}_customers_24h": 0,
            f"{prefix}_customers_same_product_24h": 0,
        }
    rows = base.filter(**{field: value}, created_at__gte=now - DAY).aggregate(
        refunds_1h=Count("id", filter=Q(created_at__gte=now - HOUR)),
        refunds_24h=Count("id"),
        customers_24h=Count("customer_id", distinct=True),
        same_product=Count("customer_id", distinct=True, filter=Q(product_id=product_id)),
        mine=Count("id", filter=Q(customer_id=customer_id)),
        mine_same_product=Count("id", filter=Q(customer_id=customer_id, product_id=product_id)),
    )
    # Counts include the request being judged ("the 5th refund in an hour" is this one).
    return {
        f"{prefix}_refunds_1h": rows["refunds_1h"] + 1,
        f"{prefix}_refunds_24h": rows["refunds_24h"] + 1,
        f"{prefix}_customers_24h": rows["customers_24h"] + (0 if rows["mine"] else 1),
        f"{prefix}_customers_same_product_24h": rows["same_product"] + (0 if rows["mine_same_product"] else 1),
    }


# A popular product's refunds over 8 days grow with the merchant's traffic (thousands of index
# entries at 1 M refunds a month), unlike per-customer/device/IP counts. They are product-wide
# aggregates that move slowly, so they are counted once per product per minute (shared cache) and
# with COUNT(created_at), which the (merchant, scope, product_id, created_at) index answers alone.
PRODUCT_COUNTS_TTL = 60


def _product_counts(base, *, merchant_id: int, scope: str, product_id: int, now: datetime) -> dict:
    key = f"risk:product_counts:{merchant_id}:{scope}:{product_id}:{int(now.timestamp()) // PRODUCT_COUNTS_TTL}"
    counts = cache.get(key)
    if counts is None:
        counts = base.filter(product_id=product_id, created_at__gte=now - 8 * DAY).aggregate(
            last_day=Count("created_at", filter=Q(created_at__gte=now - DAY)),
            week_before=Count("created_at", filter=Q(created_at__lt=now - DAY)),
        )
        cache.set(key, counts, PRODUCT_COUNTS_TTL)
    return counts


def features_for(*, scope: str, merchant: Merchant, context: dict, now: datetime) -> dict:
    """Compute every feature for one request. `context` carries what the caller knows: customer_id,
    amount, currency, device_id, ip, account_fingerprint, product_id, order_amount, paid_at, usage."""
    amount = int(context.get("amount") or 0)
    currency = context.get("currency") or ""
    customer_id = context.get("customer_id")
    product_id = context.get("product_id")
    fingerprint = context.get("account_fingerprint") or ""
    base = Observation.objects.filter(merchant=merchant, scope=scope)

    features: dict = {
        "amount": float(amount),
        "amount_major": amount / 10 ** currency_exponent(currency) if currency else float(amount),
        "currency": currency,
        "refund_ratio": amount / context["order_amount"] if context.get("order_amount") else 0.0,
    }

    customer = Customer.objects.filter(pk=customer_id).only("registered_at").first() if customer_id else None
    features["customer_age_days"] = float((now - customer.registered_at).days) if customer else 0.0
    if customer_id:
        orders = Order.objects.filter(customer_id=customer_id).aggregate(
            total=Count("id"), recent=Count("id", filter=Q(paid_at__gte=now - 30 * DAY))
        )
        counts = _window_counts(
            base.filter(customer_id=customer_id, created_at__gte=now - 30 * DAY),
            now,
            "customer_refunds",
            {"1h": HOUR, "24h": DAY, "7d": 7 * DAY, "30d": 30 * DAY},
        )
    else:
        orders = {"total": 0, "recent": 0}
        counts = {f"customer_refunds_{w}": 0 for w in ("1h", "24h", "7d", "30d")}
    features["customer_orders"] = float(orders["total"])
    features["customer_orders_30d"] = float(orders["recent"])
    # Counts include the request being judged.
    features.update({k: float(v) + 1 for k, v in counts.items()})
    recent_refunds = counts["customer_refunds_30d"] + 1
    features["customer_refund_rate_30d"] = recent_refunds / orders["recent"] if orders["recent"] else 0.0

    for field, value, prefix in (("device_id", context.get("device_id"), "device"), ("ip", context.get("ip"), "ip")):
        per = _per_attribute(
            base, field=field, value=value, now=now, product_id=product_id, customer_id=customer_id, prefix=prefix
        )
        features.update({k: float(v) for k, v in per.items()})

    if fingerprint and customer_id:
        known = (
            fingerprint == context.get("payer_fingerprint")
            or BankAccount.objects.filter(customer_id=customer_id, fingerprint=fingerprint).exists()
            or base.filter(customer_id=customer_id, account_fingerprint=fingerprint).exists()
        )
        features["unfamiliar_account"] = not known
        features["account_customers"] = float(
            BankAccount.objects.filter(merchant=merchant, fingerprint=fingerprint)
            .exclude(customer_id=None)
            .values("customer_id")
            .distinct()
            .count()
        )
    else:
        features["unfamiliar_account"] = False
        features["account_customers"] = 0.0

    if product_id:
        product = _product_counts(base, merchant_id=merchant.pk, scope=scope, product_id=product_id, now=now)
        daily_mean = product["week_before"] / 7
        last_day = product["last_day"] + 1
        features["product_refunds_24h"] = float(last_day)
        # With no history a first refund is not a spike: compare against a floor of one a day.
        features["product_refund_spike"] = last_day / max(daily_mean, 1.0)
    else:
        features["product_refunds_24h"] = 0.0
        features["product_refund_spike"] = 0.0

    paid_at = context.get("paid_at")
    features["minutes_since_purchase"] = (now - paid_at).total_seconds() / 60 if paid_at else 0.0
    usage = context.get("usage") or {}
    features["usage_progress_pct"] = float(usage.get("max_progress_pct", 0))
    features["usage_key_revealed"] = bool(usage.get("key_revealed", False))
    features["usage_downloaded"] = bool(usage.get("downloaded", False))

    size, rate = cluster_stats(customer_id=customer_id, now=now, merchant_id=merchant.pk) if customer_id else (1, 0.0)
    features["cluster_size"] = float(size)
    features["cluster_refund_rate"] = rate

    baselines = {
        row.metric: row
        for row in MerchantBaseline.objects.filter(merchant=merchant, metric__in=(METRIC_AMOUNT, METRIC_DAILY_RATE))
    }
    amount_base = baselines.get(METRIC_AMOUNT)
    features["amount_robust_z"] = (
        robust_z(amount, median=amount_base.median, mad=amount_base.mad) if amount_base else 0.0
    )
    rate_base = baselines.get(METRIC_DAILY_RATE)
    rate = current_refund_rate(merchant_id=merchant.pk, now=now) if rate_base and scope == "refund" else None
    features["refund_rate_robust_z"] = (
        robust_z(rate, median=rate_base.median, mad=rate_base.mad) if rate is not None else 0.0
    )

    features["model_score"] = model_score(features)
    return features
