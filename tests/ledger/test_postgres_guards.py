"""The database itself refuses unbalanced transactions (migration 0002) and edits of entries (the
append-only pgtrigger trigger declared on LedgerEntry).

These bypass `ledger_post` on purpose: the triggers exist for writers that skip the service. The
balance check is a DEFERRABLE INITIALLY DEFERRED constraint trigger, so it fires at COMMIT; those
tests need real transactions (`transaction=True`).
"""

from __future__ import annotations

import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction

from apps.common.dbguards import REFUSED
from apps.ledger.models import LedgerAccount, LedgerEntry, LedgerTransaction
from apps.ledger.services import Line, ledger_account_get_or_create, ledger_post

pytestmark = pytest.mark.postgres

Kind = LedgerAccount.Kind


@pytest.fixture
def cash():
    return ledger_account_get_or_create(owner="platform", kind=Kind.CASH_CLEARING, currency="CNY")


@pytest.fixture
def payable():
    return ledger_account_get_or_create(owner="merchant:1", kind=Kind.MERCHANT_PAYABLE, currency="CNY")


@pytest.fixture
def cash_usd():
    return ledger_account_get_or_create(owner="platform", kind=Kind.CASH_CLEARING, currency="USD")


def _entry(txn, account, amount, currency=None):
    return LedgerEntry(transaction=txn, account=account, amount=amount, currency=currency or account.currency)


def _counts() -> tuple[int, int]:
    return LedgerTransaction.objects.count(), LedgerEntry.objects.count()


@pytest.mark.django_db(transaction=True)
def test_unbalanced_direct_insert_fails_at_commit_and_leaves_nothing(cash, payable):
    seen_before_commit = []

    def write():
        with transaction.atomic():
            txn = LedgerTransaction.objects.create(reference="direct:1", kind="bypass")
            LedgerEntry.objects.bulk_create([_entry(txn, cash, 100), _entry(txn, payable, -99)])
            seen_before_commit.append(LedgerEntry.objects.filter(transaction=txn).count())

    with pytest.raises(IntegrityError, match="unbalanced"):
        write()

    # Deferred: inside the transaction the rows were there; only COMMIT refused them.
    assert seen_before_commit == [2]
    assert _counts() == (0, 0)


@pytest.mark.django_db(transaction=True)
def test_single_unbalanced_entry_in_autocommit_is_refused(cash):
    txn = LedgerTransaction.objects.create(reference="direct:2", kind="bypass")

    with pytest.raises(IntegrityError, match="unbalanced"):
        LedgerEntry.objects.create(transaction=txn, account=cash, amount=500, currency="CNY")

    assert LedgerEntry.objects.count() == 0
    assert LedgerTransaction.objects.filter(reference="direct:2").count() == 1  # committed on its own, no entries


@pytest.mark.django_db(transaction=True)
def test_balanced_overall_but_not_per_currency_is_refused_at_commit(cash, cash_usd):
    def write():
        with transaction.atomic():
            txn = LedgerTransaction.objects.create(reference="direct:3", kind="bypass")
            LedgerEntry.objects.bulk_create([_entry(txn, cash, 100), _entry(txn, cash_usd, -100)])

    with pytest.raises(IntegrityError, match="unbalanced"):
        write()

    assert _counts() == (0, 0)


@pytest.mark.django_db(transaction=True)
def test_appending_an_unbalancing_entry_to_a_committed_transaction_is_refused(cash, payable):
    txn = ledger_post(reference="order:1:capture", kind="order_capture", lines=[Line(cash, 300), Line(payable, -300)])
    assert _counts() == (1, 2)

    with pytest.raises(IntegrityError, match="unbalanced"), transaction.atomic():
        LedgerEntry.objects.create(transaction=txn, account=cash, amount=1, currency="CNY")

    assert _counts() == (1, 2)
    assert sorted(LedgerEntry.objects.values_list("amount", flat=True)) == [-300, 300]


@pytest.mark.django_db(transaction=True)
def test_balanced_direct_inserts_commit(cash, payable, cash_usd):
    usd_payable = ledger_account_get_or_create(owner="merchant:1", kind=Kind.MERCHANT_PAYABLE, currency="USD")
    with transaction.atomic():
        txn = LedgerTransaction.objects.create(reference="direct:ok", kind="bypass")
        LedgerEntry.objects.bulk_create(
            [
                _entry(txn, cash, 700),
                _entry(txn, payable, -300),
                _entry(txn, payable, -400),
                _entry(txn, cash_usd, 9),
                _entry(txn, usd_payable, -9),
            ]
        )

    assert _counts() == (1, 5)
    assert sorted(LedgerEntry.objects.filter(currency="CNY").values_list("amount", flat=True)) == [-400, -300, 700]


@pytest.mark.django_db(transaction=True)
def test_immediate_constraint_mode_refuses_at_the_statement(cash):
    """`SET CONSTRAINTS ALL IMMEDIATE` makes the same trigger fire per statement."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        txn = LedgerTransaction.objects.create(reference="direct:4", kind="bypass")
        with pytest.raises(IntegrityError, match="unbalanced"), transaction.atomic():
            LedgerEntry.objects.create(transaction=txn, account=cash, amount=5, currency="CNY")
        # Refused at the INSERT itself, so the transaction can go on and commit without it.
        assert LedgerEntry.objects.count() == 0

    assert _counts() == (1, 0)


@pytest.fixture
def posted(cash, payable):
    return ledger_post(
        reference="order:7:capture", kind="order_capture", lines=[Line(cash, 1990), Line(payable, -1990)]
    )


@pytest.mark.django_db
def test_update_of_an_entry_is_refused_by_the_database(posted):
    entry = posted.entries.get(amount=1990)

    with pytest.raises(DatabaseError, match=REFUSED), transaction.atomic():
        LedgerEntry.objects.filter(pk=entry.pk).update(amount=1)
    entry.amount = 2000
    with pytest.raises(DatabaseError, match=REFUSED), transaction.atomic():
        entry.save()
    with pytest.raises(DatabaseError, match=REFUSED), transaction.atomic():
        LedgerEntry.objects.filter(transaction=posted).update(amount=5)

    assert sorted(LedgerEntry.objects.values_list("amount", flat=True)) == [-1990, 1990]


@pytest.mark.django_db
def test_delete_of_an_entry_is_refused_by_the_database(posted):
    entry = posted.entries.get(amount=-1990)

    with pytest.raises(DatabaseError, match=REFUSED), transaction.atomic():
        LedgerEntry.objects.filter(pk=entry.pk).delete()
    with pytest.raises(DatabaseError, match=REFUSED), transaction.atomic():
        entry.delete()
    with pytest.raises(DatabaseError, match=REFUSED), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM ledger_ledgerentry")

    assert _counts() == (1, 2)
    assert sorted(LedgerEntry.objects.values_list("amount", flat=True)) == [-1990, 1990]


@pytest.mark.django_db(transaction=True)
def test_update_and_delete_refused_after_commit_too(posted):
    """Outside any test transaction: the committed rows stay exactly as posted."""
    with pytest.raises(DatabaseError, match=REFUSED):
        LedgerEntry.objects.update(amount=1)
    with pytest.raises(DatabaseError, match=REFUSED):
        LedgerEntry.objects.all().delete()

    assert _counts() == (1, 2)
    assert sorted(LedgerEntry.objects.values_list("amount", flat=True)) == [-1990, 1990]
