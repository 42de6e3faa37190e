"""Helpers shared by test modules of several apps."""

from apps.accounts.models import BankAccount, Customer
from apps.ledger.models import LedgerAccount, LedgerEntry, LedgerTransaction
from apps.orders.models import Order, Product, RefundPolicy, UsageEvent

# Every table a foundation endpoint (customers, products, orders, usage) can write.
FOUNDATION_TABLES = (
    Customer,
    Product,
    RefundPolicy,
    Order,
    UsageEvent,
    BankAccount,
    LedgerAccount,
    LedgerTransaction,
    LedgerEntry,
)


def count_rows(models) -> dict[str, int]:
    """Rows per table, to prove a refused request wrote nothing."""
    return {model.__name__: model.objects.count() for model in models}
