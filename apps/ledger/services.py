"""The only writer of ledger rows."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import IntegrityError, router, transaction
from django.db.models import F, Q

from apps.ledger.models import LedgerAccount, LedgerEntry, LedgerTransaction


class UnbalancedTransactionError(ValueError):
    """The entries of a transaction do not sum to zero in every currency."""


class LedgerReferenceConflictError(ValueError):
    """A transaction with this reference exists with different entries."""


@dataclass(frozen=True)
class Line:
    account: LedgerAccount
    amount: int  # debit positive, credit negative, minor units


# (owner, kind, currency) → primary key, per process. Accounts are never deleted (entries PROTECT them
# and are append-only), so a committed id stays right; an id is cached only once the row it came from
# is known committed (on_commit), never from a transaction that may still roll back. A database that
# was flushed or recreated under a running process (tests do this) can still leave a dead id here:
# `ledger_post` notices by primary key when a balance row is missing, evicts it and resolves again.
_ACCOUNT_IDS: dict[tuple[str, str, str], int] = {}


def _account_stub(pk: int, owner: str, kind: str, currency: str) -> LedgerAccount:
    # Only the identifying fields are set; `balance` is deferred, so reading it goes to the database
    # rather than answering from a value cached in this process.
    return LedgerAccount.from_db(
        router.db_for_read(LedgerAccount), ["id", "owner", "kind", "currency"], [pk, owner, kind, currency]
    )


def ledger_account_get_or_create(*, owner: str, kind: str, currency: str) -> LedgerAccount:
    """The account for (owner, kind, currency), created on first use.

    Served from a per-process id cache after the first committed lookup (no query); the returned
    instance carries identity only, and its `balance` is loaded from the database when read.
    """
    if kind not in LedgerAccount.Kind.values:
        raise ValueError(f"unknown ledger account kind {kind!r}")
    key = (owner, kind, currency)
    pk = _ACCOUNT_IDS.get(key)
    if pk is not None:
        return _account_stub(pk, owner, kind, currency)
    try:
        with transaction.atomic():
            account, _ = LedgerAccount.objects.get_or_create(owner=owner, kind=kind, currency=currency)
    except IntegrityError:
        account = LedgerAccount.objects.get(owner=owner, kind=kind, currency=currency)
    transaction.on_commit(lambda: _ACCOUNT_IDS.__setitem__(key, account.pk))
    return account


class _MissingAccountError(Exception):
    """A line names an account id with no row (a dead cached id); the posting is redone."""

    def __init__(self, account_ids: set[int]) -> None:
        super().__init__(account_ids)
        self.account_ids = account_ids


def ledger_account_cache_clear(**kwargs) -> None:
    """Forget every cached account id (connected to post_migrate, which also follows a flush)."""
    _ACCOUNT_IDS.clear()


def _forget(account_ids: set[int]) -> None:
    for key, pk in list(_ACCOUNT_IDS.items()):
        if pk in account_ids:
            del _ACCOUNT_IDS[key]


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
    # Compared by account identity, not id, so a line built from a dead cached id still matches.
    stored = sorted(existing.entries.values_list("account__owner", "account__kind", "account__currency", "amount"))
    asked = sorted((line.account.owner, line.account.kind, line.account.currency, line.amount) for line in lines)
    return stored == asked


def ledger_post(*, reference: str, kind: str, lines: Sequence[Line], description: str = "") -> LedgerTransaction:
    """Post one balanced transaction, once per `reference`.

    Refuses (writing nothing) unless the entries sum to zero per currency. Posting the same
    reference again with the same entries returns the stored transaction; with different entries
    it raises. Account balances are bumped in account-id order so concurrent postings never
    deadlock. Runs inside the caller's transaction when there is one.
    """
    _validate(lines)
    try:
        return _insert_or_match(reference=reference, kind=kind, lines=lines, description=description)
    except _MissingAccountError as exc:
        # Only reachable through a dead cached id: the savepoint rolled everything back. Resolve the
        # accounts afresh (by their identity, not the dead id) and post once more.
        _forget(exc.account_ids)
        lines = [
            Line(
                ledger_account_get_or_create(
                    owner=line.account.owner, kind=line.account.kind, currency=line.account.currency
                ),
                line.amount,
            )
            for line in lines
        ]
        return _insert_or_match(reference=reference, kind=kind, lines=lines, description=description)


def _insert_or_match(*, reference: str, kind: str, lines: Sequence[Line], description: str) -> LedgerTransaction:
    # No existence check first: the unique reference and the savepoint already make a repeat
    # harmless, and a first posting (the usual case) saves a query. A repeat pays a rolled-back
    # savepoint instead, then is compared with what is stored.
    try:
        with transaction.atomic():
            txn = LedgerTransaction.objects.create(reference=reference, kind=kind, description=description)
            LedgerEntry.objects.bulk_create(
                LedgerEntry(transaction=txn, account=line.account, amount=line.amount, currency=line.account.currency)
                for line in lines
            )
            per_account: dict[int, int] = defaultdict(int)
            identity: dict[int, Q] = {}
            for line in lines:
                per_account[line.account.pk] += line.amount
                identity[line.account.pk] = Q(
                    pk=line.account.pk, owner=line.account.owner, kind=line.account.kind, currency=line.account.currency
                )
            missing: set[int] = set()
            # Cached balances stay on every account, the hot platform-wide ones (cash_clearing,
            # refunds_in_flight: every settle bumps both) included, in the posting's own transaction.
            # Dropping the cache there and summing entries on read would free these writes of
            # contention, but make every read O(entries), give "balance" two meanings and leave the
            # reconciliation check nothing to check. The price kept is a row lock per touched
            # account from here to COMMIT: the id order below makes concurrent postings queue, not
            # deadlock, and a refund's settle posting is the last write of its transaction, so the
            # lock is held for these UPDATEs and the commit only (well under a millisecond each;
            # at ~200 settles/s on 2 cores it was not what limited the poller).
            for account_id in sorted(per_account):
                amount = per_account[account_id]
                # Matched by id *and* identity, so a dead or reused cached id touches nothing.
                rows = LedgerAccount.objects.filter(identity[account_id])
                updated = rows.update(balance=F("balance") + amount) if amount else rows.count()
                if not updated:
                    missing.add(account_id)
            if missing:
                raise _MissingAccountError(missing)
    except IntegrityError:
        existing = LedgerTransaction.objects.get(reference=reference)
        if not _same_entries(existing, lines):
            raise LedgerReferenceConflictError(reference) from None
        return existing
    return txn
