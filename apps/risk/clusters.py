"""Gang detection: customers linked by a shared device, IP or bank account form a cluster.

A persisted union-find (ClusterMember.root_id). When a request is observed, the customer is
unioned with every customer of the same merchant seen on the same device, IP or account in the
last `LINK_WINDOW` (index-backed lookups on observations and orders). Unions re-point the smaller
cluster at the larger root, so finding a cluster is one indexed read.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import Count

from apps.accounts.models import Merchant
from apps.orders.models import Order
from apps.risk.models import ClusterMember, Observation, Scope

LINK_WINDOW = timedelta(days=30)
# A cluster's refund rate is computed over at most this many members (bounded cost per decision).
MAX_MEMBERS_SCANNED = 200


def _root_of(customer_id: int) -> int:
    member = ClusterMember.objects.filter(customer_id=customer_id).only("root_id").first()
    return member.root_id if member else customer_id


# Who shares the device, IP or account, in one statement: index-backed lookups (observations by
# merchant + scope + device/IP/account + time, orders by device/IP, bank accounts by merchant +
# fingerprint), each capped, joined by UNION (which also drops repeats). Written out because
# building and compiling the querysets cost several times what PostgreSQL spends answering them.
# Each observation lookup names the scopes and one attribute so that it is a range of that
# attribute's (merchant, scope, attribute, created_at) index; an OR of the three attributes was a
# scan of every observation of the merchant in the window.
_OBSERVED_SQL = """
    SELECT customer_id FROM risk_observation
    WHERE merchant_id = %(merchant)s AND scope IN ({scopes}) AND {column} = %({param})s
      AND created_at >= %(since)s AND customer_id IS NOT NULL"""
_LINKED_SQL = """
SELECT customer_id FROM (
    SELECT DISTINCT customer_id FROM ({device} UNION ALL {ip} UNION ALL {account}) AS seen LIMIT %(cap)s
) AS observed
UNION
SELECT customer_id FROM (
    SELECT DISTINCT customer_id FROM orders_order
    WHERE merchant_id = %(merchant)s AND paid_at >= %(since)s AND (device_id = %(device)s OR ip = %(ip)s)
    LIMIT %(cap)s
) AS ordered
UNION
SELECT customer_id FROM (
    SELECT customer_id FROM accounts_bankaccount
    WHERE merchant_id = %(merchant)s AND fingerprint = %(account)s AND customer_id IS NOT NULL
    LIMIT %(cap)s
) AS paid_from
""".format(  # noqa: S608 - only constant column names and the scope codes are formatted in
    **{
        part: _OBSERVED_SQL.format(scopes=", ".join(f"'{scope}'" for scope in Scope.values), column=column, param=part)
        for part, column in (("device", "device_id"), ("ip", "ip"), ("account", "account_fingerprint"))
    }
)


def linked_customers(
    *, merchant: Merchant, customer_id: int, device_id: str, ip: str | None, fingerprint: str, now: datetime
) -> set[int]:
    """Customers sharing this request's device, IP or account within the link window."""
    if not (device_id or ip or fingerprint):
        return set()
    params = {
        "merchant": merchant.pk,
        "since": connection.ops.adapt_datetimefield_value(now - LINK_WINDOW),
        # An absent attribute is NULL: `col = NULL` matches nothing, so its part costs nothing.
        "device": device_id or None,
        "ip": ip or None,
        "account": fingerprint or None,
        "cap": MAX_MEMBERS_SCANNED,
    }
    with connection.cursor() as cursor:
        cursor.execute(_LINKED_SQL, params)
        found = {row[0] for row in cursor.fetchall()}
    found.discard(customer_id)
    return found


def cluster_union(*, merchant: Merchant, customer_id: int, others: set[int]) -> int:
    """Merge the customer's cluster with the clusters of `others`; returns the resulting root.

    Writes only what changes: when everyone already shares one root (the common case for a
    repeat customer) it is a single read. Otherwise the smaller clusters are re-pointed at the
    largest root with one UPDATE and missing members are inserted — never a write per member,
    which would serialise every request of a big cluster on row locks.
    """
    ids = {customer_id, *others}
    known = dict(ClusterMember.objects.filter(customer_id__in=ids).values_list("customer_id", "root_id"))
    roots = {known.get(member, member) for member in ids}
    if len(roots) == 1 and len(known) == len(ids):
        return roots.pop()
    with transaction.atomic():
        sizes = dict(
            ClusterMember.objects.filter(root_id__in=roots)
            .values("root_id")
            .annotate(n=Count("id"))
            .values_list("root_id", "n")
        )
        winner = max(roots, key=lambda root: (sizes.get(root, 1), -root))
        losers = roots - {winner}
        if losers:
            ClusterMember.objects.filter(root_id__in=losers).update(root_id=winner)
        # Everyone named here, and every former root (a root is a member of its own cluster).
        missing = (
            (ids | roots)
            - set(known)
            - set(
                ClusterMember.objects.filter(customer_id__in=(ids | roots) - set(known)).values_list(
                    "customer_id", flat=True
                )
            )
        )
        ClusterMember.objects.bulk_create(
            [ClusterMember(customer_id=member, root_id=winner, merchant=merchant) for member in missing],
            ignore_conflicts=True,
        )
    return winner


def cluster_members(*, customer_id: int) -> list[int]:
    root = _root_of(customer_id)
    members = list(
        ClusterMember.objects.filter(root_id=root).values_list("customer_id", flat=True)[:MAX_MEMBERS_SCANNED]
    )
    return members or [customer_id]


def cluster_stats(*, customer_id: int, now: datetime, merchant_id: int | None = None) -> tuple[int, float]:
    """(cluster size, refunds ÷ orders of the cluster over the link window).

    features_for computes the same numbers inside its one combined statement (apps.risk.features);
    keep the two in step. Pass `merchant_id` when known: the refund count must name the merchant to use the
    (merchant, scope, customer_id, created_at) index; without it a 1 M-row table is scanned.
    """
    root = ClusterMember.objects.filter(customer_id=customer_id).values_list("root_id", flat=True).first()
    if root is None:
        # Never linked: a cluster of one, from this one read. (Every root has a row of its own —
        # cluster_union writes one for each customer and root it merges — so no rows point here.)
        return 1, 0.0
    size = ClusterMember.objects.filter(root_id=root).count() or 1
    if size <= 1:
        return 1, 0.0
    members = list(
        ClusterMember.objects.filter(root_id=root).values_list("customer_id", flat=True)[:MAX_MEMBERS_SCANNED]
    )
    since = now - LINK_WINDOW
    orders = Order.objects.filter(customer_id__in=members, paid_at__gte=since).count()
    if merchant_id is None:
        merchant_id = ClusterMember.objects.filter(root_id=root).values_list("merchant_id", flat=True).first()
    refunds = Observation.objects.filter(
        merchant_id=merchant_id, scope="refund", customer_id__in=members, created_at__gte=since
    ).count()
    return size, (refunds / orders) if orders else 0.0
