"""Gang detection: customers linked by a shared device, IP or bank account form a cluster.

A persisted union-find (ClusterMember.root_id). When a request is observed, the customer is
unioned with every customer of the same merchant seen on the same device, IP or account in the
last `LINK_WINDOW` (index-backed lookups on observations and orders). Unions re-point the smaller
cluster at the larger root, so finding a cluster is one indexed read.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q

from apps.accounts.models import BankAccount, Merchant
from apps.orders.models import Order
from apps.risk.models import ClusterMember, Observation

LINK_WINDOW = timedelta(days=30)
# A cluster's refund rate is computed over at most this many members (bounded cost per decision).
MAX_MEMBERS_SCANNED = 200


def _root_of(customer_id: int) -> int:
    member = ClusterMember.objects.filter(customer_id=customer_id).only("root_id").first()
    return member.root_id if member else customer_id


def linked_customers(
    *, merchant: Merchant, customer_id: int, device_id: str, ip: str | None, fingerprint: str, now: datetime
) -> set[int]:
    """Customers sharing this request's device, IP or account within the link window."""
    since = now - LINK_WINDOW
    shared = Q()
    order_shared = Q()
    if device_id:
        shared |= Q(device_id=device_id)
        order_shared |= Q(device_id=device_id)
    if ip:
        shared |= Q(ip=ip)
        order_shared |= Q(ip=ip)
    if fingerprint:
        shared |= Q(account_fingerprint=fingerprint)
    found: set[int] = set()
    if shared:
        found |= set(
            Observation.objects.filter(shared, merchant=merchant, created_at__gte=since)
            .exclude(customer_id=None)
            .values_list("customer_id", flat=True)
            .distinct()[:MAX_MEMBERS_SCANNED]
        )
    if order_shared:
        found |= set(
            Order.objects.filter(order_shared, merchant=merchant, paid_at__gte=since)
            .values_list("customer_id", flat=True)
            .distinct()[:MAX_MEMBERS_SCANNED]
        )
    if fingerprint:
        found |= set(
            BankAccount.objects.filter(merchant=merchant, fingerprint=fingerprint)
            .exclude(customer_id=None)
            .values_list("customer_id", flat=True)[:MAX_MEMBERS_SCANNED]
        )
    found.discard(customer_id)
    return found


def cluster_union(*, merchant: Merchant, customer_id: int, others: set[int]) -> int:
    """Merge the customer's cluster with the clusters of `others`; returns the resulting root."""
    with transaction.atomic():
        roots = {_root_of(customer_id)} | {_root_of(other) for other in others}
        sizes = {root: ClusterMember.objects.filter(root_id=root).count() or 1 for root in roots}
        winner = max(roots, key=lambda root: (sizes[root], -root))
        for customer in {customer_id, *others, *roots}:
            ClusterMember.objects.update_or_create(
                customer_id=customer, defaults={"root_id": winner, "merchant": merchant}
            )
        losers = roots - {winner}
        if losers:
            ClusterMember.objects.filter(root_id__in=losers).update(root_id=winner)
    return winner


def cluster_members(*, customer_id: int) -> list[int]:
    root = _root_of(customer_id)
    members = list(
        ClusterMember.objects.filter(root_id=root).values_list("customer_id", flat=True)[:MAX_MEMBERS_SCANNED]
    )
    return members or [customer_id]


def cluster_stats(*, customer_id: int, now: datetime, merchant_id: int | None = None) -> tuple[int, float]:
    """(cluster size, refunds ÷ orders of the cluster over the link window).

    Pass `merchant_id` when known: the refund count must name the merchant to use the
    (merchant, scope, customer_id, created_at) index; without it a 1 M-row table is scanned.
    """
    root = _root_of(customer_id)
    size = ClusterMember.objects.filter(root_id=root).count() or 1
    if size <= 1:
        return 1, 0.0
    members = cluster_members(customer_id=customer_id)
    since = now - LINK_WINDOW
    orders = Order.objects.filter(customer_id__in=members, paid_at__gte=since).count()
    if merchant_id is None:
        merchant_id = ClusterMember.objects.filter(root_id=root).values_list("merchant_id", flat=True).first()
    refunds = Observation.objects.filter(
        merchant_id=merchant_id, scope="refund", customer_id__in=members, created_at__gte=since
    ).count()
    return size, (refunds / orders) if orders else 0.0
