"""Matching a channel statement against the platform's own records. Pure: no database, no I/O.

What is compared
- Statement lines: what the channel says moved on the platform's account there (`StatementEntry`).
- Platform records: what our ledger says moved there (`PlatformRecord`): every transaction that
  touched a `cash_clearing` account, whose reference starts with an owner prefix ("refund:",
  "payout:", "withdrawal:"); see `selectors.reconciliation_platform_records`. A negative cash entry
  is money out (a refund's "refund:42:settle"), a positive one money back ("refund:42:returned").

The rule
- Key: (owner reference, direction). The owner reference is the first two segments of whatever the
  channel or the ledger wrote: "refund:42:1" (a request id) and "refund:42:settle" (a ledger
  reference) are both "refund:42". Money leaves for a refund or payout at most once ("out":
  "refund:42:settle", "payout:7:paid"); it may come back ("in") in one return or in parts
  (negotiated recoveries). Currency and amount are compared, not keyed.
- A run is for one `date`. Candidates come from `date ± tolerance.days`; a key is reported by the
  run of `date` only if one of its lines or records is dated `date` (so each day's run speaks for
  that day, and a pair straddling midnight is matched from both sides instead of being reported
  missing on each).
- Per key, with L statement lines and R platform records in the window:
  * direction "out" with L ≥ 2 or R ≥ 2: `duplicate` (the channel paid twice, or we booked twice),
    P0 — money leaves for one owner at most once;
  * otherwise lines and records are paired one to one: first those that agree (same currency,
    dates within `tolerance.days`, amounts within `tolerance.amount`, closest amount first); then a
    single line and a single record left within the date tolerance are paired anyway. Returns ("in")
    may come in parts, so what is left on both sides still matches as a group when the currency,
    dates and sums agree;
  * a pair is reported by the run of either side's date: currency differs → `amount_mismatch`, P0;
    amounts within `tolerance.amount` → `matched` (a difference is noted); otherwise
    `amount_mismatch`, P0 when the platform's cash at the channel is lower than the books say
    (more went out, or less came back, than we recorded: money missing), else P1;
  * a line left over → `missing_on_platform`, a record left over → `missing_on_channel`, both P0,
    each reported by the run of its own date (a line and a record more than `tolerance.days`
    apart are two missing items).
- Severities: P0 for duplicates, anything missing on either side and currency mismatches; P1 for
  an amount mismatch where the channel holds more than the books; "" for matched.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

OUT = "out"
IN = "in"
DIRECTIONS = (OUT, IN)

MATCHED = "matched"
MISSING_ON_PLATFORM = "missing_on_platform"
MISSING_ON_CHANNEL = "missing_on_channel"
AMOUNT_MISMATCH = "amount_mismatch"
DUPLICATE = "duplicate"
KINDS = (MATCHED, MISSING_ON_PLATFORM, MISSING_ON_CHANNEL, AMOUNT_MISMATCH, DUPLICATE)

P0 = "P0"
P1 = "P1"
_RANK = {"": 0, P1: 1, P0: 2}


def owner_reference(raw: str) -> str:
    """ "refund:42:1" → "refund:42"; a reference with fewer than two segments is kept as it is."""
    parts = raw.strip().split(":")
    if len(parts) >= 2 and parts[0] and parts[1]:
        return f"{parts[0]}:{parts[1]}"
    return raw.strip()


def highest(severities: Iterable[str]) -> str:
    return max(severities, key=_RANK.__getitem__, default="")


@dataclass(frozen=True)
class StatementEntry:
    """One statement line, normalised: a positive amount and a direction."""

    line_id: str
    value_date: date
    reference: str  # owner reference, "refund:42"
    direction: str  # OUT or IN
    amount: int  # > 0, minor units
    currency: str
    external_reference: str = ""  # as the channel wrote it, "refund:42:1"


@dataclass(frozen=True)
class PlatformRecord:
    """One cash movement in our ledger, normalised like a statement line."""

    ledger_reference: str  # "refund:42:settle"
    date: date  # UTC date the transaction was posted
    reference: str  # owner reference, "refund:42"
    direction: str
    amount: int  # > 0, minor units
    currency: str


@dataclass(frozen=True)
class Tolerance:
    amount: int = 0  # minor units
    days: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.amount, bool) or not isinstance(self.amount, int) or self.amount < 0:
            raise ValueError("amount tolerance is a non-negative int of minor units")
        if isinstance(self.days, bool) or not isinstance(self.days, int) or self.days < 0:
            raise ValueError("date tolerance is a non-negative int of days")

    def window(self, day: date) -> tuple[date, date]:
        return day - timedelta(days=self.days), day + timedelta(days=self.days)


@dataclass(frozen=True)
class Finding:
    kind: str
    severity: str
    reference: str
    direction: str
    currency: str
    statement_amount: int | None = None
    platform_amount: int | None = None
    statement_date: date | None = None
    platform_date: date | None = None
    line_ids: tuple[str, ...] = ()
    ledger_references: tuple[str, ...] = ()
    detail: str = ""


@dataclass
class Outcome:
    findings: list[Finding] = field(default_factory=list)
    statement_lines: int = 0  # lines dated `date`
    platform_records: int = 0  # records dated `date`
    totals: dict[str, dict[str, int]] = field(default_factory=dict)

    def count(self, kind: str) -> int:
        return sum(1 for finding in self.findings if finding.kind == kind)

    @property
    def severity(self) -> str:
        return highest(finding.severity for finding in self.findings)

    @property
    def is_clean(self) -> bool:
        return all(finding.kind == MATCHED for finding in self.findings)


def _signed(direction: str, amount: int) -> int:
    return -amount if direction == OUT else amount


def _one_currency(items: Sequence[StatementEntry | PlatformRecord]) -> str:
    currencies = sorted({item.currency for item in items})
    return currencies[0] if len(currencies) == 1 else "/".join(currencies)


def _pair(line: StatementEntry, record: PlatformRecord, tolerance: Tolerance) -> Finding:
    common = {
        "reference": line.reference,
        "direction": line.direction,
        "statement_amount": line.amount,
        "platform_amount": record.amount,
        "statement_date": line.value_date,
        "platform_date": record.date,
        "line_ids": (line.line_id,),
        "ledger_references": (record.ledger_reference,),
    }
    if line.currency != record.currency:
        return Finding(
            kind=AMOUNT_MISMATCH,
            severity=P0,
            currency=f"{line.currency}/{record.currency}",
            detail=f"currency differs: statement {line.currency}, ledger {record.currency}",
            **common,
        )
    difference = line.amount - record.amount
    if abs(difference) <= tolerance.amount:
        detail = f"amount differs by {difference} minor units, within tolerance" if difference else ""
        return Finding(kind=MATCHED, severity="", currency=line.currency, detail=detail, **common)
    # Positive: the channel holds more than the books say; negative: money is missing.
    cash_difference = _signed(line.direction, line.amount) - _signed(record.direction, record.amount)
    return Finding(
        kind=AMOUNT_MISMATCH,
        severity=P0 if cash_difference < 0 else P1,
        currency=line.currency,
        detail=f"statement {line.amount}, ledger {record.amount} ({difference:+d} minor units)",
        **common,
    )


def _close(line: StatementEntry, record: PlatformRecord, tolerance: Tolerance) -> bool:
    return abs((line.value_date - record.date).days) <= tolerance.days


def _pair_up(
    lines: list[StatementEntry], records: list[PlatformRecord], tolerance: Tolerance
) -> tuple[list[tuple[StatementEntry, PlatformRecord]], list[StatementEntry], list[PlatformRecord]]:
    """Pairs of one line and one record, then what is left on each side."""
    pairs, left_lines, left_records = [], [], list(records)
    # First the pairs that match (currency, dates and amount within tolerance), closest amount first.
    for line in lines:
        candidates = [
            record
            for record in left_records
            if record.currency == line.currency
            and _close(line, record, tolerance)
            and abs(line.amount - record.amount) <= tolerance.amount
        ]
        if candidates:
            best = min(candidates, key=lambda r: (abs(line.amount - r.amount), abs((line.value_date - r.date).days)))
            left_records.remove(best)
            pairs.append((line, best))
        else:
            left_lines.append(line)
    # One line and one record left within the date tolerance are the same movement, amounts apart.
    if len(left_lines) == 1 and len(left_records) == 1 and _close(left_lines[0], left_records[0], tolerance):
        pairs.append((left_lines.pop(), left_records.pop()))
    return pairs, left_lines, left_records


def _group_matches(lines: list[StatementEntry], records: list[PlatformRecord], tolerance: Tolerance) -> Finding | None:
    """Money back in parts booked differently on each side (one return line, two recoveries in the
    ledger, or the reverse): matched as a group when currency, dates and the sums agree."""
    if not lines or not records or len({item.currency for item in [*lines, *records]}) != 1:
        return None
    if not all(_close(line, record, tolerance) for line in lines for record in records):
        return None
    statement, platform = sum(line.amount for line in lines), sum(record.amount for record in records)
    if abs(statement - platform) > tolerance.amount:
        return None
    return Finding(
        kind=MATCHED,
        severity="",
        reference=lines[0].reference,
        direction=lines[0].direction,
        currency=lines[0].currency,
        statement_amount=statement,
        platform_amount=platform,
        statement_date=min(line.value_date for line in lines),
        platform_date=min(record.date for record in records),
        line_ids=tuple(line.line_id for line in lines),
        ledger_references=tuple(record.ledger_reference for record in records),
        detail=f"{len(lines)} statement line(s) and {len(records)} ledger record(s) match as a group",
    )


def _missing_on_platform(line: StatementEntry) -> Finding:
    return Finding(
        kind=MISSING_ON_PLATFORM,
        severity=P0,
        reference=line.reference,
        direction=line.direction,
        currency=line.currency,
        statement_amount=line.amount,
        statement_date=line.value_date,
        line_ids=(line.line_id,),
        detail="on the statement, no ledger record within the date tolerance",
    )


def _missing_on_channel(record: PlatformRecord) -> Finding:
    return Finding(
        kind=MISSING_ON_CHANNEL,
        severity=P0,
        reference=record.reference,
        direction=record.direction,
        currency=record.currency,
        platform_amount=record.amount,
        platform_date=record.date,
        ledger_references=(record.ledger_reference,),
        detail="in the ledger, no statement line within the date tolerance",
    )


def _key_findings(
    day: date, lines: list[StatementEntry], records: list[PlatformRecord], tolerance: Tolerance
) -> list[Finding]:
    reference, direction = (lines or records)[0].reference, (lines or records)[0].direction
    if direction == OUT and (len(lines) > 1 or len(records) > 1):
        # Money leaves for one owner at most once: a second execution or booking is a duplicate.
        return [
            Finding(
                kind=DUPLICATE,
                severity=P0,
                reference=reference,
                direction=direction,
                currency=_one_currency([*lines, *records]),
                statement_amount=sum(line.amount for line in lines) if lines else None,
                platform_amount=sum(record.amount for record in records) if records else None,
                statement_date=min(line.value_date for line in lines) if lines else None,
                platform_date=min(record.date for record in records) if records else None,
                line_ids=tuple(line.line_id for line in lines),
                ledger_references=tuple(record.ledger_reference for record in records),
                detail=f"{len(lines)} statement line(s), {len(records)} ledger record(s)",
            )
        ]
    pairs, left_lines, left_records = _pair_up(lines, records, tolerance)
    findings = [
        _pair(line, record, tolerance) for line, record in pairs if line.value_date == day or record.date == day
    ]
    group = _group_matches(left_lines, left_records, tolerance)
    if group is not None:
        if any(line.value_date == day for line in left_lines) or any(r.date == day for r in left_records):
            findings.append(group)
        return findings
    findings.extend(_missing_on_platform(line) for line in left_lines if line.value_date == day)
    findings.extend(_missing_on_channel(record) for record in left_records if record.date == day)
    return findings


def _totals(day: date, lines: Sequence[StatementEntry], records: Sequence[PlatformRecord]) -> dict:
    totals: dict[str, dict[str, int]] = defaultdict(
        lambda: {"statement_out": 0, "statement_in": 0, "platform_out": 0, "platform_in": 0}
    )
    for line in lines:
        if line.value_date == day:
            totals[line.currency][f"statement_{line.direction}"] += line.amount
    for record in records:
        if record.date == day:
            totals[record.currency][f"platform_{record.direction}"] += record.amount
    return {currency: totals[currency] for currency in sorted(totals)}


def match(
    *,
    day: date,
    lines: Sequence[StatementEntry],
    records: Sequence[PlatformRecord],
    tolerance: Tolerance,
    progress: Callable[[int, int], None] | None = None,
) -> Outcome:
    """Match the statement lines and platform records of `day ± tolerance.days` (see the module
    docstring); items outside that window are ignored. Findings come sorted by reference, direction."""
    first, last = tolerance.window(day)
    lines = [line for line in lines if first <= line.value_date <= last]
    records = [record for record in records if first <= record.date <= last]
    by_key: dict[tuple[str, str], tuple[list[StatementEntry], list[PlatformRecord]]] = defaultdict(lambda: ([], []))
    for line in lines:
        by_key[(line.reference, line.direction)][0].append(line)
    for record in records:
        by_key[(record.reference, record.direction)][1].append(record)
    outcome = Outcome(
        statement_lines=sum(1 for line in lines if line.value_date == day),
        platform_records=sum(1 for record in records if record.date == day),
        totals=_totals(day, lines, records),
    )
    keys = sorted(by_key)
    for done, key in enumerate(keys, start=1):
        key_lines, key_records = by_key[key]
        key_lines.sort(key=lambda line: (line.value_date, line.line_id))
        key_records.sort(key=lambda record: (record.date, record.ledger_reference))
        if any(line.value_date == day for line in key_lines) or any(record.date == day for record in key_records):
            outcome.findings.extend(_key_findings(day, key_lines, key_records, tolerance))
        if progress is not None:
            progress(done, len(keys))
    return outcome
