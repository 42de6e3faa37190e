"""Reconciliation over a statement with planted mismatches of every kind: exact items, amounts,
severities, totals; the date window; idempotent re-runs; the signals; a source that fails."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.utils import translation

from apps.common.errors import ConflictError, ServiceError
from apps.ledger.models import Reconciliation, ReconciliationItem, StatementLine
from apps.ledger.reconciliation import Tolerance, match
from apps.ledger.services import reconciliation_run, statement_import
from apps.ledger.signals import reconciliation_completed, reconciliation_failed, reconciliation_mismatch
from apps.ledger.statements import StatementSourceError
from tests.ledger.support import DAY, IN, OUT, FakeSource, book, capture, days, line

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

SOURCE = "testbank"


@pytest.fixture
def tolerances(settings):
    settings.RECONCILIATION_AMOUNT_TOLERANCE = 5
    settings.RECONCILIATION_DATE_TOLERANCE_DAYS = 1
    return settings


def plant() -> list:
    """The ledger and a statement for DAY that disagree in every way there is (one case per owner)."""
    statement = []
    # 1. exact match
    book("refund:1:settle", 10000)
    statement.append(line("refund:1:1", 10000))
    # 2. amounts 3 apart, tolerance 5: matched, the difference noted
    book("refund:2:settle", 20000)
    statement.append(line("refund:2:1", 20003))
    # 3. the bank sent 10 more than we booked: money missing, P0
    book("refund:3:settle", 30000)
    statement.append(line("refund:3:1", 30010))
    # 4. the bank sent 10 less than we booked: the bank holds it, P1
    book("refund:4:settle", 40000)
    statement.append(line("refund:4:1", 39990))
    # 5. settled the day before (matched there, not reported today); returned today, 1000 short: P0
    book("refund:5:settle", 5000, days(-1))
    statement.append(line("refund:5:1", 5000, days(-1)))
    book("refund:5:returned", 5000, direction=IN)
    statement.append(line("refund:5:1", 4000, direction=IN))
    # 6. on the statement only: the bank moved money we have no record of
    statement.append(line("refund:6:1", 6000))
    # 7. in the ledger only: we booked money the bank never moved
    book("refund:7:settle", 7000)
    # 8. the bank paid twice
    book("refund:8:settle", 8000)
    statement.append(line("refund:8:1", 8000))
    statement.append(line("refund:8:1", 8000))
    # 9. we booked twice, the bank paid once
    book("payout:9:paid", 9000)
    book("payout:9:paid:again", 9000)
    statement.append(line("payout:9:1", 9000))
    # 10. value date one day after the posting: inside the date tolerance, matched
    book("refund:10:settle", 10100)
    statement.append(line("refund:10:1", 10100, days(1)))
    # 11. booked today, the line is two days earlier: outside the tolerance, missing on the channel
    book("refund:11:settle", 11000)
    statement.append(line("refund:11:1", 11000, days(-2)))
    # 12. on today's statement, booked two days later: outside the tolerance, missing on our side
    statement.append(line("refund:12:1", 12000))
    book("refund:12:settle", 12000, days(2))
    # 13. same amount, another currency: P0
    book("refund:13:settle", 1300)
    statement.append(line("refund:13:1", 1300, currency="USD"))
    # 14. both sides the day before: that day's business, not reported today
    book("refund:14:settle", 1400, days(-1))
    statement.append(line("refund:14:1", 1400, days(-1)))
    # 15. a payout, matched like a refund (the selector is generic by prefix)
    book("payout:15:paid", 150000)
    statement.append(line("payout:15:1", 150000))
    # 16. an order capture moves cash too, but through the acquirer: never a platform record here
    capture("order:16:capture", 99999)
    return statement


def items_by_reference(run: Reconciliation) -> dict[tuple[str, str], ReconciliationItem]:
    found = {(item.reference, item.direction): item for item in run.items.all()}
    assert len(found) == run.items.count(), "one item per (reference, direction)"
    return found


def test_every_kind_of_mismatch_is_found_with_exact_amounts(tolerances):
    run = reconciliation_run(date=DAY, source=SOURCE, lines=plant(), actor="test")

    assert (run.status, run.severity, run.version, run.is_current) == ("mismatched", "P0", 1, True)
    assert (run.amount_tolerance, run.date_tolerance_days) == (5, 1)
    counts = (
        run.matched_count,
        run.missing_on_platform_count,
        run.missing_on_channel_count,
        run.amount_mismatch_count,
        run.duplicate_count,
    )
    assert counts == (4, 2, 2, 4, 2)
    assert run.items.count() == 14
    items = items_by_reference(run)
    expected = {
        # (reference, direction): (kind, severity, statement, platform, statement date, platform date)
        ("refund:1", OUT): ("matched", "", 10000, 10000, DAY, DAY),
        ("refund:2", OUT): ("matched", "", 20003, 20000, DAY, DAY),
        ("refund:3", OUT): ("amount_mismatch", "P0", 30010, 30000, DAY, DAY),
        ("refund:4", OUT): ("amount_mismatch", "P1", 39990, 40000, DAY, DAY),
        ("refund:5", IN): ("amount_mismatch", "P0", 4000, 5000, DAY, DAY),
        ("refund:6", OUT): ("missing_on_platform", "P0", 6000, None, DAY, None),
        ("refund:7", OUT): ("missing_on_channel", "P0", None, 7000, None, DAY),
        ("refund:8", OUT): ("duplicate", "P0", 16000, 8000, DAY, DAY),
        ("payout:9", OUT): ("duplicate", "P0", 9000, 18000, DAY, DAY),
        ("refund:10", OUT): ("matched", "", 10100, 10100, days(1), DAY),
        ("refund:11", OUT): ("missing_on_channel", "P0", None, 11000, None, DAY),
        ("refund:12", OUT): ("missing_on_platform", "P0", 12000, None, DAY, None),
        ("refund:13", OUT): ("amount_mismatch", "P0", 1300, 1300, DAY, DAY),
        ("payout:15", OUT): ("matched", "", 150000, 150000, DAY, DAY),
    }
    actual = {
        key: (
            item.kind,
            item.severity,
            item.statement_amount,
            item.platform_amount,
            item.statement_date,
            item.platform_date,
        )
        for key, item in items.items()
    }
    assert actual == expected
    assert ("refund:5", OUT) not in items
    assert ("refund:14", OUT) not in items
    assert not any(reference.startswith("order:") for reference, _ in items)
    assert items[("refund:13", OUT)].currency == "USD/CNY"
    assert "within tolerance" in items[("refund:2", OUT)].detail
    assert len(items[("refund:8", OUT)].line_ids) == 2
    assert items[("payout:9", OUT)].ledger_references == ["payout:9:paid", "payout:9:paid:again"]
    assert items[("refund:7", OUT)].ledger_references == ["refund:7:settle"]
    # Lines and records dated DAY only: 1-4, 5 in, 6, 8 ×2, 9, 12, 13, 15 / 1-4, 5 in, 7-9 ×2, 10, 11, 13, 15.
    assert (run.statement_lines, run.platform_records) == (12, 13)
    assert run.totals == {
        "CNY": {
            "statement_out": 10000 + 20003 + 30010 + 39990 + 6000 + 16000 + 9000 + 12000 + 150000,
            "statement_in": 4000,
            "platform_out": 10000 + 20000 + 30000 + 40000 + 7000 + 8000 + 18000 + 10100 + 11000 + 1300 + 150000,
            "platform_in": 5000,
        },
        "USD": {"statement_out": 1300, "statement_in": 0, "platform_out": 0, "platform_in": 0},
    }


def test_amount_tolerance_zero_turns_the_small_difference_into_a_p1_mismatch(settings):
    settings.RECONCILIATION_AMOUNT_TOLERANCE = 0
    book("refund:2:settle", 20000)
    book("refund:4:settle", 40000)
    run = reconciliation_run(
        date=DAY, source=SOURCE, lines=[line("refund:2:1", 19999), line("refund:4:1", 40001)], actor="test"
    )

    items = items_by_reference(run)
    assert (items[("refund:2", OUT)].kind, items[("refund:2", OUT)].severity) == ("amount_mismatch", "P1")
    assert (items[("refund:4", OUT)].kind, items[("refund:4", OUT)].severity) == ("amount_mismatch", "P0")
    assert (run.status, run.severity, run.amount_mismatch_count) == ("mismatched", "P0", 2)


@pytest.mark.parametrize(
    ("tolerance_days", "line_offset", "expected"),
    [
        (0, 0, ["matched"]),
        (0, 1, ["missing_on_channel"]),
        (1, 1, ["matched"]),
        (1, -1, ["matched"]),
        (1, 2, ["missing_on_channel"]),
        (2, 2, ["matched"]),
    ],
)
def test_date_tolerance_edge(settings, tolerance_days, line_offset, expected):
    settings.RECONCILIATION_DATE_TOLERANCE_DAYS = tolerance_days
    book("refund:1:settle", 100)
    run = reconciliation_run(date=DAY, source=SOURCE, lines=[line("refund:1:1", 100, days(line_offset))])

    assert [item.kind for item in run.items.all()] == expected


def test_a_pair_straddling_midnight_is_matched_from_both_days(settings):
    book("refund:1:settle", 100)
    entries = [line("refund:1:1", 100, days(1))]

    first = reconciliation_run(date=DAY, source=SOURCE, lines=entries)
    second = reconciliation_run(date=days(1), source=SOURCE, lines=entries)

    assert [item.kind for item in first.items.all()] == ["matched"]
    assert [item.kind for item in second.items.all()] == ["matched"]
    assert (first.statement_lines, first.platform_records) == (0, 1)
    assert (second.statement_lines, second.platform_records) == (1, 0)


def test_money_back_in_parts_pairs_one_to_one_or_as_a_group():
    book("payout:1:returned", 600, direction=IN)
    book("payout:1:recovered:1", 400, direction=IN)
    book("payout:2:recovered:1", 300, direction=IN)
    book("payout:2:recovered:2", 200, direction=IN)
    book("payout:3:returned", 700, direction=IN)
    statement = [
        line("payout:1:1", 1000, direction=IN),  # one return line for two bookings: a group
        line("payout:2:1", 200, direction=IN),  # two lines, two bookings: pairs
        line("payout:2:1", 300, direction=IN),
        line("payout:3:1", 700, direction=IN),  # returned twice by the bank, booked once
        line("payout:3:1", 700, direction=IN),
    ]

    run = reconciliation_run(date=DAY, source=SOURCE, lines=statement)

    found = sorted(
        (i.reference, i.kind, i.statement_amount, i.platform_amount, len(i.line_ids), len(i.ledger_references))
        for i in run.items.all()
    )
    assert found == [
        ("payout:1", "matched", 1000, 1000, 1, 2),
        ("payout:2", "matched", 200, 200, 1, 1),
        ("payout:2", "matched", 300, 300, 1, 1),
        ("payout:3", "matched", 700, 700, 1, 1),
        ("payout:3", "missing_on_platform", 700, None, 1, 0),
    ]
    assert (run.status, run.severity) == ("mismatched", "P0")


def test_clean_day_and_empty_day(settings):
    book("refund:1:settle", 100)
    clean = reconciliation_run(date=DAY, source=SOURCE, lines=[line("refund:1:1", 100)])
    empty = reconciliation_run(date=days(-5), source=SOURCE, lines=[])

    assert (clean.status, clean.severity, clean.matched_count, clean.items.count()) == ("clean", "", 1, 1)
    assert (empty.status, empty.severity, empty.items.count(), empty.totals) == ("clean", "", 0, {})


def test_rerun_adds_a_version_replaces_the_current_result_and_imports_nothing_twice(tolerances):
    statement = plant()
    first = reconciliation_run(date=DAY, source=SOURCE, lines=statement)
    lines_after_first = StatementLine.objects.count()

    second = reconciliation_run(date=DAY, source=SOURCE, lines=statement)

    first.refresh_from_db()
    assert (first.version, first.is_current, second.version, second.is_current) == (1, False, 2, True)
    assert StatementLine.objects.count() == lines_after_first == len(statement)

    def shape(run):
        return sorted(
            (i.kind, i.reference, i.direction, i.statement_amount, i.platform_amount) for i in run.items.all()
        )

    assert shape(first) == shape(second)
    assert Reconciliation.objects.filter(date=DAY, source=SOURCE, is_current=True).get() == second


def test_rerun_without_replace_keeps_the_current_result(tolerances):
    first = reconciliation_run(date=DAY, source=SOURCE, lines=plant())

    again = reconciliation_run(date=DAY, source=SOURCE, lines=[], replace=False)

    assert again.pk == first.pk
    assert Reconciliation.objects.count() == 1


def test_a_line_reimported_with_other_content_is_refused_and_writes_nothing(tolerances):
    reconciliation_run(date=DAY, source=SOURCE, lines=[line("refund:1:1", 100, line_id="L-x")])
    before = (StatementLine.objects.count(), Reconciliation.objects.count(), ReconciliationItem.objects.count())

    with pytest.raises(ConflictError) as caught:
        reconciliation_run(
            date=DAY, source=SOURCE, lines=[line("refund:1:1", 101, line_id="L-x"), line("refund:2:1", 5)]
        )

    assert caught.value.fields == {"line_id": ["L-x"]}
    after = (StatementLine.objects.count(), Reconciliation.objects.count(), ReconciliationItem.objects.count())
    assert after == before


def test_same_line_id_in_another_source_is_another_line():
    statement_import(source="bank-a", entries=[line("refund:1:1", 100, line_id="L-1")])
    result = statement_import(source="bank-b", entries=[line("refund:1:1", 200, line_id="L-1")])

    assert (result.created, result.unchanged) == (1, 0)
    assert StatementLine.objects.count() == 2


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"date": DAY, "source": "Bad Name!"}, "source"),
        ({"date": DAY, "source": "nobody-registered"}, "source"),
        ({"date": days(1000), "source": SOURCE, "lines": []}, "date"),
    ],
    ids=["bad-name", "unregistered-without-lines", "future"],
)
def test_bad_input_is_refused_and_writes_nothing(kwargs, field):
    with pytest.raises(ServiceError) as caught:
        reconciliation_run(**kwargs)

    assert field in caught.value.fields
    assert Reconciliation.objects.count() == StatementLine.objects.count() == 0


def test_invalid_entries_from_code_are_refused():
    bad = line("refund:1:1", 100)
    object.__setattr__(bad, "amount", -5)
    with translation.override("en"), pytest.raises(ServiceError, match="invalid lines"):
        reconciliation_run(date=DAY, source=SOURCE, lines=[bad])
    assert StatementLine.objects.count() == 0


def test_registered_source_is_pulled_for_each_day_of_the_window(tolerances):
    book("refund:1:settle", 100)
    book("refund:2:settle", 200)
    with FakeSource(SOURCE) as source:
        source.add(line("refund:1:1", 100), line("refund:2:1", 200, days(1)), line("refund:3:1", 7, days(-3)))
        run = reconciliation_run(date=DAY, source=SOURCE)

    assert source.asked == [days(-1), DAY, days(1)]
    assert (run.status, run.matched_count, run.items.count()) == ("clean", 2, 2)
    assert StatementLine.objects.count() == 2


def test_failed_source_leaves_a_failed_run_sends_the_signal_and_raises(tolerances, django_capture_on_commit_callbacks):
    seen = []

    def receiver(sender, **payload):
        seen.append(payload)

    reconciliation_failed.connect(receiver, weak=False, dispatch_uid="test.failed")
    try:
        with FakeSource(SOURCE) as source, django_capture_on_commit_callbacks(execute=True):
            source.error = StatementSourceError("bank says 503")
            with pytest.raises(StatementSourceError):
                reconciliation_run(date=DAY, source=SOURCE)
            source.error = KeyError("bug in the source")
            with pytest.raises(StatementSourceError, match="KeyError"):
                reconciliation_run(date=DAY, source=SOURCE)
    finally:
        reconciliation_failed.disconnect(dispatch_uid="test.failed")

    runs = list(Reconciliation.objects.order_by("version"))
    assert [(r.version, r.status, r.is_current, r.severity) for r in runs] == [
        (1, "failed", False, "P1"),
        (2, "failed", False, "P1"),
    ]
    assert "bank says 503" in runs[0].error
    assert [(p["version"], p["severity"], p["source"], p["date"]) for p in seen] == [
        (1, "P1", SOURCE, DAY.isoformat()),
        (2, "P1", SOURCE, DAY.isoformat()),
    ]
    assert seen[0]["dedupe_key"] == f"reconciliation:{SOURCE}:{DAY.isoformat()}"
    assert ReconciliationItem.objects.count() == StatementLine.objects.count() == 0


def test_signals_carry_counts_severities_and_the_mismatches_after_commit(
    tolerances, django_capture_on_commit_callbacks
):
    completed, mismatched = [], []
    reconciliation_completed.connect(lambda sender, **p: completed.append(p), weak=False, dispatch_uid="t.c")
    reconciliation_mismatch.connect(lambda sender, **p: mismatched.append(p), weak=False, dispatch_uid="t.m")
    try:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            run = reconciliation_run(date=DAY, source=SOURCE, lines=plant())
        assert (completed, mismatched) == ([], [])  # nothing before commit
        for callback in callbacks:
            callback()
    finally:
        reconciliation_completed.disconnect(dispatch_uid="t.c")
        reconciliation_mismatch.disconnect(dispatch_uid="t.m")

    counts = {
        "matched": 4,
        "missing_on_platform": 2,
        "missing_on_channel": 2,
        "amount_mismatch": 4,
        "duplicate": 2,
    }
    assert len(completed) == 1
    assert completed[0]["reconciliation_id"] == run.pk
    assert completed[0]["counts"] == counts
    assert (completed[0]["status"], completed[0]["severity"], completed[0]["version"]) == ("mismatched", "P0", 1)
    assert completed[0]["dedupe_key"] == f"reconciliation:{SOURCE}:{DAY.isoformat()}"
    assert len(mismatched) == 1
    payload = mismatched[0]
    assert payload["mismatches_total"] == 10 == len(payload["mismatches"])
    severities = [item["severity"] for item in payload["mismatches"]]
    assert severities == ["P0"] * 9 + ["P1"]  # most severe first
    by_reference = {item["reference"]: item for item in payload["mismatches"]}
    assert by_reference["refund:8"] == {
        "kind": "duplicate",
        "severity": "P0",
        "reference": "refund:8",
        "direction": "out",
        "currency": "CNY",
        "statement_amount": 16000,
        "platform_amount": 8000,
        "detail": "2 statement line(s), 1 ledger record(s)",
    }
    assert by_reference["refund:4"]["severity"] == "P1"


def test_a_clean_run_sends_completed_only(django_capture_on_commit_callbacks):
    completed, mismatched = [], []
    reconciliation_completed.connect(lambda sender, **p: completed.append(p), weak=False, dispatch_uid="t.c")
    reconciliation_mismatch.connect(lambda sender, **p: mismatched.append(p), weak=False, dispatch_uid="t.m")
    try:
        book("refund:1:settle", 100)
        with django_capture_on_commit_callbacks(execute=True):
            reconciliation_run(date=DAY, source=SOURCE, lines=[line("refund:1:1", 100)])
    finally:
        reconciliation_completed.disconnect(dispatch_uid="t.c")
        reconciliation_mismatch.disconnect(dispatch_uid="t.m")

    assert [(p["status"], p["severity"]) for p in completed] == [("clean", "")]
    assert mismatched == []


def test_matcher_is_pure_and_ignores_what_lies_outside_the_window():
    records = []
    outcome = match(
        day=DAY,
        lines=[line("refund:1:1", 100, days(-9)), line("refund:2:1", 100)],
        records=records,
        tolerance=Tolerance(amount=0, days=1),
    )
    assert [(f.kind, f.reference) for f in outcome.findings] == [("missing_on_platform", "refund:2")]
    with pytest.raises(ValueError):
        Tolerance(amount=-1)


@pytest.mark.django_db(transaction=True)
def test_two_beats_at_once_make_one_effective_run(tolerances):
    book("refund:1:settle", 100)
    with FakeSource(SOURCE) as source:
        source.add(line("refund:1:1", 100))
        barrier = threading.Barrier(2)
        errors = []

        def beat():
            try:
                barrier.wait()
                reconciliation_run(date=DAY, source=SOURCE, replace=False, actor="beat")
            except Exception as exc:  # surfaced below
                errors.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=beat) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert errors == []
    assert Reconciliation.objects.count() == 1
    assert Reconciliation.objects.get().is_current
    assert StatementLine.objects.count() == 1
