from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, date, datetime, time, timedelta

from django.db.models import Q, Sum

from apps.ledger.models import LedgerAccount, LedgerEntry, Reconciliation, StatementLine
from apps.ledger.reconciliation import IN, OUT, PlatformRecord, StatementEntry, owner_reference


def ledger_balance_from_entries(*, account: LedgerAccount) -> int:
    """The balance recomputed from entries (reconciliation of the cached `balance` column)."""
    return LedgerEntry.objects.filter(account=account).aggregate(total=Sum("amount"))["total"] or 0


def ledger_balance_get(*, owner: str, kind: str, currency: str) -> int:
    account = LedgerAccount.objects.filter(owner=owner, kind=kind, currency=currency).first()
    return account.balance if account else 0


def ledger_unbalanced_transactions():
    """Transactions whose entries do not sum to zero in some currency (should always be empty)."""
    return LedgerEntry.objects.values("transaction_id", "currency").annotate(total=Sum("amount")).exclude(total=0)


# --- reconciliation ---------------------------------------------------------------------------------


def reconciliation_platform_records(
    *,
    first: date,
    last: date,
    prefixes: Collection[str],
    account_kind: str = LedgerAccount.Kind.CASH_CLEARING,
) -> list[PlatformRecord]:
    """The platform's cash movements at channels posted on UTC dates `first`..`last` (inclusive).

    A record is one transaction (per currency) with entries on an `account_kind` account, whatever
    its owner, whose reference starts with one of `prefixes` + ":" — "refund:42:settle",
    "payout:7:paid". Other cash movements (order captures, "order:5:capture") come from the
    acquirer, not from a payout channel's statement, and are left out by their prefix. The net
    cash entry's sign gives the direction: negative (cash credited) is money out, positive money in.
    """
    if not prefixes:
        return []
    start = datetime.combine(first, time.min, tzinfo=UTC)
    end = datetime.combine(last + timedelta(days=1), time.min, tzinfo=UTC)
    by_prefix = Q()
    for prefix in prefixes:
        by_prefix |= Q(transaction__reference__startswith=f"{prefix}:")
    rows = (
        LedgerEntry.objects.filter(
            by_prefix,
            account__kind=account_kind,
            transaction__created_at__gte=start,
            transaction__created_at__lt=end,
        )
        .values("transaction__reference", "transaction__created_at", "currency")
        .annotate(total=Sum("amount"))
        .order_by("transaction__reference", "currency")
    )
    records = []
    for row in rows:
        total = row["total"]
        if not total:
            continue
        reference = row["transaction__reference"]
        records.append(
            PlatformRecord(
                ledger_reference=reference,
                date=row["transaction__created_at"].astimezone(UTC).date(),
                reference=owner_reference(reference),
                direction=OUT if total < 0 else IN,
                amount=abs(total),
                currency=row["currency"],
            )
        )
    return records


def reconciliation_statement_entries(*, source: str, first: date, last: date) -> list[StatementEntry]:
    """The stored statement lines of `source` with value dates `first`..`last` (inclusive)."""
    return [
        StatementEntry(
            line_id=line.line_id,
            value_date=line.value_date,
            reference=line.reference,
            direction=line.direction,
            amount=line.amount,
            currency=line.currency,
            external_reference=line.external_reference,
        )
        for line in StatementLine.objects.filter(source=source, value_date__gte=first, value_date__lte=last)
    ]


def reconciliation_list(*, day: date | None = None, source: str | None = None, status: str | None = None):
    """Runs, newest date first, then source, newest version first."""
    queryset = Reconciliation.objects.all()
    if day is not None:
        queryset = queryset.filter(date=day)
    if source is not None:
        queryset = queryset.filter(source=source)
    if status is not None:
        queryset = queryset.filter(status=status)
    return queryset.order_by("-date", "source", "-version")


def reconciliation_current(*, day: date, source: str) -> Reconciliation | None:
    return Reconciliation.objects.filter(date=day, source=source, is_current=True).first()
