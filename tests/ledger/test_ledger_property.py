"""Property: whatever sequence of postings arrives, the ledger stays balanced and reconciled (G9, ledger part).

A hypothesis state machine posts random transactions over a small set of accounts in two currencies
(JPY has exponent 0, CNY 2, to catch any "unit" confusion), some deliberately unbalanced, zero or
repeated. A plain-Python model predicts which postings the service must accept; after every step
the stored rows must match the model and the ledger invariants must hold. Each example runs in a
savepoint that is rolled back, so examples never see each other's rows (entries cannot be deleted on
PostgreSQL: the append-only trigger refuses it).
"""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest
from django.db import transaction
from django.db.models import F, Sum
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from apps.ledger.models import LedgerAccount, LedgerEntry, LedgerTransaction
from apps.ledger.services import (
    LedgerReferenceConflictError,
    Line,
    UnbalancedTransactionError,
    ledger_account_get_or_create,
    ledger_post,
)

pytestmark = pytest.mark.django_db

CURRENCIES = ("CNY", "JPY")
_ACCOUNT_SPECS = [
    ("platform", LedgerAccount.Kind.CASH_CLEARING),
    ("platform", LedgerAccount.Kind.PLATFORM_FEES),
    ("merchant:1", LedgerAccount.Kind.MERCHANT_PAYABLE),
    ("merchant:2", LedgerAccount.Kind.MERCHANT_PAYABLE),
]
# (spec index, currency) pairs: 8 accounts, 4 per currency.
ACCOUNT_KEYS = [(i, currency) for currency in CURRENCIES for i in range(len(_ACCOUNT_SPECS))]

MAX_AMOUNT = 10**12
amounts = st.integers(min_value=-MAX_AMOUNT, max_value=MAX_AMOUNT)
nonzero_amounts = amounts.filter(bool)
account_indexes = st.sampled_from(range(len(ACCOUNT_KEYS)))
raw_lines = st.lists(st.tuples(account_indexes, amounts), min_size=0, max_size=6)
balanced_seed_lines = st.lists(st.tuples(account_indexes, nonzero_amounts), min_size=1, max_size=5)


def _balanced(seed: list[tuple[int, int]], choose) -> list[tuple[int, int]]:
    """`seed` plus one balancing line per currency, on the account `choose(candidates)` picks."""
    lines = list(seed)
    sums: dict[str, int] = defaultdict(int)
    for index, amount in lines:
        sums[ACCOUNT_KEYS[index][1]] += amount
    for currency, total in sorted(sums.items()):
        if total:
            candidates = [i for i, key in enumerate(ACCOUNT_KEYS) if key[1] == currency]
            lines.append((choose(candidates), -total))
    return lines


def _expected_valid(lines: list[tuple[int, int]]) -> bool:
    if len(lines) < 2 or any(amount == 0 for _, amount in lines):
        return False
    sums: dict[str, int] = defaultdict(int)
    for index, amount in lines:
        sums[ACCOUNT_KEYS[index][1]] += amount
    return all(total == 0 for total in sums.values())


class LedgerMachine(RuleBasedStateMachine):
    accounts: list[LedgerAccount] = []  # set per test run, before the machine is built

    posted = Bundle("posted")

    def __init__(self) -> None:
        super().__init__()
        self._atomic = transaction.atomic()
        self._atomic.__enter__()
        self.counter = 0
        # The model: what must be stored.
        self.transactions: dict[str, list[tuple[int, int]]] = {}
        self.balances: dict[int, int] = {account.pk: 0 for account in self.accounts}
        assert LedgerTransaction.objects.count() == 0
        assert LedgerEntry.objects.count() == 0
        assert set(LedgerAccount.objects.values_list("balance", flat=True)) == {0}

    def teardown(self) -> None:
        transaction.set_rollback(True)
        self._atomic.__exit__(None, None, None)

    # --- helpers -------------------------------------------------------------------------------

    def _lines(self, lines: list[tuple[int, int]]) -> list[Line]:
        return [Line(self.accounts[index], amount) for index, amount in lines]

    def _rows(self) -> tuple[int, int]:
        return LedgerTransaction.objects.count(), LedgerEntry.objects.count()

    def _model_rows(self) -> tuple[int, int]:
        return len(self.transactions), sum(len(lines) for lines in self.transactions.values())

    def _post_expecting(self, reference: str, lines: list[tuple[int, int]], *, valid: bool, conflict: bool = False):
        before = self._rows()
        balances_before = dict(LedgerAccount.objects.values_list("pk", "balance"))
        if valid and not conflict:
            txn = ledger_post(reference=reference, kind="prop", lines=self._lines(lines))
            assert txn.reference == reference
            return txn
        expected_error = LedgerReferenceConflictError if valid else (UnbalancedTransactionError, TypeError)
        with pytest.raises(expected_error):
            ledger_post(reference=reference, kind="prop", lines=self._lines(lines))
        assert self._rows() == before, "a refused posting wrote rows"
        assert dict(LedgerAccount.objects.values_list("pk", "balance")) == balances_before
        return None

    def _record(self, reference: str, lines: list[tuple[int, int]]) -> None:
        self.transactions[reference] = lines
        for index, amount in lines:
            self.balances[self.accounts[index].pk] += amount

    # --- rules ---------------------------------------------------------------------------------

    @rule(target=posted, seed=balanced_seed_lines, balancers=st.data())
    def post_balanced(self, seed, balancers):
        """Random lines, then one balancing line per currency on a random account of that currency."""
        lines = _balanced(seed, lambda candidates: balancers.draw(st.sampled_from(candidates)))
        assert _expected_valid(lines)
        self.counter += 1
        reference = f"bal:{self.counter}"
        self._post_expecting(reference, lines, valid=True)
        self._record(reference, lines)
        return reference

    @rule(lines=raw_lines)
    def post_random(self, lines):
        """Arbitrary lines: mostly unbalanced, sometimes zero, single or (rarely) balanced."""
        self.counter += 1
        reference = f"raw:{self.counter}"
        valid = _expected_valid(lines)
        self._post_expecting(reference, lines, valid=valid)
        if valid:
            self._record(reference, lines)

    @rule(seed=balanced_seed_lines, index=st.integers(0, 10), delta=nonzero_amounts)
    def post_unbalanced_by_one_line(self, seed, index, delta):
        """A balanced posting with one amount nudged by a non-zero delta: always refused."""
        lines = _balanced(seed, lambda candidates: candidates[0])
        position = index % len(lines)
        account_index, amount = lines[position]
        lines[position] = (account_index, amount + delta)
        assert not _expected_valid(lines)
        self.counter += 1
        self._post_expecting(f"nudged:{self.counter}", lines, valid=False)

    @rule(lines=st.lists(st.tuples(account_indexes, st.sampled_from([1.0, True, -1.5, "1"])), min_size=2, max_size=3))
    def post_non_int(self, lines):
        """Floats, bools and strings are refused whatever they sum to."""
        self.counter += 1
        self._post_expecting(f"nonint:{self.counter}", lines, valid=False)

    @rule(reference=posted, shuffle=st.randoms(use_true_random=False))
    def repost_same(self, reference, shuffle):
        lines = list(self.transactions[reference])
        shuffle.shuffle(lines)
        before = self._rows()
        balances_before = dict(LedgerAccount.objects.values_list("pk", "balance"))
        txn = ledger_post(reference=reference, kind="prop", lines=self._lines(lines))
        assert txn.pk == LedgerTransaction.objects.get(reference=reference).pk
        assert self._rows() == before
        assert dict(LedgerAccount.objects.values_list("pk", "balance")) == balances_before

    @rule(reference=posted, seed=balanced_seed_lines)
    def repost_different(self, reference, seed):
        lines = _balanced(seed, lambda candidates: candidates[0])
        if Counter(lines) == Counter(self.transactions[reference]):
            return  # happened to draw the very same lines: that is repost_same
        self._post_expecting(reference, lines, valid=True, conflict=True)

    # --- invariants ----------------------------------------------------------------------------

    @invariant()
    def rows_match_model(self):
        assert self._rows() == self._model_rows()
        stored = set(LedgerTransaction.objects.values_list("reference", flat=True))
        assert stored == set(self.transactions)

    @invariant()
    def every_transaction_sums_to_zero_per_currency(self):
        totals = LedgerEntry.objects.values("transaction_id", "currency").annotate(total=Sum("amount"))
        assert [row for row in totals if row["total"] != 0] == []
        # Entry currency is always its account's currency.
        assert not LedgerEntry.objects.exclude(currency=F("account__currency")).exists()

    @invariant()
    def cached_balances_equal_entries_and_model(self):
        from_entries = dict(LedgerEntry.objects.values_list("account_id").annotate(total=Sum("amount")))
        for account_id, balance in LedgerAccount.objects.values_list("pk", "balance"):
            assert balance == from_entries.get(account_id, 0)
            assert balance == self.balances[account_id]

    @invariant()
    def balances_sum_to_zero_per_currency(self):
        per_currency = dict(LedgerAccount.objects.values_list("currency").annotate(total=Sum("balance")).order_by())
        assert per_currency == {currency: 0 for currency in CURRENCIES}


def test_ledger_stays_balanced_under_random_postings(db):
    LedgerMachine.accounts = [
        ledger_account_get_or_create(owner=_ACCOUNT_SPECS[i][0], kind=_ACCOUNT_SPECS[i][1], currency=currency)
        for i, currency in ACCOUNT_KEYS
    ]
    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(
            max_examples=120,
            stateful_step_count=30,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        ),
    )
