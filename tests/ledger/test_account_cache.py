"""The per-process account id cache: ids only from committed rows, and a dead or reused id never
books money to the wrong place (it is noticed by primary key, evicted and resolved again)."""

from __future__ import annotations

import pytest
from django.db import transaction

from apps.ledger import services
from apps.ledger.models import LedgerAccount, LedgerEntry, LedgerTransaction
from apps.ledger.selectors import ledger_balance_from_entries
from apps.ledger.services import LedgerReferenceConflictError, Line, ledger_account_get_or_create, ledger_post

pytestmark = pytest.mark.postgres

Kind = LedgerAccount.Kind
CASH = ("platform", Kind.CASH_CLEARING, "CNY")
PAYABLE = ("merchant:1", Kind.MERCHANT_PAYABLE, "CNY")


@pytest.fixture(autouse=True)
def _empty_cache():
    services.ledger_account_cache_clear()
    yield
    services.ledger_account_cache_clear()


def _account(key: tuple[str, str, str]) -> LedgerAccount:
    owner, kind, currency = key
    return ledger_account_get_or_create(owner=owner, kind=kind, currency=currency)


def _assert_reconciled() -> None:
    for account in LedgerAccount.objects.all():
        assert account.balance == ledger_balance_from_entries(account=account), account


@pytest.mark.django_db(transaction=True)
def test_an_id_is_cached_after_commit_and_then_served_without_a_query(django_assert_num_queries):
    with transaction.atomic():
        created = _account(CASH)
        assert services._ACCOUNT_IDS == {}  # not before the row is committed
    assert services._ACCOUNT_IDS.get(CASH) == created.pk

    with django_assert_num_queries(0):
        cached = _account(CASH)
    assert cached.pk == created.pk
    assert (cached.owner, cached.kind, cached.currency) == CASH
    LedgerAccount.objects.filter(pk=created.pk).update(balance=5)
    assert cached.balance == 5  # deferred: read from the database, never from the cache


@pytest.mark.django_db(transaction=True)
def test_an_id_from_a_rolled_back_transaction_is_never_cached():
    with transaction.atomic():
        _account(CASH)
        transaction.set_rollback(True)

    assert services._ACCOUNT_IDS == {}
    assert not LedgerAccount.objects.exists()


@pytest.mark.django_db
def test_a_dead_cached_id_is_evicted_and_the_posting_lands_on_the_real_account():
    cash, payable = _account(CASH), _account(PAYABLE)
    services._ACCOUNT_IDS[CASH] = cash.pk + 10_000  # as after a flush: the id has no row
    stale = _account(CASH)

    ledger_post(reference="t1", kind="k", lines=[Line(stale, 300), Line(payable, -300)])

    assert CASH not in services._ACCOUNT_IDS
    assert sorted(LedgerEntry.objects.values_list("account_id", "amount")) == sorted(
        [(cash.pk, 300), (payable.pk, -300)]
    )
    cash.refresh_from_db()
    assert cash.balance == 300
    _assert_reconciled()


@pytest.mark.django_db
def test_a_cached_id_reused_by_another_account_books_nothing_to_that_account():
    cash, payable = _account(CASH), _account(PAYABLE)
    fees = _account(("platform", Kind.PLATFORM_FEES, "CNY"))
    services._ACCOUNT_IDS[CASH] = fees.pk  # as after a reset sequence: the id is someone else's

    ledger_post(reference="t1", kind="k", lines=[Line(_account(CASH), 300), Line(payable, -300)])

    fees.refresh_from_db()
    cash.refresh_from_db()
    assert (fees.balance, cash.balance) == (0, 300)
    assert not LedgerEntry.objects.filter(account=fees).exists()
    _assert_reconciled()


@pytest.mark.django_db
def test_a_cached_id_reused_by_the_other_account_of_the_same_posting_never_nets_the_two_lines():
    cash, payable = _account(CASH), _account(PAYABLE)
    services._ACCOUNT_IDS[CASH] = payable.pk  # the dead id now belongs to the posting's other account

    ledger_post(reference="t1", kind="k", lines=[Line(_account(CASH), 300), Line(payable, -300)])

    cash.refresh_from_db()
    payable.refresh_from_db()
    assert (cash.balance, payable.balance) == (300, -300)
    assert sorted(LedgerEntry.objects.values_list("account_id", "amount")) == sorted(
        [(cash.pk, 300), (payable.pk, -300)]
    )
    _assert_reconciled()


@pytest.mark.django_db
def test_a_repeat_through_a_dead_cached_id_is_still_the_same_posting_and_a_change_still_conflicts():
    cash, payable = _account(CASH), _account(PAYABLE)
    first = ledger_post(reference="t1", kind="k", lines=[Line(cash, 300), Line(payable, -300)])
    services._ACCOUNT_IDS[CASH] = cash.pk + 10_000
    stale = _account(CASH)

    again = ledger_post(reference="t1", kind="k", lines=[Line(stale, 300), Line(payable, -300)])
    with pytest.raises(LedgerReferenceConflictError):
        ledger_post(reference="t1", kind="k", lines=[Line(stale, 301), Line(payable, -301)])

    assert again.pk == first.pk
    assert (LedgerTransaction.objects.count(), LedgerEntry.objects.count()) == (1, 2)
    cash.refresh_from_db()
    assert cash.balance == 300
    _assert_reconciled()
