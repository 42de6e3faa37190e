from __future__ import annotations

from django.db import connection

from apps.accounts.models import BankAccount, Customer, Merchant
from apps.common.rows import Columns
from apps.orders.models import Order, Product, RefundPolicy, UsageEvent


def product_list_for_merchant(*, merchant: Merchant):
    return Product.objects.filter(merchant=merchant).select_related("refund_policy").order_by("-id")


def order_list_for_merchant(*, merchant: Merchant):
    return (
        Order.objects.filter(merchant=merchant)
        .select_related("customer", "product", "referrer", "payer_account")
        .order_by("-id")
    )


_ORDER, _CUSTOMER, _PRODUCT, _POLICY, _PAYER = (
    Columns(Order, "o"),
    Columns(Customer, "c"),
    Columns(Product, "p"),
    Columns(RefundPolicy, "rp"),
    Columns(BankAccount, "b"),
)
_ORDER_FOR_REFUND_SQL = f"""
SELECT {_ORDER.sql}, {_CUSTOMER.sql}, {_PRODUCT.sql}, {_POLICY.sql}, {_PAYER.sql}
FROM {Order._meta.db_table} o
JOIN {Customer._meta.db_table} c ON c.id = o.customer_id
JOIN {Product._meta.db_table} p ON p.id = o.product_id
LEFT JOIN {RefundPolicy._meta.db_table} rp ON rp.product_id = p.id
LEFT JOIN {BankAccount._meta.db_table} b ON b.id = o.payer_account_id
WHERE o.merchant_id = %s AND o.external_id = %s
"""  # noqa: S608 - only the models' own table and column names are formatted in


def order_for_refund(*, merchant: Merchant, external_id: str) -> Order | None:
    """The merchant's order `external_id` with its customer, product, refund policy and payer
    account loaded (as `select_related` would), or None. Every refund request reads it: one
    hand-written statement (apps.common.rows) instead of a five-table queryset."""
    with connection.cursor() as cursor:
        cursor.execute(_ORDER_FOR_REFUND_SQL, [merchant.pk, external_id])
        row = cursor.fetchone()
    if row is None:
        return None
    order = _ORDER.build(row)
    offset = _ORDER.count
    order.merchant = merchant
    order.customer = _CUSTOMER.build(row, offset)
    offset += _CUSTOMER.count
    order.product = product = _PRODUCT.build(row, offset)
    offset += _PRODUCT.count
    policy = _POLICY.build(row, offset)
    if policy is not None:
        product.refund_policy = policy
    else:
        product._state.fields_cache["refund_policy"] = None  # as select_related leaves a missing one
    order.payer_account = _PAYER.build(row, offset + _POLICY.count)
    return order


def usage_list_for_order(*, order: Order):
    return UsageEvent.objects.filter(order=order).order_by("occurred_at", "id")


_USAGE_SUMMARY_SQL = f"SELECT kind, MAX(value) FROM {UsageEvent._meta.db_table} WHERE order_id = %s GROUP BY kind"  # noqa: S608


def usage_summary(*, order: Order) -> dict:
    """What the order's usage evidence says, for decisions and the progress page."""
    # One statement: the kinds seen, each with its highest value (progress is the only valued kind);
    # written out, as every refund decision in the conditional window asks it.
    with connection.cursor() as cursor:
        cursor.execute(_USAGE_SUMMARY_SQL, [order.pk])
        highest = dict(cursor.fetchall())
    kinds = set(highest)
    return {
        "max_progress_pct": highest.get(UsageEvent.Kind.PROGRESS) or 0,
        "key_revealed": UsageEvent.Kind.KEY_REVEALED in kinds,
        "key_activated": UsageEvent.Kind.KEY_ACTIVATED in kinds,
        "downloaded": UsageEvent.Kind.DOWNLOAD in kinds,
    }
