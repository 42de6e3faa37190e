"""The posting service: balanced or nothing, once per reference, cached balances that reconcile."""

from __future__ import annotations

import pytest

from apps.ledger.models import LedgerAccount, LedgerEntry, LedgerTransaction
from apps.ledger.selectors import ledger_balance_from_entries, ledger_balance_get, ledger_unbalanced_transactions
from apps.ledger.services import (
    LedgerReferenceConflictError,
    Line,
    UnbalancedTransactionError,
    ledger_account_get_or_create,
    ledger_post,
)

pytestmark = pytest.mark.django_db

Kind = LedgerAccount.Kind


@pytest.fixture
def accounts(db):
    return {
        "cash_cny": ledger_account_get_or_create(owner="platform", kind=Kind.CASH_CLEARING, currency="CNY"),
        "payable_cny": ledger_account_get_or_create(owner="merchant:1", kind=Kind.MERCHANT_PAYABLE, currency="CNY"),
        "fees_cny": ledger_account_get_or_create(owner="platform", kind=Kind.PLATFORM_FEES, currency="CNY"),
        "cash_usd": ledger_account_get_or_create(owner="platform", kind=Kind.CASH_CLEARING, currency="USD"),
        "payable_usd": ledger_account_get_or_create(owner="merchant:1", kind=Kind.MERCHANT_PAYABLE, currency="USD"),
    }


def _counts() -> tuple[int, int]:
    return LedgerTransaction.objects.count(), LedgerEntry.objects.count()


def _balances() -> dict[int, int]:
    return dict(LedgerAccount.objects.values_list("pk", "balance"))


def _assert_reconciled() -> None:
    for account in LedgerAccount.objects.all():
        assert account.balance == ledger_balance_from_entries(account=account), account
    assert list(ledger_unbalanced_transactions()) == []


def test_balanced_posting_writes_one_transaction_n_entries_and_bumps_balances(accounts):
    txn = ledger_post(
        reference="order:1:capture",
        kind="order_capture",
        lines=[
            Line(accounts["cash_cny"], 19900),
            Line(accounts["payable_cny"], -19000),
            Line(accounts["fees_cny"], -900),
        ],
        description="capture",
    )

    assert _counts() == (1, 3)
    assert txn.reference == "order:1:capture"
    assert txn.kind == "order_capture"
    stored = sorted(txn.entries.values_list("account_id", "amount", "currency"))
    assert stored == sorted(
        [
            (accounts["cash_cny"].pk, 19900, "CNY"),
            (accounts["payable_cny"].pk, -19000, "CNY"),
            (accounts["fees_cny"].pk, -900, "CNY"),
        ]
    )
    assert ledger_balance_get(owner="platform", kind=Kind.CASH_CLEARING, currency="CNY") == 19900
    assert ledger_balance_get(owner="merchant:1", kind=Kind.MERCHANT_PAYABLE, currency="CNY") == -19000
    assert ledger_balance_get(owner="platform", kind=Kind.PLATFORM_FEES, currency="CNY") == -900
    # Untouched accounts stay at zero.
    assert ledger_balance_get(owner="platform", kind=Kind.CASH_CLEARING, currency="USD") == 0
    _assert_reconciled()


def test_successive_postings_accumulate_balances(accounts):
    ledger_post(reference="t1", kind="k", lines=[Line(accounts["cash_cny"], 100), Line(accounts["payable_cny"], -100)])
    ledger_post(reference="t2", kind="k", lines=[Line(accounts["cash_cny"], 250), Line(accounts["payable_cny"], -250)])
    ledger_post(reference="t3", kind="k", lines=[Line(accounts["payable_cny"], 50), Line(accounts["cash_cny"], -50)])

    assert _counts() == (3, 6)
    accounts["cash_cny"].refresh_from_db()
    accounts["payable_cny"].refresh_from_db()
    assert accounts["cash_cny"].balance == 300
    assert accounts["payable_cny"].balance == -300
    _assert_reconciled()


def test_same_account_on_both_sides_nets_to_zero_balance(accounts):
    ledger_post(reference="self", kind="k", lines=[Line(accounts["cash_cny"], 70), Line(accounts["cash_cny"], -70)])

    assert _counts() == (1, 2)
    accounts["cash_cny"].refresh_from_db()
    assert accounts["cash_cny"].balance == 0
    _assert_reconciled()


@pytest.mark.parametrize(
    ("build", "error"),
    [
        pytest.param(
            lambda a: [Line(a["cash_cny"], 100), Line(a["payable_cny"], -99)],
            UnbalancedTransactionError,
            id="sum-not-zero",
        ),
        pytest.param(lambda a: [Line(a["cash_cny"], 100)], UnbalancedTransactionError, id="single-line"),
        pytest.param(lambda a: [], UnbalancedTransactionError, id="no-lines"),
        pytest.param(
            lambda a: [Line(a["cash_cny"], 0), Line(a["payable_cny"], 0)], UnbalancedTransactionError, id="zero-amounts"
        ),
        pytest.param(
            lambda a: [Line(a["cash_cny"], 100), Line(a["payable_cny"], -100), Line(a["fees_cny"], 0)],
            UnbalancedTransactionError,
            id="one-zero-line-in-balanced",
        ),
        pytest.param(lambda a: [Line(a["cash_cny"], 100.0), Line(a["payable_cny"], -100.0)], TypeError, id="floats"),
        pytest.param(lambda a: [Line(a["cash_cny"], 100), Line(a["payable_cny"], -100.0)], TypeError, id="one-float"),
        pytest.param(lambda a: [Line(a["cash_cny"], True), Line(a["payable_cny"], -1)], TypeError, id="bool"),
        pytest.param(lambda a: [Line(a["cash_cny"], "100"), Line(a["payable_cny"], -100)], TypeError, id="string"),
        pytest.param(
            lambda a: [Line(a["cash_cny"], 100), Line(a["payable_usd"], -100)],
            UnbalancedTransactionError,
            id="mixed-currency-sums-to-zero-overall",
        ),
        pytest.param(
            lambda a: [
                Line(a["cash_cny"], 100),
                Line(a["payable_cny"], -100),
                Line(a["cash_usd"], 5),
                Line(a["payable_usd"], -4),
            ],
            UnbalancedTransactionError,
            id="one-currency-balanced-other-not",
        ),
    ],
)
def test_invalid_posting_is_refused_and_writes_nothing(accounts, build, error):
    ledger_post(
        reference="before", kind="k", lines=[Line(accounts["cash_cny"], 10), Line(accounts["payable_cny"], -10)]
    )
    counts, balances = _counts(), _balances()

    with pytest.raises(error):
        ledger_post(reference="bad", kind="k", lines=build(accounts))

    assert _counts() == counts == (1, 2)
    assert _balances() == balances
    assert not LedgerTransaction.objects.filter(reference="bad").exists()
    _assert_reconciled()


def test_multi_currency_posting_balanced_per_currency_passes(accounts):
    txn = ledger_post(
        reference="fx:1",
        kind="fx",
        lines=[
            Line(accounts["cash_cny"], 7100),
            Line(accounts["payable_cny"], -7100),
            Line(accounts["cash_usd"], 1000),
            Line(accounts["payable_usd"], -1000),
        ],
    )

    assert _counts() == (1, 4)
    per_currency = dict(txn.entries.values_list("currency", "account__currency").distinct())
    assert per_currency == {"CNY": "CNY", "USD": "USD"}
    for account, expected in [
        ("cash_cny", 7100),
        ("payable_cny", -7100),
        ("cash_usd", 1000),
        ("payable_usd", -1000),
    ]:
        accounts[account].refresh_from_db()
        assert accounts[account].balance == expected
    _assert_reconciled()


def test_same_reference_same_lines_returns_stored_transaction_without_new_rows(accounts):
    lines = [Line(accounts["cash_cny"], 500), Line(accounts["payable_cny"], -500)]
    first = ledger_post(reference="order:9:capture", kind="order_capture", lines=lines)
    counts, balances = _counts(), _balances()

    again = ledger_post(reference="order:9:capture", kind="order_capture", lines=lines)
    reordered = ledger_post(reference="order:9:capture", kind="order_capture", lines=list(reversed(lines)))

    assert again.pk == first.pk == reordered.pk
    assert _counts() == counts == (1, 2)
    assert _balances() == balances
    _assert_reconciled()


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda a: [Line(a["cash_cny"], 501), Line(a["payable_cny"], -501)], id="other-amount"),
        pytest.param(lambda a: [Line(a["cash_cny"], 500), Line(a["fees_cny"], -500)], id="other-account"),
        pytest.param(
            lambda a: [Line(a["cash_cny"], 500), Line(a["payable_cny"], -400), Line(a["fees_cny"], -100)],
            id="extra-line",
        ),
        pytest.param(lambda a: [Line(a["cash_usd"], 500), Line(a["payable_usd"], -500)], id="other-currency"),
    ],
)
def test_same_reference_different_lines_raises_conflict_and_writes_nothing(accounts, build):
    first = ledger_post(
        reference="order:9:capture",
        kind="order_capture",
        lines=[Line(accounts["cash_cny"], 500), Line(accounts["payable_cny"], -500)],
    )
    counts, balances = _counts(), _balances()

    with pytest.raises(LedgerReferenceConflictError):
        ledger_post(reference="order:9:capture", kind="order_capture", lines=build(accounts))

    assert _counts() == counts == (1, 2)
    assert _balances() == balances
    assert sorted(first.entries.values_list("amount", flat=True)) == [-500, 500]
    _assert_reconciled()


def test_cached_balance_equals_balance_from_entries_after_many_postings(accounts):
    amounts = [1, 19900, 3, 7_000_000, 42, 10**12]
    for n, amount in enumerate(amounts):
        fee = amount // 10  # 0 for the small amounts: then no fee line
        lines = [Line(accounts["cash_cny"], amount), Line(accounts["payable_cny"], -(amount - fee))]
        if fee:
            lines.append(Line(accounts["fees_cny"], -fee))
        ledger_post(reference=f"cap:{n}", kind="k", lines=lines)
        ledger_post(
            reference=f"usd:{n}",
            kind="k",
            lines=[Line(accounts["payable_usd"], -amount), Line(accounts["cash_usd"], amount)],
        )

    for account in LedgerAccount.objects.all():
        assert account.balance == ledger_balance_from_entries(account=account)
    accounts["cash_cny"].refresh_from_db()
    assert accounts["cash_cny"].balance == sum(amounts)
    accounts["fees_cny"].refresh_from_db()
    assert accounts["fees_cny"].balance == -sum(a // 10 for a in amounts)
    accounts["cash_usd"].refresh_from_db()
    assert accounts["cash_usd"].balance == sum(amounts)
    for currency in ("CNY", "USD"):
        assert sum(LedgerAccount.objects.filter(currency=currency).values_list("balance", flat=True)) == 0
    assert list(ledger_unbalanced_transactions()) == []


def test_balance_from_entries_of_unused_account_is_zero(accounts):
    assert ledger_balance_from_entries(account=accounts["fees_cny"]) == 0
    assert ledger_balance_get(owner="nobody", kind=Kind.LOSSES, currency="CNY") == 0


def test_account_get_or_create_is_idempotent_and_refuses_unknown_kind(db):
    first = ledger_account_get_or_create(owner="merchant:7", kind=Kind.MERCHANT_PAYABLE, currency="CNY")
    second = ledger_account_get_or_create(owner="merchant:7", kind=Kind.MERCHANT_PAYABLE, currency="CNY")
    other_currency = ledger_account_get_or_create(owner="merchant:7", kind=Kind.MERCHANT_PAYABLE, currency="USD")

    assert first.pk == second.pk != other_currency.pk
    assert LedgerAccount.objects.count() == 2
    with pytest.raises(ValueError, match="unknown ledger account kind"):
        ledger_account_get_or_create(owner="merchant:7", kind="piggy_bank", currency="CNY")
    assert LedgerAccount.objects.count() == 2


def test_unbalanced_transactions_selector_is_empty_after_valid_postings(accounts):
    ledger_post(reference="a", kind="k", lines=[Line(accounts["cash_cny"], 1), Line(accounts["payable_cny"], -1)])
    ledger_post(
        reference="b",
        kind="k",
        lines=[
            Line(accounts["cash_usd"], 3),
            Line(accounts["payable_usd"], -2),
            Line(accounts["payable_usd"], -1),
            Line(accounts["cash_cny"], 9),
            Line(accounts["fees_cny"], -9),
        ],
    )

    assert _counts() == (2, 7)
    assert list(ledger_unbalanced_transactions()) == []
