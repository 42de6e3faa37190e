"""order_create records the order and posts its capture to the ledger, in one transaction."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from apps.accounts.models import BankAccount
from apps.common.errors import ConflictError, ServiceError
from apps.ledger.models import LedgerAccount, LedgerEntry, LedgerTransaction
from apps.ledger.selectors import ledger_balance_from_entries, ledger_balance_get, ledger_unbalanced_transactions
from apps.orders.models import Order, UsageEvent
from apps.orders.selectors import usage_summary
from apps.orders.services import order_create, usage_record
from tests.factories import CustomerFactory, OrderFactory, ProductFactory

pytestmark = pytest.mark.django_db

Kind = LedgerAccount.Kind


@pytest.fixture
def customer(merchant):
    return CustomerFactory(merchant=merchant, external_id="c-1")


@pytest.fixture
def product(merchant):
    return ProductFactory(merchant=merchant, sku="ppt", price=19900, currency="CNY")


def _order(merchant, *, external_id="o-1", customer_external_id="c-1", sku="ppt", amount=19900, currency="CNY", **kw):
    return order_create(
        merchant=merchant,
        external_id=external_id,
        customer_external_id=customer_external_id,
        product_sku=sku,
        amount=amount,
        currency=currency,
        paid_at=kw.pop("paid_at", timezone.now() - dt.timedelta(minutes=5)),
        payment_method=kw.pop("payment_method", "card"),
        **kw,
    )


def _ledger_counts() -> tuple[int, int, int]:
    return LedgerTransaction.objects.count(), LedgerEntry.objects.count(), LedgerAccount.objects.count()


def _cash(currency="CNY") -> int:
    return ledger_balance_get(owner="platform", kind=Kind.CASH_CLEARING, currency=currency)


def _payable(merchant, currency="CNY") -> int:
    return ledger_balance_get(owner=f"merchant:{merchant.pk}", kind=Kind.MERCHANT_PAYABLE, currency=currency)


def test_order_create_posts_exactly_one_capture_transaction(merchant, customer, product):
    order = _order(merchant, amount=19900)

    assert Order.objects.count() == 1
    assert LedgerTransaction.objects.count() == 1
    txn = LedgerTransaction.objects.get()
    assert txn.reference == f"order:{order.pk}:capture"
    assert txn.kind == "order_capture"
    entries = {
        (entry.account.owner, entry.account.kind, entry.currency): entry.amount
        for entry in txn.entries.select_related("account")
    }
    assert entries == {
        ("platform", Kind.CASH_CLEARING, "CNY"): 19900,
        (f"merchant:{merchant.pk}", Kind.MERCHANT_PAYABLE, "CNY"): -19900,
    }
    assert LedgerEntry.objects.count() == 2
    assert _cash() == 19900
    assert _payable(merchant) == -19900
    assert list(ledger_unbalanced_transactions()) == []


def test_captured_amount_is_the_order_amount_not_the_product_price(merchant, customer, product):
    _order(merchant, amount=9900)  # a discounted sale of a 199.00 product

    assert _cash() == 9900
    assert _payable(merchant) == -9900


def test_two_orders_accumulate_balances(merchant, customer, product):
    first = _order(merchant, external_id="o-1", amount=19900)
    second = _order(merchant, external_id="o-2", amount=5001)

    assert set(LedgerTransaction.objects.values_list("reference", flat=True)) == {
        f"order:{first.pk}:capture",
        f"order:{second.pk}:capture",
    }
    assert LedgerEntry.objects.count() == 4
    assert LedgerAccount.objects.count() == 2  # the same two accounts, reused
    assert _cash() == 24901
    assert _payable(merchant) == -24901
    for account in LedgerAccount.objects.all():
        assert account.balance == ledger_balance_from_entries(account=account)


def test_orders_of_two_merchants_share_platform_cash_but_not_payables(merchant, other_merchant, customer, product):
    CustomerFactory(merchant=other_merchant, external_id="c-1")
    ProductFactory(merchant=other_merchant, sku="ppt", price=3000, currency="CNY")

    _order(merchant, amount=19900)
    _order(other_merchant, amount=3000)

    assert _cash() == 22900
    assert _payable(merchant) == -19900
    assert _payable(other_merchant) == -3000
    assert LedgerTransaction.objects.count() == 2


def test_orders_in_two_currencies_post_to_separate_accounts(merchant, customer, product):
    ProductFactory(merchant=merchant, sku="jp", price=1500, currency="JPY")

    _order(merchant, external_id="o-1", amount=19900)
    _order(merchant, external_id="o-2", sku="jp", amount=1500, currency="JPY")

    assert _cash("CNY") == 19900
    assert _cash("JPY") == 1500
    assert _payable(merchant, "CNY") == -19900
    assert _payable(merchant, "JPY") == -1500
    assert LedgerAccount.objects.count() == 4


def test_duplicate_external_id_is_a_conflict_and_leaves_no_ledger_rows(merchant, customer, product):
    _order(merchant, external_id="o-1", amount=19900)
    ledger_before = _ledger_counts()
    assert ledger_before == (1, 2, 2)

    with pytest.raises(ConflictError) as excinfo:
        _order(
            merchant,
            external_id="o-1",
            amount=5000,
            payer_account={"holder_name": "王小明", "bank": "ICBC", "account_number": "6222020000001234"},
        )

    assert excinfo.value.code == "duplicate_external_id"
    assert Order.objects.count() == 1
    assert _ledger_counts() == ledger_before
    assert BankAccount.objects.count() == 0  # the payer account of the refused order was rolled back too
    assert _cash() == 19900
    assert _payable(merchant) == -19900


def test_refused_order_on_first_attempt_writes_no_ledger_accounts_either(merchant, customer, product):
    with pytest.raises(ServiceError) as excinfo:
        _order(merchant, sku="unknown")
    with pytest.raises(ServiceError):
        _order(merchant, currency="USD")
    with pytest.raises(ServiceError):
        _order(merchant, paid_at=timezone.now() + dt.timedelta(hours=1))

    assert "product" in excinfo.value.fields
    assert Order.objects.count() == 0
    assert _ledger_counts() == (0, 0, 0)


def test_same_external_id_at_another_merchant_is_a_separate_order(merchant, other_merchant, customer, product):
    CustomerFactory(merchant=other_merchant, external_id="c-1")
    ProductFactory(merchant=other_merchant, sku="ppt", price=19900, currency="CNY")

    _order(merchant, external_id="o-1")
    _order(other_merchant, external_id="o-1")

    assert Order.objects.count() == 2
    assert LedgerTransaction.objects.count() == 2


def test_payer_account_is_stored_encrypted_and_linked(merchant, customer, product):
    order = _order(
        merchant, payer_account={"holder_name": "王小明", "bank": "ICBC", "account_number": "6222020000001234"}
    )

    assert order.payer_account.masked_number == "**** 1234"
    assert order.payer_account.customer == customer
    assert BankAccount.objects.count() == 1


def test_referrer_defaults_to_the_customers_referrer(merchant, product):
    referrer = CustomerFactory(merchant=merchant, external_id="ref-1")
    CustomerFactory(merchant=merchant, external_id="c-1", referrer=referrer)

    order = _order(merchant)

    assert order.referrer == referrer
    assert Order.objects.get(pk=order.pk).referrer_id == referrer.pk


def test_explicit_referrer_overrides_the_default(merchant, product):
    default = CustomerFactory(merchant=merchant, external_id="ref-1")
    explicit = CustomerFactory(merchant=merchant, external_id="ref-2")
    CustomerFactory(merchant=merchant, external_id="c-1", referrer=default)

    order = _order(merchant, referrer_external_id="ref-2")

    assert order.referrer == explicit


def test_customer_without_referrer_gives_an_order_without_referrer(merchant, customer, product):
    assert _order(merchant).referrer is None


@pytest.mark.parametrize("referrer", ["c-1", "nobody"])
def test_self_or_unknown_referrer_is_refused_and_writes_nothing(merchant, customer, product, referrer):
    with pytest.raises(ServiceError) as excinfo:
        _order(merchant, referrer_external_id=referrer)

    assert "referrer" in excinfo.value.fields
    assert Order.objects.count() == 0
    assert _ledger_counts() == (0, 0, 0)


def test_referrer_of_another_merchant_is_unknown(merchant, other_merchant, customer, product):
    CustomerFactory(merchant=other_merchant, external_id="theirs")

    with pytest.raises(ServiceError):
        _order(merchant, referrer_external_id="theirs")

    assert Order.objects.count() == 0


# --- usage ---------------------------------------------------------------------------------------


def test_usage_summary_of_an_unused_order(merchant):
    order = OrderFactory(merchant=merchant)

    assert usage_summary(order=order) == {
        "max_progress_pct": 0,
        "key_revealed": False,
        "key_activated": False,
        "downloaded": False,
    }


def test_usage_summary_reports_max_progress_and_lock_flags(merchant):
    order = OrderFactory(merchant=merchant)
    other = OrderFactory(merchant=merchant)
    for value in (5, 40, 20):
        usage_record(order=order, kind=UsageEvent.Kind.PROGRESS, value=value)
    usage_record(order=other, kind=UsageEvent.Kind.PROGRESS, value=90)
    usage_record(order=other, kind=UsageEvent.Kind.KEY_ACTIVATED)

    assert usage_summary(order=order) == {
        "max_progress_pct": 40,
        "key_revealed": False,
        "key_activated": False,
        "downloaded": False,
    }

    usage_record(order=order, kind=UsageEvent.Kind.KEY_REVEALED)
    usage_record(order=order, kind=UsageEvent.Kind.DOWNLOAD)

    assert usage_summary(order=order) == {
        "max_progress_pct": 40,
        "key_revealed": True,
        "key_activated": False,
        "downloaded": True,
    }
    assert usage_summary(order=other) == {
        "max_progress_pct": 90,
        "key_revealed": False,
        "key_activated": True,
        "downloaded": False,
    }
    assert UsageEvent.objects.filter(order=order).count() == 5


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        (UsageEvent.Kind.PROGRESS, None),
        (UsageEvent.Kind.DOWNLOAD, 10),
    ],
)
def test_usage_value_only_for_progress_is_refused_otherwise(merchant, kind, value):
    order = OrderFactory(merchant=merchant)

    with pytest.raises(ServiceError):
        usage_record(order=order, kind=kind, value=value)

    assert UsageEvent.objects.count() == 0


@pytest.mark.parametrize("amount", [0, -1, 10.5, 19900.0, True, "19900"])
def test_bad_amount_is_refused_as_invalid_not_as_duplicate_and_writes_nothing(merchant, customer, product, amount):
    with pytest.raises(ServiceError) as excinfo:
        _order(merchant, amount=amount)

    assert not isinstance(excinfo.value, ConflictError)
    assert "amount" in excinfo.value.fields
    assert Order.objects.count() == 0
    assert _ledger_counts() == (0, 0, 0)
