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

from datetime import UTC, datetime, timedelta

from django.db import connection
from django.db.models import Count, Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.accounts.models import Merchant
from apps.common import localcache
from apps.common.money import currency_exponent
from apps.risk import caching
from apps.risk.baselines import METRIC_AMOUNT, METRIC_DAILY_RATE, current_refund_rate, robust_z
from apps.risk.clusters import LINK_WINDOW, MAX_MEMBERS_SCANNED
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


# device_* / ip_* over 24 h, one subquery per attribute (same shape, its own column and index);
# `mine…` tell whether this customer (and product) is already among those counted.
_PER_ATTRIBUTE_SQL = """
    SELECT count(*) FILTER (WHERE created_at >= %(h1)s) AS h1,
           count(*) AS h24,
           count(DISTINCT customer_id) AS customers,
           count(DISTINCT customer_id) FILTER (WHERE product_id = %(product)s
                                               OR (product_id IS NULL AND %(product)s IS NULL)) AS same_product,
           count(*) FILTER (WHERE customer_id = %(me)s OR (customer_id IS NULL AND %(me)s IS NULL)) AS mine,
           count(*) FILTER (WHERE (customer_id = %(me)s OR (customer_id IS NULL AND %(me)s IS NULL))
                              AND (product_id = %(product)s
                                   OR (product_id IS NULL AND %(product)s IS NULL))) AS mine_same_product
    FROM risk_observation
    WHERE merchant_id = %(merchant)s AND scope = %(scope)s
      AND {column} = %({param})s AND created_at >= %(h24)s        -- {index}
"""

# Every per-request count, in one statement. Each part is an index range scan of a handful of rows
# (EXPLAIN at 1 M refunds in docs/benchmarks.md); what a decision used to pay was not the database
# (≈ 0.3 ms in all) but ~11 round trips and the ORM building and compiling ~11 querysets. One
# hand-written statement with the meaning of each part next to it is also easier to check against
# the feature table above than the ORM calls it replaces. Parameters that do not apply (no
# customer, device, IP or account) are passed as NULL: `col = NULL` matches nothing, so those parts
# cost nothing and return 0 / false. Index used by each part on the right. Only the constant
# column names above are formatted in; every value stays a bound parameter.
_COUNTS_SQL = """
WITH cluster_root AS (
    -- union-find root of the customer (apps.risk.clusters; no row: the customer is its own root)
    SELECT COALESCE(
        (SELECT root_id FROM risk_clustermember WHERE customer_id = %(customer)s), %(customer)s
    ) AS root                                                      -- customer_id unique index
), cluster_size AS (
    SELECT count(*) AS n FROM risk_clustermember
    WHERE root_id = (SELECT root FROM cluster_root)                -- root_id index (index only)
), cluster_members AS (
    -- at most 200 members, and only for a real cluster: a lone customer's rate is 0 anyway
    SELECT customer_id FROM risk_clustermember
    WHERE root_id = (SELECT root FROM cluster_root) AND (SELECT n FROM cluster_size) > 1
    LIMIT %(max_members)s
)
SELECT
    (SELECT registered_at FROM accounts_customer WHERE id = %(customer)s),            -- pkey
    o.total, o.recent,
    cr.h1, cr.h24, cr.d7, cr.d30,
    dev.h1, dev.h24, dev.customers, dev.same_product, dev.mine, dev.mine_same_product,
    ipa.h1, ipa.h24, ipa.customers, ipa.same_product, ipa.mine, ipa.mine_same_product,
    -- unfamiliar_account: a bank account of the customer's, or one of their earlier requests paid to it
    EXISTS (SELECT 1 FROM accounts_bankaccount
            WHERE customer_id = %(account_customer)s AND fingerprint = %(account)s),  -- customer_id index
    EXISTS (SELECT 1 FROM risk_observation
            WHERE merchant_id = %(merchant)s AND scope = %(scope)s
              AND customer_id = %(account_customer)s AND account_fingerprint = %(account)s),
                                                                   -- obs_account_idx / obs_customer_idx
    -- account_customers: the merchant's customers holding this account
    (SELECT count(DISTINCT customer_id) FROM accounts_bankaccount
     WHERE merchant_id = %(merchant)s AND fingerprint = %(account)s
       AND customer_id IS NOT NULL),                               -- fingerprint index
    (SELECT n FROM cluster_size),
    -- cluster_refund_rate = refund requests ÷ orders of the members over the link window
    (SELECT count(*) FROM orders_order
     WHERE customer_id IN (SELECT customer_id FROM cluster_members)
       AND paid_at >= %(link_since)s),                             -- (customer, paid_at) index
    (SELECT count(*) FROM risk_observation
     WHERE merchant_id = %(merchant)s AND scope = 'refund'
       AND customer_id IN (SELECT customer_id FROM cluster_members)
       AND created_at >= %(link_since)s)                           -- obs_customer_idx
FROM (
    -- customer_orders, customer_orders_30d (all merchants' orders of this customer row)
    SELECT count(*) AS total, count(*) FILTER (WHERE paid_at >= %(d30)s) AS recent
    FROM orders_order WHERE customer_id = %(customer)s             -- (customer, paid_at) index
) AS o
CROSS JOIN (
    -- customer_refunds_1h / _24h / _7d / _30d (before counting this request)
    SELECT count(*) FILTER (WHERE created_at >= %(h1)s) AS h1,
           count(*) FILTER (WHERE created_at >= %(h24)s) AS h24,
           count(*) FILTER (WHERE created_at >= %(d7)s) AS d7,
           count(*) AS d30
    FROM risk_observation
    WHERE merchant_id = %(merchant)s AND scope = %(scope)s
      AND customer_id = %(customer)s AND created_at >= %(d30)s     -- obs_customer_idx
) AS cr
CROSS JOIN ({device}) AS dev
CROSS JOIN ({ip}) AS ipa
""".format(  # noqa: S608 - only the constant column names are formatted in
    device=_PER_ATTRIBUTE_SQL.format(column="device_id", param="device", index="obs_device_idx"),
    ip=_PER_ATTRIBUTE_SQL.format(column="ip", param="ip", index="obs_ip_idx"),
)


def _per_attribute(prefix: str, present: bool, h1, h24, customers, same_product, mine, mine_same_product) -> dict:
    if not present:
        return {
            f"{prefix}_refunds_1h": 0.0,
            f"{prefix}_refunds_24h": 0.0,
            f"{prefix}_customers_24h": 0.0,
            f"{prefix}_customers_same_product_24h": 0.0,
        }
    # Counts include the request being judged ("the 5th refund in an hour" is this one).
    return {
        f"{prefix}_refunds_1h": float(h1 + 1),
        f"{prefix}_refunds_24h": float(h24 + 1),
        f"{prefix}_customers_24h": float(customers + (0 if mine else 1)),
        f"{prefix}_customers_same_product_24h": float(same_product + (0 if mine_same_product else 1)),
    }


def _counts(*, scope: str, merchant_id: int, context: dict, now: datetime) -> tuple:
    customer_id = context.get("customer_id")
    device_id = context.get("device_id")
    ip = context.get("ip")
    fingerprint = context.get("account_fingerprint") or ""
    ops = connection.ops
    params = {
        "merchant": merchant_id,
        "scope": scope,
        "customer": customer_id or None,
        "me": customer_id,  # as given (None included), like the ORM filter it replaces
        "product": context.get("product_id"),
        "device": device_id or None,
        "ip": ops.adapt_ipaddressfield_value(ip) if ip else None,
        "account": fingerprint if fingerprint and customer_id else None,
        "account_customer": customer_id if fingerprint and customer_id else None,
        "max_members": MAX_MEMBERS_SCANNED,
        "h1": ops.adapt_datetimefield_value(now - HOUR),
        "h24": ops.adapt_datetimefield_value(now - DAY),
        "d7": ops.adapt_datetimefield_value(now - 7 * DAY),
        "d30": ops.adapt_datetimefield_value(now - 30 * DAY),
        "link_since": ops.adapt_datetimefield_value(now - LINK_WINDOW),
    }
    with connection.cursor() as cursor:
        cursor.execute(_COUNTS_SQL, params)
        row = list(cursor.fetchone())
    if isinstance(row[0], str):  # SQLite (development) returns the timestamp as text, in UTC
        row[0] = parse_datetime(row[0]).replace(tzinfo=UTC)
    return tuple(row)


def _baselines(merchant_id: int) -> dict[str, tuple[float, float]]:
    """{metric: (median, mad)} of the merchant's nightly baselines, cached per process."""

    def load() -> dict[str, tuple[float, float]]:
        rows = MerchantBaseline.objects.filter(
            merchant_id=merchant_id, metric__in=(METRIC_AMOUNT, METRIC_DAILY_RATE)
        ).values_list("metric", "median", "mad")
        return {metric: (median, mad) for metric, median, mad in rows}

    return caching.cached(caching.BASELINES, merchant_id, load)


# A popular product's refunds over 8 days grow with the merchant's traffic (thousands of index
# entries at 1 M refunds a month), unlike per-customer/device/IP counts. They are product-wide
# aggregates that move slowly, so they are counted once per product per minute (shared cache) and
# with COUNT(created_at), which the (merchant, scope, product_id, created_at) index answers alone.
PRODUCT_COUNTS_TTL = 60
# ...and kept in each process for this long, so most decisions ask no cache at all.
LOCAL_SECONDS = 10


def _product_counts(base, *, merchant_id: int, scope: str, product_id: int, now: datetime) -> dict:
    key = f"risk:product_counts:{merchant_id}:{scope}:{product_id}:{int(now.timestamp()) // PRODUCT_COUNTS_TTL}"

    def count() -> dict:
        return base.filter(product_id=product_id, created_at__gte=now - 8 * DAY).aggregate(
            last_day=Count("created_at", filter=Q(created_at__gte=now - DAY)),
            week_before=Count("created_at", filter=Q(created_at__lt=now - DAY)),
        )

    return localcache.get_or_set(key, count, local_seconds=LOCAL_SECONDS, timeout=PRODUCT_COUNTS_TTL)


def _aware(value) -> datetime | None:
    """A timestamp read by raw SQL as an aware UTC datetime (SQLite hands back naive values or text)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = parse_datetime(value)
    if timezone.is_naive(value):
        value = timezone.make_aware(value, UTC)
    return value


def features_for(*, scope: str, merchant: Merchant, context: dict, now: datetime) -> dict:
    """Compute every feature for one request. `context` carries what the caller knows: customer_id,
    amount, currency, device_id, ip, account_fingerprint, product_id, order_amount, paid_at, usage.

    One SQL statement for the per-request counts; merchant-wide numbers from the shared cache
    (product counts, current refund rate: once a minute); model and baselines cached per process.
    """
    amount = int(context.get("amount") or 0)
    currency = context.get("currency") or ""
    customer_id = context.get("customer_id")
    product_id = context.get("product_id")
    fingerprint = context.get("account_fingerprint") or ""

    features: dict = {
        "amount": float(amount),
        "amount_major": amount / 10 ** currency_exponent(currency) if currency else float(amount),
        "currency": currency,
        "refund_ratio": amount / context["order_amount"] if context.get("order_amount") else 0.0,
    }

    (
        registered_at,
        orders_total,
        orders_recent,
        *customer_refunds,
        dev_h1,
        dev_h24,
        dev_customers,
        dev_same_product,
        dev_mine,
        dev_mine_same_product,
        ip_h1,
        ip_h24,
        ip_customers,
        ip_same_product,
        ip_mine,
        ip_mine_same_product,
        bank_known,
        paid_to_before,
        account_customers,
        cluster_size,
        cluster_orders,
        cluster_refunds,
    ) = _counts(scope=scope, merchant_id=merchant.pk, context=context, now=now)

    registered_at = _aware(registered_at)
    features["customer_age_days"] = float((now - registered_at).days) if customer_id and registered_at else 0.0
    features["customer_orders"] = float(orders_total)
    features["customer_orders_30d"] = float(orders_recent)
    # Counts include the request being judged.
    for window, count in zip(("1h", "24h", "7d", "30d"), customer_refunds, strict=True):
        features[f"customer_refunds_{window}"] = float(count) + 1
    recent_refunds = customer_refunds[3] + 1
    features["customer_refund_rate_30d"] = recent_refunds / orders_recent if orders_recent else 0.0

    features.update(
        _per_attribute(
            "device",
            bool(context.get("device_id")),
            dev_h1,
            dev_h24,
            dev_customers,
            dev_same_product,
            dev_mine,
            dev_mine_same_product,
        )
    )
    features.update(
        _per_attribute(
            "ip", bool(context.get("ip")), ip_h1, ip_h24, ip_customers, ip_same_product, ip_mine, ip_mine_same_product
        )
    )

    if fingerprint and customer_id:
        known = fingerprint == context.get("payer_fingerprint") or bank_known or paid_to_before
        features["unfamiliar_account"] = not known
        features["account_customers"] = float(account_customers)
    else:
        features["unfamiliar_account"] = False
        features["account_customers"] = 0.0

    if product_id:
        base = Observation.objects.filter(merchant=merchant, scope=scope)
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

    # Same numbers as apps.risk.clusters.cluster_stats (no customer, or a cluster of one: 1, 0.0).
    size = (cluster_size or 1) if customer_id else 1
    if size <= 1:
        features["cluster_size"], features["cluster_refund_rate"] = 1.0, 0.0
    else:
        features["cluster_size"] = float(size)
        features["cluster_refund_rate"] = cluster_refunds / cluster_orders if cluster_orders else 0.0

    baselines = _baselines(merchant.pk)
    amount_base = baselines.get(METRIC_AMOUNT)
    features["amount_robust_z"] = robust_z(amount, median=amount_base[0], mad=amount_base[1]) if amount_base else 0.0
    rate_base = baselines.get(METRIC_DAILY_RATE)
    rate = current_refund_rate(merchant_id=merchant.pk, now=now) if rate_base and scope == "refund" else None
    features["refund_rate_robust_z"] = (
        robust_z(rate, median=rate_base[0], mad=rate_base[1]) if rate is not None else 0.0
    )

    features["model_score"] = model_score(features)
    return features
