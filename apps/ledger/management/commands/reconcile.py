"""`python manage.py reconcile [--date YYYY-MM-DD] [--source NAME] [--csv PATH]`

Reconciles one day (default: yesterday, UTC) for one statement source or every registered one, or
for an uploaded CSV statement (`--csv`, which needs `--source`: whose statement it is). A progress
bar goes to stderr on a terminal; the summary (counts, totals, every mismatch) to stdout. Exits 1
when a statement could not be read or the input is refused.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, no_translations
from django.utils import timezone
from tqdm import tqdm

from apps.common.errors import ServiceError
from apps.common.money import CurrencyError, Money
from apps.ledger.models import Reconciliation
from apps.ledger.reconciliation import KINDS
from apps.ledger.services import reconciliation_run
from apps.ledger.statements import (
    StatementFormatError,
    StatementSourceError,
    parse_statement_csv,
    statement_source_names,
)

MAX_LISTED = 50


def _day(raw: str) -> dt.date:
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise CommandError(f"--date must be YYYY-MM-DD, not {raw!r}") from None


def _money(amount: int | None, currency: str) -> str:
    if amount is None:
        return "—"
    try:
        return str(Money(amount, currency))
    except (CurrencyError, TypeError):
        return f"{amount} {currency} (minor units)"


class _Bar:
    """One tqdm bar per stage of a run ("fetch", "match"), on stderr, only on a terminal."""

    def __init__(self, stream, source: str, enabled: bool) -> None:
        self.stream, self.source, self.enabled = stream, source, enabled
        self.stage: str | None = None
        self.bar: tqdm | None = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        if stage != self.stage:
            self.close()
            self.stage = stage
            self.bar = tqdm(
                total=total,
                desc=f"{self.source} {stage}",
                file=self.stream,
                unit="day" if stage == "fetch" else "ref",
                leave=True,
            )
        self.bar.total = total
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class Command(BaseCommand):
    help = "Reconcile a day's channel statements against the ledger and print what does not match."

    def add_arguments(self, parser):
        parser.add_argument("--date", help="Value date to reconcile, YYYY-MM-DD (default: yesterday, UTC).")
        parser.add_argument("--source", help="Statement source (default: every registered source).")
        parser.add_argument("--csv", help="A CSV statement file to import and reconcile (needs --source).")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar, even on a terminal.")

    @no_translations  # its output is English: so are the services' messages it passes on
    def handle(self, *args, **options):
        day = _day(options["date"]) if options["date"] else (timezone.now() - dt.timedelta(days=1)).date()
        source, csv_path = options["source"], options["csv"]
        lines = None
        if csv_path:
            if not source:
                raise CommandError("--csv needs --source: say whose statement it is.")
            try:
                lines = parse_statement_csv(Path(csv_path).read_bytes())
            except OSError as exc:
                raise CommandError(f"cannot read {csv_path}: {exc.strerror}") from None
            except StatementFormatError as exc:
                problems = "; ".join(f"{where}: {' '.join(messages)}" for where, messages in exc.errors.items())
                raise CommandError(f"{exc} {problems}") from None
        sources = [source] if source else statement_source_names()
        if not sources:
            raise CommandError("No statement sources are registered; use --csv with --source.")
        show_bar = not options["no_progress"] and self.stderr.isatty()
        failed = []
        for name in sources:
            bar = _Bar(self.stderr._out, name, show_bar)
            try:
                run = reconciliation_run(date=day, source=name, lines=lines, actor="command", progress=bar)
            except StatementSourceError as exc:
                failed.append(name)
                self.stdout.write(f"Reconciliation {day} {name}: FAILED, statement unavailable: {exc}")
                continue
            except ServiceError as exc:
                fields = "; ".join(f"{key}: {' '.join(map(str, value))}" for key, value in exc.fields.items())
                raise CommandError(f"{exc.message} {fields}".strip()) from None
            finally:
                bar.close()
            self._summary(run)
        if failed:
            raise CommandError(f"statement unavailable for: {', '.join(failed)}")

    def _summary(self, run: Reconciliation) -> None:
        write = self.stdout.write
        write(
            f"Reconciliation {run.date} {run.source} v{run.version}: {run.status}"
            f"{f' ({run.severity})' if run.severity else ''}"
            f" — tolerance {run.amount_tolerance} minor units, {run.date_tolerance_days} day(s)"
        )
        write(f"  statement lines {run.statement_lines}, platform records {run.platform_records}")
        write("  " + ", ".join(f"{kind.replace('_', ' ')} {getattr(run, f'{kind}_count')}" for kind in KINDS))
        for currency, totals in run.totals.items():
            write(
                f"  {currency}: statement out {_money(totals['statement_out'], currency)},"
                f" in {_money(totals['statement_in'], currency)};"
                f" ledger out {_money(totals['platform_out'], currency)},"
                f" in {_money(totals['platform_in'], currency)}"
            )
        mismatches = run.items.exclude(kind="matched").order_by("severity", "reference", "direction")
        total = mismatches.count()
        for item in mismatches[:MAX_LISTED]:
            write(
                f"  {item.severity} {item.kind} {item.reference} {item.direction}:"
                f" statement {_money(item.statement_amount, item.currency)},"
                f" ledger {_money(item.platform_amount, item.currency)}"
                f"{f' — {item.detail}' if item.detail else ''}"
            )
        if total > MAX_LISTED:
            write(f"  … and {total - MAX_LISTED} more: GET /api/v1/reconciliations/{run.pk}?kind=…")
