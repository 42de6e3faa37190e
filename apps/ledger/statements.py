"""Channel statements: the CSV format and the registry of sources that can be pulled.

CSV format (UTF-8, a BOM is allowed; a header row; column names case-insensitive, in any order,
unknown columns ignored):

    line_id,date,reference,amount,currency,direction
    L-001,2026-11-27,refund:42:1,199.00,CNY,out
    L-002,2026-11-27,refund:17:1,50.00,CNY,in

- `line_id`: the channel's id for the line, unique within the source (1–128 characters). Importing a
  line again is a no-op; the same id with other content is refused.
- `date`: value date, YYYY-MM-DD.
- `reference`: our request id or owner reference as the channel echoes it ("refund:42:1" and
  "refund:42" both mean "refund:42"); 1–200 characters.
- exactly one of `amount` (decimal major units as the bank prints them, "199.00", at most as many
  decimals as the currency has: JPY none, KWD three; converted exactly, never through float) or
  `amount_minor` (an integer of minor units, "19900").
- `currency`: a supported ISO 4217 code in upper case.
- `direction` (optional): `out` (money left the platform's account) or `in` (money came back);
  bank-statement words `debit`/`credit` are read as out/in. With a direction the amount must be
  positive; without the column (or with it empty) the amount's sign decides: negative = out.
Any error refuses the whole file (nothing is written) and names the line and column.

Sources: a higher-floor app registers `fetch(date) -> Iterable[StatementEntry]` under a name
(`register_statement_source`); `ledger` imports no other app, so it cannot know banks itself.
`fetch` raises `StatementSourceError` when the statement cannot be read.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation

from django.conf import settings

from apps.common.money import CurrencyError, currency_exponent, currency_is_supported
from apps.ledger.reconciliation import IN, OUT, StatementEntry, owner_reference

# Owner prefixes of the ledger references that move cash at a channel. Payouts and withdrawals
# post "payout:<id>:…" / "withdrawal:<id>:…" on cash_clearing just as refunds do.
DEFAULT_PREFIXES: tuple[str, ...] = ("refund", "payout", "withdrawal")
SOURCE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
MAX_ERRORS = 20

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_MINOR = re.compile(r"[+-]?\d{1,19}")
_DECIMAL = re.compile(r"[+-]?\d{1,19}(\.\d{1,6})?")
_DIRECTIONS = {"out": OUT, "in": IN, "debit": OUT, "credit": IN}
REQUIRED_COLUMNS = ("line_id", "date", "reference", "currency")


class StatementFormatError(ValueError):
    """The statement is not in the documented format. `errors` maps "line N" (or "header") to
    messages; nothing was imported."""

    def __init__(self, message: str, errors: dict[str, list[str]]) -> None:
        super().__init__(message)
        self.errors = errors


class StatementSourceError(Exception):
    """A registered source could not produce the statement (channel down, bad answer)."""


# --- CSV --------------------------------------------------------------------------------------------


def _text(raw: str | bytes) -> str:
    if isinstance(raw, bytes):
        try:
            return raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise StatementFormatError(
                "The statement is not UTF-8 text.", {"statement": ["Not valid UTF-8."]}
            ) from None
    return raw.removeprefix("\ufeff")


def _field(row: dict[str, str], name: str, max_length: int, problems: list[str]) -> str:
    value = (row.get(name) or "").strip()
    if not value:
        problems.append(f"{name}: required.")
    elif len(value) > max_length:
        problems.append(f"{name}: at most {max_length} characters.")
    elif _CONTROL.search(value):
        problems.append(f"{name}: control characters are not allowed.")
    return value


def _date(raw: str, problems: list[str]) -> date | None:
    if not raw:
        return None
    try:
        if not _DATE.fullmatch(raw):
            raise ValueError
        return date.fromisoformat(raw)
    except ValueError:
        problems.append("date: must be a date as YYYY-MM-DD.")
        return None


def _amount(row: dict[str, str], column: str, currency: str, problems: list[str]) -> int | None:
    raw = (row.get(column) or "").strip()
    if not raw:
        problems.append(f"{column}: required.")
        return None
    if column == "amount_minor":
        if not _MINOR.fullmatch(raw):
            problems.append("amount_minor: must be an integer number of minor units.")
            return None
        value = int(raw)
    else:
        if not _DECIMAL.fullmatch(raw):
            problems.append("amount: must be a decimal number such as 199.00.")
            return None
        try:
            exponent = currency_exponent(currency)
        except CurrencyError:
            return None  # reported under currency
        try:
            scaled = Decimal(raw).scaleb(exponent)
        except InvalidOperation:
            problems.append("amount: must be a decimal number such as 199.00.")
            return None
        if scaled != scaled.to_integral_value():
            problems.append(f"amount: {currency} has {exponent} decimal place(s).")
            return None
        value = int(scaled)
    if value == 0:
        problems.append(f"{column}: must not be zero.")
        return None
    if abs(value) > settings.MAX_AMOUNT_MINOR:
        problems.append(f"{column}: at most {settings.MAX_AMOUNT_MINOR} minor units.")
        return None
    return value


def _header(fieldnames: list[str] | None) -> tuple[dict[str, str], str]:
    """Map normalised column names to the file's, and name the amount column; or raise."""
    if not fieldnames:
        raise StatementFormatError("The statement has no header row.", {"header": ["Missing."]})
    columns: dict[str, str] = {}
    for name in fieldnames:
        key = (name or "").strip().lower()
        if key in columns:
            raise StatementFormatError("The header names a column twice.", {"header": [f"{key}: repeated."]})
        columns[key] = name
    problems = [f"{name}: missing." for name in REQUIRED_COLUMNS if name not in columns]
    amount_columns = [name for name in ("amount", "amount_minor") if name in columns]
    if len(amount_columns) != 1:
        problems.append("exactly one of amount (major units) or amount_minor (minor units) is required.")
    if problems:
        raise StatementFormatError("The statement's header is incomplete.", {"header": problems})
    return columns, amount_columns[0]


def parse_statement_csv(raw: str | bytes) -> list[StatementEntry]:
    """Parse a statement in the CSV format above, all or nothing (StatementFormatError)."""
    text = _text(raw)
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""), restkey="_extra", strict=True)
        columns, amount_column = _header(reader.fieldnames)
        entries: list[StatementEntry] = []
        errors: dict[str, list[str]] = {}
        first_line_of: dict[str, int] = {}
        for number, raw_row in enumerate(reader, start=2):
            if len(errors) >= MAX_ERRORS:
                break
            row = {key: (raw_row.get(original) or "") for key, original in columns.items()}
            if raw_row.get("_extra"):
                errors[f"line {number}"] = ["more values than columns in the header."]
                continue
            entry, problems = _row(row, amount_column)
            if entry is not None and entry.line_id in first_line_of:
                problems.append(f"line_id: repeats line {first_line_of[entry.line_id]}.")
            if problems:
                errors[f"line {number}"] = problems
                continue
            first_line_of[entry.line_id] = number
            entries.append(entry)
    except csv.Error as exc:
        raise StatementFormatError("The statement is not valid CSV.", {"statement": [str(exc)]}) from None
    if errors:
        raise StatementFormatError(f"The statement has {len(errors)} invalid line(s); nothing was imported.", errors)
    return entries


def _row(row: dict[str, str], amount_column: str) -> tuple[StatementEntry | None, list[str]]:
    problems: list[str] = []
    line_id = _field(row, "line_id", 128, problems)
    value_date = _date(_field(row, "date", 32, problems), problems)
    reference = _field(row, "reference", 200, problems)
    currency = (row.get("currency") or "").strip()
    if not currency_is_supported(currency):
        problems.append("currency: must be a supported ISO 4217 code in upper case.")
    amount = _amount(row, amount_column, currency, problems)
    raw_direction = (row.get("direction") or "").strip().lower()
    direction = None
    if raw_direction:
        direction = _DIRECTIONS.get(raw_direction)
        if direction is None:
            problems.append("direction: must be out or in.")
        elif amount is not None and amount < 0:
            problems.append(f"{amount_column}: must be positive when a direction is given.")
    elif amount is not None:
        direction = OUT if amount < 0 else IN
    if problems or value_date is None or amount is None or direction is None:
        return None, problems
    return (
        StatementEntry(
            line_id=line_id,
            value_date=value_date,
            reference=owner_reference(reference),
            direction=direction,
            amount=abs(amount),
            currency=currency,
            external_reference=reference,
        ),
        problems,
    )


# --- sources ----------------------------------------------------------------------------------------

FetchStatement = Callable[[date], Iterable[StatementEntry]]


@dataclass(frozen=True)
class StatementSource:
    name: str
    fetch: FetchStatement
    prefixes: tuple[str, ...] = DEFAULT_PREFIXES


_sources: dict[str, StatementSource] = {}


def register_statement_source(
    name: str, fetch: FetchStatement, *, prefixes: Collection[str] = DEFAULT_PREFIXES
) -> StatementSource | None:
    """Make `fetch` the statement of source `name`; returns the source it replaced (tests restore it).

    `prefixes` are the owner prefixes whose cash movements this source's statement covers.
    """
    if not SOURCE_NAME.fullmatch(name):
        raise ValueError(f"bad statement source name {name!r}")
    previous = _sources.get(name)
    _sources[name] = StatementSource(name=name, fetch=fetch, prefixes=tuple(prefixes))
    return previous


def unregister_statement_source(name: str) -> None:
    _sources.pop(name, None)


def statement_source_get(name: str) -> StatementSource | None:
    return _sources.get(name)


def statement_source_names() -> list[str]:
    return sorted(_sources)
