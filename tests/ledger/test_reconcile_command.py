"""`manage.py reconcile`: a CSV or the registered sources, a summary on stdout, a progress bar on a
terminal only, exit 1 when a statement cannot be read."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from apps.ledger.models import Reconciliation
from apps.ledger.statements import StatementSourceError, register_statement_source, statement_source_names
from apps.ledger.statements import _sources as registered_sources
from tests.ledger.support import DAY, FakeSource, book, line

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

CSV = (
    "line_id,date,reference,amount,currency,direction\n"
    "L-1,2026-03-10,refund:1:1,100.00,CNY,out\n"
    "L-2,2026-03-10,refund:2:1,5.00,CNY,out\n"
    "L-3,2026-03-10,refund:3:1,3.00,CNY,out\n"
)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def only_these_sources():
    """The registry holds exactly what a test registers (apps may have registered real banks)."""
    saved = dict(registered_sources)
    registered_sources.clear()
    yield
    registered_sources.clear()
    registered_sources.update(saved)


def run(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("reconcile", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_csv_run_prints_counts_totals_and_every_mismatch(tmp_path):
    book("refund:1:settle", 10000)
    book("refund:2:settle", 600)
    book("refund:4:settle", 400)
    path = tmp_path / "statement.csv"
    path.write_text(CSV)

    out, err = run("--date", "2026-03-10", "--source", "bank-a", "--csv", str(path))

    assert out.splitlines() == [
        "Reconciliation 2026-03-10 bank-a v1: mismatched (P0) — tolerance 0 minor units, 1 day(s)",
        "  statement lines 3, platform records 3",
        "  matched 1, missing on platform 1, missing on channel 1, amount mismatch 1, duplicate 0",
        "  CNY: statement out 108.00 CNY, in 0.00 CNY; ledger out 110.00 CNY, in 0.00 CNY",
        "  P0 missing_on_platform refund:3 out: statement 3.00 CNY, ledger —"
        " — on the statement, no ledger record within the date tolerance",
        "  P0 missing_on_channel refund:4 out: statement —, ledger 4.00 CNY"
        " — in the ledger, no statement line within the date tolerance",
        "  P1 amount_mismatch refund:2 out: statement 5.00 CNY, ledger 6.00 CNY"
        " — statement 500, ledger 600 (-100 minor units)",
    ]
    assert err == ""  # no terminal, no bar
    assert Reconciliation.objects.get().actor == "command"


def test_progress_bar_on_a_terminal(tmp_path):
    path = tmp_path / "statement.csv"
    path.write_text(CSV)
    out, err = io.StringIO(), Terminal()

    call_command("reconcile", "--date", "2026-03-10", "--source", "bank-a", "--csv", str(path), stdout=out, stderr=err)

    assert "bank-a match" in err.getvalue()
    assert "3/3" in err.getvalue()
    assert "missing on platform 3" in out.getvalue()


def test_every_registered_source_by_default_and_a_failing_one_exits_1(only_these_sources):
    book("refund:1:settle", 100)
    good, bad = FakeSource("bank-a"), FakeSource("bank-b")
    good.add(line("refund:1:1", 100))
    bad.error = StatementSourceError("connection refused")
    register_statement_source("bank-a", good)
    register_statement_source("bank-b", bad)
    assert statement_source_names() == ["bank-a", "bank-b"]
    out = io.StringIO()

    with pytest.raises(CommandError, match="statement unavailable for: bank-b"):
        call_command("reconcile", "--date", DAY.isoformat(), stdout=out, stderr=io.StringIO())

    lines = out.getvalue().splitlines()
    assert lines[0].startswith("Reconciliation 2026-03-10 bank-a v1: clean")
    assert lines[-1] == "Reconciliation 2026-03-10 bank-b: FAILED, statement unavailable: connection refused"
    assert sorted(Reconciliation.objects.values_list("source", "status")) == [("bank-a", "clean"), ("bank-b", "failed")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--csv", "x.csv"], "--csv needs --source"),
        (["--date", "10/03/2026", "--source", "a"], "--date must be YYYY-MM-DD"),
        (["--source", "a", "--csv", "/nonexistent/statement.csv"], "cannot read"),
        (["--date", "2026-03-10", "--source", "unregistered"], "No statement source 'unregistered'"),
    ],
)
def test_bad_arguments_exit_1_and_write_nothing(only_these_sources, args, message):
    with pytest.raises(CommandError, match=message):
        run(*args)
    assert Reconciliation.objects.count() == 0


def test_bad_csv_names_the_line(tmp_path):
    path = tmp_path / "statement.csv"
    path.write_text(CSV.replace("5.00", "five"))
    with pytest.raises(CommandError, match="line 3: amount: must be a decimal number"):
        run("--date", "2026-03-10", "--source", "bank-a", "--csv", str(path))
    assert Reconciliation.objects.count() == 0


def test_no_sources_registered_exits_1(only_these_sources):
    with pytest.raises(CommandError, match="No statement sources are registered"):
        run("--date", "2026-03-10")
