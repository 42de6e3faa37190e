from __future__ import annotations

from django.db.models import Sum

from apps.ledger.models import LedgerAccount, LedgerEntry


def ledger_balance_from_entries(*, account: LedgerAccount) -> int:
    """The balance recomputed from entries (reconciliation of the cached `balance` column)."""
    return LedgerEntry.objects.filter(account=account).aggregate(total=Sum("amount"))["total"] or 0


def ledger_balance_get(*, owner: str, kind: str, currency: str) -> int:
    account = LedgerAccount.objects.filter(owner=owner, kind=kind, currency=currency).first()
    return account.balance if account else 0


def ledger_unbalanced_transactions():
    """Transactions whose entries do not sum to zero in some currency (should always be empty)."""
    return LedgerEntry.objects.values("transaction_id", "currency").annotate(total=Sum("amount")).exclude(total=0)
