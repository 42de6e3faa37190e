"""Benchmark (not a test): risk feature and rule-evaluation cost per decision as history grows.

Setup (not timed): a dedicated PostgreSQL database is dropped, recreated and migrated. One merchant,
50 products, and history grown in stages (default 10 000 → 100 000 → 1 000 000 earlier refund
observations, spread over the last 30 days). Proportions per stage: one customer per 5 earlier
refunds (1 M → 200 000 customers), 1.2 orders per refund, one payer bank account per customer;
devices mostly one per customer, 5 % of customers in device-sharing rings of 5–10 (also linked in
the cluster table); IPs: households of ~2 customers, 10 % of customers behind 200 carrier-NAT IPs;
product popularity skewed (weight 1/√rank). Rows go in with COPY; then VACUUM ANALYZE (what
autovacuum does in production). A trained model is active (model_score runs) and merchant
baselines are refreshed (their refresh time is reported too).

Timed, at each stage: 1 000 new refund requests (80 % by customers with history, 10 % to an account
the customer never used), first `features_for` alone, then the full `risk_evaluate` (features +
lists + every rule of the default pack), each per request with perf_counter. Reports p50/p95/p99/max
in ms, and at the last stage EXPLAIN (ANALYZE, BUFFERS) of every SELECT one decision runs (caches
cold). Before each timed stage it waits (up to --wait-quiet seconds) until no other bench/ or
gunicorn process runs on the machine, and records whether it was quiet and the load average.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python bench/risk_features.py --sizes 10000,100000,1000000

The database named by --db-name is DROPPED and recreated; the script refuses SQLite and refuses to
reuse DATABASE_URL's own database.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import time
from datetime import timedelta
from pathlib import Path

from common import django_setup, percentile, wait_quiet

PRODUCTS = 50
NAT_IPS = 200


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="earlier refunds per stage (ascending)")
    parser.add_argument("--requests", type=int, default=1000, help="timed refund requests per stage")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--db-name", default="refundguard_bench_risk", help="dedicated database (dropped)")
    parser.add_argument("--explain-out", default="", help="write the EXPLAIN output to this file too")
    parser.add_argument(
        "--wait-quiet", type=float, default=600, help="seconds to wait before each timed stage for other benchmarks"
    )
    return parser.parse_args()


def _copy(table: str, columns: list[str], rows) -> int:
    from django.db import connection

    n = 0
    with connection.cursor() as cursor, cursor.cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
            n += 1
    return n


class World:
    """The synthetic merchant's population; grows by stage."""

    def __init__(self, rng: random.Random, merchant, products: list[int], now):
        self.rng = rng
        self.merchant = merchant
        self.products = products
        self.weights = [1 / (rank + 1) ** 0.5 for rank in range(len(products))]
        self.now = now
        self.customers: list[int] = []  # ids
        self.device: list[str] = []  # per customer index
        self.ip: list[str] = []
        self.fp: list[str] = []
        self.orders = 0
        self.observations = 0

    def _ip_for(self, index: int) -> str:
        if self.rng.random() < 0.10:
            return f"100.64.{self.rng.randrange(NAT_IPS) // 250}.{self.rng.randrange(NAT_IPS) % 250}"
        household = index // 2
        return f"10.{(household >> 16) & 255}.{(household >> 8) & 255}.{household & 255}"

    def add_customers(self, count: int) -> None:
        from apps.accounts.models import BankAccount, Customer
        from apps.common.crypto import encrypt
        from apps.risk.models import ClusterMember

        start = len(self.customers)
        merchant_id = self.merchant.pk
        now = self.now
        _copy(
            Customer._meta.db_table,
            [
                "merchant_id",
                "external_id",
                "name",
                "phone",
                "email",
                "locale",
                "registered_at",
                "trust_level",
                "chargeback_count",
                "created_at",
            ],
            (
                (
                    merchant_id,
                    f"c-{i}",
                    f"客户{i}",
                    "",
                    "",
                    "zh-hans",
                    now - timedelta(days=self.rng.randint(0, 720)),
                    "auto",
                    0,
                    now,
                )
                for i in range(start, start + count)
            ),
        )
        ids = list(Customer.objects.filter(merchant_id=merchant_id).order_by("id").values_list("id", flat=True)[start:])
        self.customers.extend(ids)
        ring_members: list[tuple[int, int]] = []
        i = start
        while i < start + count:
            if self.rng.random() < 0.05 / 7:  # a ring of 5–10 customers sharing one device
                size = min(self.rng.randint(5, 10), start + count - i)
                device = f"ring-{i}"
                for k in range(size):
                    self.device.append(device)
                    self.ip.append(self._ip_for(i + k))
                    ring_members.append((self.customers[i + k], self.customers[i]))
                i += size
            else:
                self.device.append(f"d-{i}")
                self.ip.append(self._ip_for(i))
                i += 1
        self.fp.extend(f"fp-{i:012d}" for i in range(start, start + count))
        token = encrypt("6222020000000000")  # one ciphertext reused: encryption adds nothing here
        _copy(
            BankAccount._meta.db_table,
            [
                "merchant_id",
                "customer_id",
                "holder_name",
                "bank",
                "number_encrypted",
                "last4",
                "fingerprint",
                "created_at",
            ],
            (
                (merchant_id, self.customers[j], f"客户{j}", "ICBC", token, f"{j % 10000:04d}", self.fp[j], now)
                for j in range(start, start + count)
            ),
        )
        _copy(
            ClusterMember._meta.db_table,
            ["merchant_id", "customer_id", "root_id"],
            ((merchant_id, member, root) for member, root in ring_members),
        )

    def add_history(self, refunds: int) -> None:
        from apps.orders.models import Order
        from apps.risk.models import Observation

        rng, merchant_id, now = self.rng, self.merchant.pk, self.now
        n_customers = len(self.customers)
        month = 30 * 86400
        orders = int(refunds * 1.2)
        start = self.orders
        _copy(
            Order._meta.db_table,
            [
                "merchant_id",
                "external_id",
                "customer_id",
                "product_id",
                "amount",
                "currency",
                "paid_at",
                "payment_method",
                "device_id",
                "ip",
                "created_at",
            ],
            (
                (
                    merchant_id,
                    f"o-{start + k}",
                    self.customers[c],
                    rng.choices(self.products, self.weights)[0],
                    19900,
                    "CNY",
                    now - timedelta(seconds=rng.randint(60, month)),
                    "card",
                    self.device[c],
                    self.ip[c],
                    now,
                )
                for k in range(orders)
                for c in [rng.randrange(n_customers)]
            ),
        )
        self.orders += orders
        _copy(
            Observation._meta.db_table,
            [
                "merchant_id",
                "scope",
                "subject_id",
                "customer_id",
                "device_id",
                "ip",
                "account_fingerprint",
                "product_id",
                "amount",
                "currency",
                "action",
                "score",
                "features",
                "created_at",
            ],
            (
                (
                    merchant_id,
                    "refund",
                    self.observations + k,
                    self.customers[c],
                    self.device[c],
                    self.ip[c],
                    self.fp[c],
                    rng.choices(self.products, self.weights)[0],
                    rng.choice((9900, 19900, 29900)),
                    "CNY",
                    "allow",
                    0.0,
                    "{}",
                    now - timedelta(seconds=rng.randint(60, month)),
                )
                for k in range(refunds)
                for c in [rng.randrange(n_customers)]
            ),
        )
        self.observations += refunds

    def request(self) -> dict:
        rng = self.rng
        c = rng.randrange(len(self.customers)) if rng.random() < 0.8 else None
        if c is None:  # a customer without refund history (maybe with none at all)
            c = rng.randrange(len(self.customers))
        fingerprint = self.fp[c] if rng.random() < 0.9 else f"fp-new-{rng.randrange(10**9)}"
        return {
            "customer_id": self.customers[c],
            "amount": rng.choice((9900, 19900, 29900)),
            "currency": "CNY",
            "device_id": self.device[c],
            "ip": self.ip[c],
            "account_fingerprint": fingerprint,
            "product_id": rng.choices(self.products, self.weights)[0],
            "order_amount": 19900,
            "paid_at": self.now - timedelta(minutes=rng.randint(1, 1440)),
            "usage": {"max_progress_pct": rng.choice((0, 0, 5, 30)), "key_revealed": rng.random() < 0.1},
        }


def _train_model() -> None:
    """An active model so model_score pays its real cost (trained on synthetic labelled vectors)."""
    import joblib
    import numpy as np
    from sklearn.ensemble import GradientBoostingClassifier

    from apps.risk.learning import FEATURE_NAMES
    from apps.risk.models import RiskModel

    rng = np.random.default_rng(3)
    x = rng.random((2000, len(FEATURE_NAMES))) * 10
    y = (x[:, FEATURE_NAMES.index("customer_refunds_24h")] + rng.random(2000) * 4 > 9).astype(int)
    model = GradientBoostingClassifier(n_estimators=150, max_depth=3, random_state=3).fit(x, y)
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    RiskModel.objects.create(
        version=1,
        algorithm="bench",
        feature_names=FEATURE_NAMES,
        samples=2000,
        blob=buffer.getvalue(),
        is_active=True,
    )


def _percentiles(samples: list[float]) -> dict:
    return {
        "p50": percentile(samples, 50),
        "p95": percentile(samples, 95),
        "p99": percentile(samples, 99),
        "max": max(samples),
    }


def _measure(world: World, count: int) -> tuple[dict, dict]:
    from django.utils import timezone

    from apps.risk.features import features_for
    from apps.risk.services import risk_evaluate

    requests = [world.request() for _ in range(count + 50)]
    for context in requests[:50]:  # warm-up: imports, compiled rules, model load, connection
        risk_evaluate(scope="refund", merchant=world.merchant, context=context)
    requests = requests[50:]
    feature_ms, evaluate_ms = [], []
    for context in requests:
        now = timezone.now()
        started = time.perf_counter()
        features_for(scope="refund", merchant=world.merchant, context=context, now=now)
        feature_ms.append((time.perf_counter() - started) * 1000)
    for context in requests:
        started = time.perf_counter()
        risk_evaluate(scope="refund", merchant=world.merchant, context=context)
        evaluate_ms.append((time.perf_counter() - started) * 1000)
    return _percentiles(feature_ms), _percentiles(evaluate_ms)


def _explain(world: World) -> list[tuple[str, str]]:
    """EXPLAIN every statement one decision reads with, caches cold (so the once-a-minute and
    per-process cached reads are shown too). Not common.explain_selects: the per-request counts
    are one `WITH … SELECT` statement, which it skips."""
    from django.core.cache import cache
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from apps.risk import caching
    from apps.risk.services import risk_evaluate

    cache.clear()
    caching.clear()
    context = world.request()
    with CaptureQueriesContext(connection) as captured:
        risk_evaluate(scope="refund", merchant=world.merchant, context=context, now=timezone.now())
    plans = []
    with connection.cursor() as cursor:
        for query in captured.captured_queries:
            sql = query["sql"]
            if not sql.lstrip().upper().startswith(("SELECT", "WITH")):
                continue
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
            plans.append((sql, "\n".join(row[0] for row in cursor.fetchall())))
    return plans


def main() -> None:
    args = _parse()
    sizes = [int(size) for size in args.sizes.split(",")]
    django_setup(args.db_name)
    from django.core.cache import cache
    from django.db import connection
    from django.utils import timezone

    from apps.accounts.models import Merchant
    from apps.orders.models import Product
    from apps.risk.baselines import risk_baselines_refresh

    cache.clear()
    rng = random.Random(args.seed)
    merchant = Merchant.objects.create(name="Bench merchant")
    products = [
        Product.objects.create(
            merchant=merchant, sku=f"sku-{i}", name=f"P{i}", kind="course", price=19900, currency="CNY"
        ).pk
        for i in range(PRODUCTS)
    ]
    world = World(rng, merchant, products, timezone.now())
    _train_model()
    results = []
    for size in sizes:
        started = time.perf_counter()
        add = size - world.observations
        world.add_customers(size // 5 - len(world.customers))
        world.add_history(add)
        load_s = time.perf_counter() - started
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
        vacuum_s = time.perf_counter() - started
        started = time.perf_counter()
        risk_baselines_refresh(merchant=merchant)
        baseline_s = time.perf_counter() - started
        cache.clear()
        quiet = wait_quiet(args.wait_quiet)
        load_average = os.getloadavg()[0]
        features, evaluate = _measure(world, args.requests)
        row = {
            "earlier_refunds": size,
            "customers": len(world.customers),
            "orders": world.orders,
            "load_s": round(load_s, 1),
            "vacuum_s": round(vacuum_s, 1),
            "baseline_refresh_s": round(baseline_s, 2),
            "quiet": quiet,
            "load_1m_before": round(load_average, 2),
            "features_ms": {k: round(v, 2) for k, v in features.items()},
            "evaluate_ms": {k: round(v, 2) for k, v in evaluate.items()},
        }
        results.append(row)
        print(json.dumps(row, ensure_ascii=False), flush=True)

    first, last = results[0], results[-1]
    for key in ("features_ms", "evaluate_ms"):
        ratio = last[key]["p99"] / first[key]["p99"]
        verdict = "OK" if ratio <= 1.5 and last[key]["p99"] < 10 else "MISSED"
        print(
            f"{key}: p99 {first[key]['p99']} → {last[key]['p99']} ms (×{ratio:.2f}) target ≤1.5× and <10 ms: {verdict}"
        )

    plans = _explain(world)
    text = "\n\n".join(f"-- {sql}\n{plan}" for sql, plan in plans)
    print("\n# EXPLAIN (ANALYZE, BUFFERS) of one decision's SELECTs at the last stage\n")
    print(text)
    if args.explain_out:
        Path(args.explain_out).write_text(text)


if __name__ == "__main__":
    main()
