"""Helpers for reconciliation tests: book cash movements on a given day, write statement lines."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta

import time_machine

from apps.ledger.models import LedgerAccount
from apps.ledger.reconciliation import IN, OUT, StatementEntry
from apps.ledger.services import Line, ledger_account_get_or_create, ledger_post
from apps.ledger.statements import register_statement_source, unregister_statement_source

Kind = LedgerAccount.Kind
DAY = date(2026, 3, 10)
_lines = itertools.count(1)


def at(day: date, hour: int = 12) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=UTC)


def days(n: int) -> date:
    return DAY + timedelta(days=n)


def book(reference: str, amount: int, day: date = DAY, *, direction: str = OUT, currency: str = "CNY") -> None:
    """Post a cash movement at a channel on `day`, as refunds do: settle (out) or returned (in)."""
    cash = ledger_account_get_or_create(owner="platform", kind=Kind.CASH_CLEARING, currency=currency)
    if direction == OUT:
        other = ledger_account_get_or_create(owner="platform", kind=Kind.REFUNDS_IN_FLIGHT, currency=currency)
        lines = [Line(other, amount), Line(cash, -amount)]
    else:
        other = ledger_account_get_or_create(owner="customer:1", kind=Kind.CUSTOMER_BALANCE, currency=currency)
        lines = [Line(cash, amount), Line(other, -amount)]
    with time_machine.travel(at(day), tick=False):
        ledger_post(reference=reference, kind="test", lines=lines)


def capture(reference: str, amount: int, day: date = DAY) -> None:
    """An order capture: cash comes in from the acquirer, not through a payout channel."""
    cash = ledger_account_get_or_create(owner="platform", kind=Kind.CASH_CLEARING, currency="CNY")
    payable = ledger_account_get_or_create(owner="merchant:1", kind=Kind.MERCHANT_PAYABLE, currency="CNY")
    with time_machine.travel(at(day), tick=False):
        ledger_post(reference=reference, kind="order_capture", lines=[Line(cash, amount), Line(payable, -amount)])


def line(
    reference: str,
    amount: int,
    day: date = DAY,
    *,
    direction: str = OUT,
    currency: str = "CNY",
    line_id: str | None = None,
) -> StatementEntry:
    owner = ":".join(reference.split(":")[:2])
    return StatementEntry(
        line_id=line_id or f"L-{next(_lines)}",
        value_date=day,
        reference=owner,
        direction=direction,
        amount=amount,
        currency=currency,
        external_reference=reference,
    )


class FakeSource:
    """A registered statement source answering from a dict {date: [entries]}; can be made to fail."""

    def __init__(self, name: str = "testbank") -> None:
        self.name = name
        self.by_day: dict[date, list[StatementEntry]] = {}
        self.error: Exception | None = None
        self.asked: list[date] = []

    def add(self, *entries: StatementEntry) -> None:
        for entry in entries:
            self.by_day.setdefault(entry.value_date, []).append(entry)

    def __call__(self, day: date) -> list[StatementEntry]:
        self.asked.append(day)
        if self.error is not None:
            raise self.error
        return list(self.by_day.get(day, []))

    def __enter__(self) -> FakeSource:
        self._previous = register_statement_source(self.name, self)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is None:
            unregister_statement_source(self.name)
        else:
            register_statement_source(self.name, self._previous.fetch, prefixes=self._previous.prefixes)


__all__ = ["DAY", "IN", "OUT", "FakeSource", "at", "book", "capture", "days", "line"]
