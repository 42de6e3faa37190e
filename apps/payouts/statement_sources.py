"""Statement sources for reconciliation: the wiring between `gateways` (which can pull a channel's
statement) and `ledger` (which reconciles it). The two share a floor and may not import each other,
so the wiring lives here, above both; `PayoutsConfig.ready()` calls `register_channel_statement_sources()`.

One source per bank, not per channel code: the ledger keeps one platform cash account per currency
(not per channel), so a source must cover every channel whose money sits at that bank. Source
"sandbox" merges the sandbox bank's statements for every channel built on the sandbox adapter
("sandbox" and "sandbox-backup"); each line id is prefixed with its channel code so that two
channels' ids never collide.
"""

from __future__ import annotations

from datetime import date

from apps.gateways.base import ChannelError, StatementLine
from apps.gateways.services import channel_statement, channel_statement_codes
from apps.ledger.reconciliation import StatementEntry
from apps.ledger.statements import DEFAULT_PREFIXES, StatementSourceError, register_statement_source

SANDBOX_SOURCE = "sandbox"


def _entry(code: str, line: StatementLine) -> StatementEntry:
    return StatementEntry(
        line_id=f"{code}:{line.line_id}",
        value_date=line.value_date,
        reference=line.reference,
        direction=str(line.direction),
        amount=line.amount,
        currency=line.currency,
        external_reference=line.request_id,
    )


def adapter_statement(adapter: str):
    """A ledger `fetch(date)` over every channel built on `adapter`."""

    def fetch(value_date: date) -> list[StatementEntry]:
        entries = []
        for code in channel_statement_codes(adapter=adapter):
            try:
                lines = channel_statement(channel=code, date=value_date)
            except ChannelError as exc:
                raise StatementSourceError(f"channel {code}: {exc}") from exc
            entries.extend(_entry(code, line) for line in lines)
        return entries

    return fetch


def register_channel_statement_sources() -> None:
    """Register the banks whose statements can be pulled. Idempotent (re-registering replaces)."""
    register_statement_source(SANDBOX_SOURCE, adapter_statement("sandbox"), prefixes=DEFAULT_PREFIXES)
