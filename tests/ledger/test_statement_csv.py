"""The CSV statement format: good files parse exactly (no float anywhere), bad ones are refused
whole, naming the line and the column."""

from __future__ import annotations

from datetime import date

import pytest

from apps.ledger.reconciliation import IN, OUT, StatementEntry
from apps.ledger.statements import StatementFormatError, parse_statement_csv

HEADER = "line_id,date,reference,amount,currency,direction\n"


def test_good_statement_with_decimal_amounts_and_directions():
    text = (
        HEADER + "L-1,2026-03-10,refund:42:1,199.00,CNY,out\n"
        "L-2,2026-03-10,refund:17,0.01,CNY,IN\n"
        "L-3,2026-03-11,payout:7:1,1500,JPY,debit\n"
        "L-4,2026-03-11,withdrawal:3:1,1.234,KWD,credit\n"
        "L-5,2026-03-11,refund:9:1,+12.5,USD,out\n"
    )

    assert parse_statement_csv(text) == [
        StatementEntry("L-1", date(2026, 3, 10), "refund:42", OUT, 19900, "CNY", "refund:42:1"),
        StatementEntry("L-2", date(2026, 3, 10), "refund:17", IN, 1, "CNY", "refund:17"),
        StatementEntry("L-3", date(2026, 3, 11), "payout:7", OUT, 1500, "JPY", "payout:7:1"),
        StatementEntry("L-4", date(2026, 3, 11), "withdrawal:3", IN, 1234, "KWD", "withdrawal:3:1"),
        StatementEntry("L-5", date(2026, 3, 11), "refund:9", OUT, 1250, "USD", "refund:9:1"),
    ]


def test_signed_minor_units_without_direction_bom_crlf_extra_columns_and_any_column_order():
    text = (
        "\ufeffCurrency,Amount_Minor,Reference,Date,Line_ID,Memo\r\n"
        "CNY,-19900,refund:42:1,2026-03-10,L-1,customer refund\r\n"
        'CNY,500,refund:42:1,2026-03-12,L-2,"returned, account closed"\r\n'
    )

    assert parse_statement_csv(text.encode("utf-8")) == [
        StatementEntry("L-1", date(2026, 3, 10), "refund:42", OUT, 19900, "CNY", "refund:42:1"),
        StatementEntry("L-2", date(2026, 3, 12), "refund:42", IN, 500, "CNY", "refund:42:1"),
    ]


def test_header_only_is_an_empty_statement():
    assert parse_statement_csv(HEADER) == []


def test_decimal_amounts_convert_exactly():
    # int(float("0.29") * 100) is 28: the parser never goes through float.
    text = HEADER + "L-1,2026-03-10,refund:1:1,0.29,CNY,out\nL-2,2026-03-10,refund:2:1,9999999999999.99,CNY,out\n"
    assert [entry.amount for entry in parse_statement_csv(text)] == [29, 999999999999999]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("L-1,2026-03-10,refund:1:1,199.001,CNY,out", "amount: CNY has 2 decimal place(s)."),
        ("L-1,2026-03-10,refund:1:1,10.5,JPY,out", "amount: JPY has 0 decimal place(s)."),
        ("L-1,2026-03-10,refund:1:1,1e3,CNY,out", "amount: must be a decimal number such as 199.00."),
        ("L-1,2026-03-10,refund:1:1,NaN,CNY,out", "amount: must be a decimal number such as 199.00."),
        ("L-1,2026-03-10,refund:1:1,1,234.00,CNY,out", "more values than columns in the header."),
        ("L-1,2026-03-10,refund:1:1,0.00,CNY,out", "amount: must not be zero."),
        ("L-1,2026-03-10,refund:1:1,-5.00,CNY,out", "amount: must be positive when a direction is given."),
        ("L-1,2026-03-10,refund:1:1,5.00,usd,out", "currency: must be a supported ISO 4217 code in upper case."),
        ("L-1,2026-03-10,refund:1:1,5.00,XXX,out", "currency: must be a supported ISO 4217 code in upper case."),
        ("L-1,2026-03-10,refund:1:1,5.00,CNY,sideways", "direction: must be out or in."),
        ("L-1,10/03/2026,refund:1:1,5.00,CNY,out", "date: must be a date as YYYY-MM-DD."),
        ("L-1,2026-02-30,refund:1:1,5.00,CNY,out", "date: must be a date as YYYY-MM-DD."),
        ("L-1,2026-03-10,,5.00,CNY,out", "reference: required."),
        (",2026-03-10,refund:1:1,5.00,CNY,out", "line_id: required."),
        (f"{'x' * 129},2026-03-10,refund:1:1,5.00,CNY,out", "line_id: at most 128 characters."),
        ('L-1,2026-03-10,"refund:1\r\nINJECTED",5.00,CNY,out', "reference: control characters are not allowed."),
        ("L-1,2026-03-10,refund:1:1,99999999999999999.00,CNY,out", "amount: at most 1000000000000000 minor units."),
    ],
)
def test_bad_line_is_refused_naming_line_and_column(row, message):
    with pytest.raises(StatementFormatError) as caught:
        parse_statement_csv(HEADER + "L-0,2026-03-10,refund:9:1,1.00,CNY,out\n" + row + "\n")

    assert message in caught.value.errors["line 3"]
    assert list(caught.value.errors) == ["line 3"]


def test_repeated_line_id_is_refused():
    text = HEADER + "L-1,2026-03-10,refund:1:1,1.00,CNY,out\nL-1,2026-03-10,refund:1:1,1.00,CNY,out\n"
    with pytest.raises(StatementFormatError) as caught:
        parse_statement_csv(text)
    assert caught.value.errors == {"line 3": ["line_id: repeats line 2."]}


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("", "header", "Missing."),
        ("line_id,date,reference,currency,direction\n", "header", "exactly one of amount"),
        ("line_id,date,reference,amount,amount_minor,currency\n", "header", "exactly one of amount"),
        ("line_id,reference,amount,currency\n", "header", "date: missing."),
        ("line_id,date,Date,reference,amount,currency\n", "header", "date: repeated."),
    ],
)
def test_bad_header_is_refused(text, where, message):
    with pytest.raises(StatementFormatError) as caught:
        parse_statement_csv(text)
    assert any(message in problem for problem in caught.value.errors[where])


def test_not_utf8_and_broken_quoting_are_refused():
    with pytest.raises(StatementFormatError) as caught:
        parse_statement_csv((HEADER + "L-1,2026-03-10,退款,1.00,CNY,out\n").encode("gb18030"))
    assert caught.value.errors == {"statement": ["Not valid UTF-8."]}

    with pytest.raises(StatementFormatError, match="not valid CSV"):
        parse_statement_csv(HEADER + 'L-1,2026-03-10,"refund:1:1"x,1.00,CNY,out\n')


def test_many_bad_lines_report_at_most_twenty():
    text = HEADER + "".join(f"L-{n},2026-03-10,refund:1:1,abc,CNY,out\n" for n in range(100))
    with pytest.raises(StatementFormatError) as caught:
        parse_statement_csv(text)
    assert len(caught.value.errors) == 20
