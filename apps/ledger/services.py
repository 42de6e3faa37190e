"""The only writer of ledger rows."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import F

from apps.ledger.models import LedgerAccount, LedgerEntry, LedgerTransaction


class UnbalancedTransactionError(ValueError):
    """The entries of a transaction do not sum to zero in every currency."""


class LedgerReferenceConflictError(ValueError):
    """A transaction with this reference exists with different entries."""


@dataclass(frozen=True)
class Line:
    account: LedgerAccount
    amount: int  # debit positive, credit negative, minor units


def ledger_account_get_or_create(*, owner: str, kind: str, currency: str) -> LedgerAccount:
    if kind not in LedgerAccount.Kind.values:
        raise ValueError(f"unknown ledger account kind {kind!r}")
    try:
        with transaction.atomic():
            account, _ = LedgerAccount.objects.get_or_create(owner=owner, kind=kind, currency=currency)
    except IntegrityError:
        account = LedgerAccount.objects.get(owner=owner, kind=kind, currency=currency)
    return account


def _validate(lines: Sequence[Line]) -> None:
    if len(lines) < 2:
        raise UnbalancedTransactionError("a transaction needs at least two entries")
    sums: dict[str, int] = defaultdict(int)
    for line in lines:
        if isinstance(line.amount, bool) or not isinstance(line.amount, int):
            raise TypeError("ledger amounts are int minor units")
        if line.amount == 0:
            raise UnbalancedTransactionError("zero entries are not allowed")
        sums[line.account.currency] += line.amount
    unbalanced = {currency: total for currency, total in sums.items() if total != 0}
    if unbalanced:
        raise UnbalancedTransactionError(f"entries do not sum to zero: {unbalanced}")


def _same_entries(existing: LedgerTransaction, lines: Sequence[Line]) -> bool:
    stored = sorted(existing.entries.values_list("account_id", "amount"))
    return stored == sorted((line.account.pk, line.amount) for line in lines)


def ledger_post(*, reference: str, kind: str, lines: Sequence[Line], description: str = "") -> LedgerTransaction:
    """Post one balanced transaction, once per `reference`.

    Refuses (writing nothing) unless the entries sum to zero per currency. Posting the same
    reference again with the same entries returns the stored transaction; with different entries
    it raises. Account balances are bumped in account-id order so concurrent postings never
    deadlock. Runs inside the caller's transaction when there is one.
    """
    _validate(lines)
    existing = LedgerTransaction.objects.filter(reference=reference).first()
    if existing is not None:
        if not _same_entries(existing, lines):
            raise LedgerReferenceConflictError(reference)
        return existing
    try:
        with transaction.atomic():
            txn = LedgerTransaction.objects.create(reference=reference, kind=kind, description=description)
            LedgerEntry.objects.bulk_create(
                LedgerEntry(transaction=txn, account=line.account, amount=line.amount, currency=line.account.currency)
                for line in lines
            )
            per_account: dict[int, int] = defaultdict(int)
            for line in lines:
                per_account[line.account.pk] += line.amount
            for account_id in sorted(per_account):
                if per_account[account_id]:
                    LedgerAccount.objects.filter(pk=account_id).update(balance=F("balance") + per_account[account_id])
    except IntegrityError:
        existing = LedgerTransaction.objects.get(reference=reference)
        if not _same_entries(existing, lines):
            raise LedgerReferenceConflictError(reference) from None
        return existing
    return txn
