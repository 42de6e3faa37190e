"""The only writer of ledger rows: postings, and reconciliation runs against channel statements."""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from django.conf import settings
from django.db import IntegrityError, router, transaction
from django.db.models import BigIntegerField, F, Max, Value
from django.utils import timezone
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from apps.common.errors import ConflictError, ServiceError
from apps.common.money import currency_is_supported
from apps.ledger.models import (
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    Reconciliation,
    ReconciliationItem,
    StatementLine,
)
from apps.ledger.reconciliation import (
    DIRECTIONS,
    KINDS,
    MATCHED,
    P0,
    P1,
    Finding,
    StatementEntry,
    Tolerance,
    match,
)
from apps.ledger.selectors import (
    reconciliation_current,
    reconciliation_platform_records,
    reconciliation_statement_entries,
)
from apps.ledger.signals import (
    MAX_SIGNAL_ITEMS,
    reconciliation_completed,
    reconciliation_failed,
    reconciliation_mismatch,
)
from apps.ledger.statements import (
    DEFAULT_PREFIXES,
    SOURCE_NAME,
    StatementSource,
    StatementSourceError,
    statement_source_get,
    statement_source_names,
)

logger = logging.getLogger(__name__)


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
            # Summed per account *identity*, not per id: a dead cached id may since have been reused by
            # another account of the same posting (ids restart after a flush; SQLite reuses rolled-back
            # ones), and summing by id alone would net the two lines on that one row.
            per_account: dict[tuple[int, str, str, str], int] = defaultdict(int)
            for line in lines:
                per_account[(line.account.pk, line.account.owner, line.account.kind, line.account.currency)] += (
                    line.amount
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
            for key in sorted(per_account):
                amount = per_account[key]
                account_id, owner, account_kind, currency = key
                # Matched by id *and* identity, so a dead or reused cached id touches nothing.
                rows = LedgerAccount.objects.filter(pk=account_id, owner=owner, kind=account_kind, currency=currency)
                # The amount is bound as a bigint: a bare int would be bound as an `integer` (the
                # type Django gives a literal), which wraps past 2³¹ under server-side binding.
                bump = F("balance") + Value(amount, output_field=BigIntegerField())
                updated = rows.update(balance=bump) if amount else rows.count()
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


# --- reconciliation against channel statements ---------------------------------------------------
# The matching rule is in apps/ledger/reconciliation.py, the CSV format and the source registry in
# apps/ledger/statements.py.


@dataclass(frozen=True)
class StatementImport:
    created: int
    unchanged: int


def _check_entries(entries: Sequence[StatementEntry]) -> list[str]:
    """What is wrong with entries handed in by code (a source or a caller), as messages."""
    problems = []
    for entry in entries:
        amount_ok = isinstance(entry.amount, int) and not isinstance(entry.amount, bool) and entry.amount > 0
        if not (
            isinstance(entry.line_id, str)
            and 0 < len(entry.line_id) <= 128
            and isinstance(entry.reference, str)
            and 0 < len(entry.reference) <= 200
            and len(entry.external_reference or "") <= 200
            and entry.direction in DIRECTIONS
            and amount_ok
            and entry.amount <= settings.MAX_AMOUNT_MINOR
            and currency_is_supported(entry.currency)
            and isinstance(entry.value_date, dt.date)
            and not isinstance(entry.value_date, dt.datetime)
        ):
            problems.append(f"line {entry.line_id!r}: not a valid statement line")
        if len(problems) >= 20:
            break
    return problems


def _same_line(line: StatementLine, entry: StatementEntry) -> bool:
    stored = (line.value_date, line.reference, line.external_reference, line.direction, line.amount, line.currency)
    given = (
        entry.value_date,
        entry.reference,
        entry.external_reference or "",
        entry.direction,
        entry.amount,
        entry.currency,
    )
    return stored == given


def statement_import(*, source: str, entries: Sequence[StatementEntry]) -> StatementImport:
    """Store statement lines once per (source, line_id): importing a statement again adds nothing.

    All or nothing: a line id already stored with other content is a ConflictError (a channel does
    not rewrite a line; a changed one needs a person), invalid entries a ServiceError. Runs inside
    the caller's transaction when there is one. Callers: `reconciliation_run`.
    """
    if not SOURCE_NAME.fullmatch(source or ""):
        raise ServiceError(
            _("Unknown statement source name."), fields={"source": [_("Must match [a-z0-9][a-z0-9_-]*.")]}
        )
    if problems := _check_entries(entries):
        raise ServiceError(_("The statement has invalid lines."), code="statement_invalid", fields={"lines": problems})
    with transaction.atomic():
        existing: dict[str, StatementLine] = {}
        ids = [entry.line_id for entry in entries]
        for start in range(0, len(ids), 1000):
            for line in StatementLine.objects.filter(source=source, line_id__in=ids[start : start + 1000]):
                existing[line.line_id] = line
        conflicts = [e.line_id for e in entries if e.line_id in existing and not _same_line(existing[e.line_id], e)]
        if conflicts:
            raise ConflictError(
                f"{len(conflicts)} statement line(s) of {source} were imported before with other content.",
                code="statement_line_conflict",
                fields={"line_id": conflicts[:20]},
            )
        new = [
            StatementLine(
                source=source,
                line_id=entry.line_id,
                value_date=entry.value_date,
                reference=entry.reference,
                external_reference=entry.external_reference or "",
                direction=entry.direction,
                amount=entry.amount,
                currency=entry.currency,
            )
            for entry in entries
            if entry.line_id not in existing
        ]
        # A concurrent import of the same new line raises IntegrityError here; the caller retries
        # and then compares it with what the other import stored.
        StatementLine.objects.bulk_create(new, batch_size=1000)
    return StatementImport(created=len(new), unchanged=len(entries) - len(new))


Progress = Callable[[str, int, int], None]  # (stage "fetch" | "match", done, total)


def _tolerance() -> Tolerance:
    return Tolerance(amount=settings.RECONCILIATION_AMOUNT_TOLERANCE, days=settings.RECONCILIATION_DATE_TOLERANCE_DAYS)


def _next_version(day: dt.date, source: str) -> int:
    latest = Reconciliation.objects.filter(date=day, source=source).aggregate(latest=Max("version"))["latest"]
    return (latest or 0) + 1


def _dedupe_key(run: Reconciliation) -> str:
    return f"reconciliation:{run.source}:{run.date.isoformat()}"


def _counts(run: Reconciliation) -> dict[str, int]:
    return {kind: getattr(run, f"{kind}_count") for kind in KINDS}


def _announce(run: Reconciliation, findings: Sequence[Finding]) -> None:
    payload = {
        "reconciliation_id": run.pk,
        "date": run.date.isoformat(),
        "source": run.source,
        "version": run.version,
        "status": run.status,
        "severity": run.severity,
        "counts": _counts(run),
        "totals": run.totals,
        "dedupe_key": _dedupe_key(run),
    }
    mismatches = sorted(
        (finding for finding in findings if finding.kind != MATCHED),
        key=lambda finding: (finding.severity != P0, finding.reference, finding.direction),
    )

    def send() -> None:
        reconciliation_completed.send(sender=Reconciliation, **payload)
        if mismatches:
            reconciliation_mismatch.send(
                sender=Reconciliation,
                **payload,
                mismatches=[
                    {
                        "kind": finding.kind,
                        "severity": finding.severity,
                        "reference": finding.reference,
                        "direction": finding.direction,
                        "currency": finding.currency,
                        "statement_amount": finding.statement_amount,
                        "platform_amount": finding.platform_amount,
                        "detail": finding.detail,
                    }
                    for finding in mismatches[:MAX_SIGNAL_ITEMS]
                ],
                mismatches_total=len(mismatches),
            )

    transaction.on_commit(send, robust=True)


def _record_failure(*, day: dt.date, source: str, error: str, actor: str, started_at: dt.datetime) -> Reconciliation:
    tolerance = _tolerance()
    for attempt in range(3):
        try:
            with transaction.atomic():
                run = Reconciliation.objects.create(
                    date=day,
                    source=source,
                    version=_next_version(day, source),
                    is_current=False,
                    status=Reconciliation.Status.FAILED,
                    severity=P1,
                    amount_tolerance=tolerance.amount,
                    date_tolerance_days=tolerance.days,
                    error=error[:500],
                    actor=actor[:150],
                    started_at=started_at,
                    finished_at=timezone.now(),
                )
                payload = {
                    "reconciliation_id": run.pk,
                    "date": day.isoformat(),
                    "source": source,
                    "version": run.version,
                    "severity": P1,
                    "error": run.error,
                    "dedupe_key": _dedupe_key(run),
                }
                transaction.on_commit(
                    partial(reconciliation_failed.send, sender=Reconciliation, **payload), robust=True
                )
                return run
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _fetch(source: StatementSource, day: dt.date, tolerance: Tolerance, progress: Progress | None):
    first, last = tolerance.window(day)
    days = [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]
    entries: list[StatementEntry] = []
    for done, fetch_day in enumerate(days, start=1):
        try:
            fetched = list(source.fetch(fetch_day))
        except StatementSourceError:
            raise
        except Exception as exc:  # a source's bug or bad answer: the run fails, visibly
            raise StatementSourceError(f"{source.name} statement for {fetch_day}: {type(exc).__name__}") from exc
        if problems := _check_entries(fetched):
            raise StatementSourceError(f"{source.name} statement for {fetch_day}: {problems[0]}")
        entries.extend(fetched)
        if progress is not None:
            progress("fetch", done, len(days))
    return entries


def reconciliation_run(
    *,
    date: dt.date,
    source: str,
    lines: Sequence[StatementEntry] | None = None,
    actor: str = "system",
    replace: bool = True,
    progress: Progress | None = None,
) -> Reconciliation:
    """Reconcile `source`'s statement of `date` against the ledger (rule: reconciliation.py).

    Statement lines are `lines` when given (an uploaded CSV) or pulled from the registered source
    for each day of `date ± RECONCILIATION_DATE_TOLERANCE_DAYS` (network, before any transaction);
    either way they are stored (`statement_import`) and the run reads every stored line of the
    source in that window. Import, matching and the result (a new `Reconciliation` version, made
    current, and its items) are written in one transaction, locking the current result of
    (date, source) so concurrent runs queue. `replace=False` (the beat) keeps an existing current
    result and returns it: one effective run per day even if the task runs twice. Signals go out
    after commit (apps/ledger/signals.py). A source that cannot be read leaves a `failed` run, sends
    `reconciliation_failed` and raises StatementSourceError (the task retries). Bad input raises
    ServiceError and writes nothing. Callers: the daily task, `manage.py reconcile`, the API.
    """
    started_at = timezone.now()
    if not SOURCE_NAME.fullmatch(source or ""):
        raise ServiceError(_("Unknown statement source."), fields={"source": [_("Must match [a-z0-9][a-z0-9_-]*.")]})
    if date > started_at.astimezone(dt.UTC).date():
        raise ServiceError(_("Cannot reconcile a day that has not begun."), fields={"date": [_("Is in the future.")]})
    registered = statement_source_get(source)
    if lines is None and registered is None:
        raise ServiceError(
            format_lazy(
                _("No statement source {value} is registered; upload the statement instead."), value=repr(source)
            ),
            code="unknown_source",
            fields={
                "source": [
                    format_lazy(_("Registered sources: {value}."), value=", ".join(statement_source_names()) or "none")
                ]
            },
        )
    if not replace and (current := reconciliation_current(day=date, source=source)) is not None:
        return current
    tolerance = _tolerance()
    if lines is None:
        try:
            entries = _fetch(registered, date, tolerance, progress)
        except StatementSourceError as exc:
            logger.warning("reconciliation %s %s: statement unavailable: %s", source, date, exc)
            _record_failure(day=date, source=source, error=str(exc), actor=actor, started_at=started_at)
            raise
    else:
        entries = list(lines)
    prefixes = registered.prefixes if registered is not None else DEFAULT_PREFIXES
    for attempt in range(3):
        try:
            return _reconcile(
                day=date,
                source=source,
                entries=entries,
                prefixes=prefixes,
                tolerance=tolerance,
                actor=actor,
                replace=replace,
                started_at=started_at,
                progress=progress,
            )
        except IntegrityError:
            # A concurrent run or import of the same (date, source) committed first: go again,
            # now queueing behind its current row.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _reconcile(
    *,
    day: dt.date,
    source: str,
    entries: Sequence[StatementEntry],
    prefixes: Sequence[str],
    tolerance: Tolerance,
    actor: str,
    replace: bool,
    started_at: dt.datetime,
    progress: Progress | None,
) -> Reconciliation:
    with transaction.atomic():
        statement_import(source=source, entries=entries)
        current = Reconciliation.objects.select_for_update().filter(date=day, source=source, is_current=True).first()
        if current is not None and not replace:
            return current
        first, last = tolerance.window(day)
        outcome = match(
            day=day,
            lines=reconciliation_statement_entries(source=source, first=first, last=last),
            records=reconciliation_platform_records(first=first, last=last, prefixes=prefixes),
            tolerance=tolerance,
            progress=(lambda done, total: progress("match", done, total)) if progress else None,
        )
        if current is not None:
            current.is_current = False
            current.save(update_fields=["is_current"])
        run = Reconciliation.objects.create(
            date=day,
            source=source,
            version=_next_version(day, source),
            is_current=True,
            status=Reconciliation.Status.CLEAN if outcome.is_clean else Reconciliation.Status.MISMATCHED,
            severity=outcome.severity,
            amount_tolerance=tolerance.amount,
            date_tolerance_days=tolerance.days,
            statement_lines=outcome.statement_lines,
            platform_records=outcome.platform_records,
            totals=outcome.totals,
            actor=actor[:150],
            started_at=started_at,
            finished_at=timezone.now(),
            **{f"{kind}_count": outcome.count(kind) for kind in KINDS},
        )
        ReconciliationItem.objects.bulk_create(
            (
                ReconciliationItem(
                    reconciliation=run,
                    kind=finding.kind,
                    severity=finding.severity,
                    reference=finding.reference,
                    direction=finding.direction,
                    currency=finding.currency[:16],
                    statement_amount=finding.statement_amount,
                    platform_amount=finding.platform_amount,
                    statement_date=finding.statement_date,
                    platform_date=finding.platform_date,
                    line_ids=list(finding.line_ids),
                    ledger_references=list(finding.ledger_references),
                    detail=finding.detail[:500],
                )
                for finding in outcome.findings
            ),
            batch_size=1000,
        )
        _announce(run, outcome.findings)
    logger.info("reconciliation %s %s v%s: %s %s %s", source, day, run.version, run.status, run.severity, _counts(run))
    return run
