"""Bank accounts: encrypted at rest, shown as `**** 1234`, deduplicated by keyed fingerprint (G12);
freezes of customers and accounts."""

from __future__ import annotations

import pytest

from apps.accounts.models import AccountFreeze, BankAccount
from apps.accounts.selectors import bank_account_is_frozen, customer_is_frozen
from apps.accounts.services import account_freeze, account_unfreeze, bank_account_get_or_create
from apps.common.crypto import fingerprint
from apps.common.errors import ServiceError
from tests.factories import BankAccountFactory, CustomerFactory, MerchantFactory, StaffFactory

pytestmark = pytest.mark.django_db

NUMBER = "6222020000001234"


@pytest.fixture
def customer(merchant):
    return CustomerFactory(merchant=merchant, name="王小明")


def _create(merchant, customer, number=NUMBER, **kwargs):
    return bank_account_get_or_create(
        merchant=merchant,
        customer=customer,
        holder_name=kwargs.get("holder_name", "王小明"),
        bank=kwargs.get("bank", "ICBC"),
        account_number=number,
    )


def test_number_is_stored_encrypted_never_in_plain_in_any_column(merchant, customer):
    account = _create(merchant, customer)

    row = BankAccount.objects.filter(pk=account.pk).values().get()
    assert set(row) >= {"number_encrypted", "last4", "fingerprint"}
    for column, value in row.items():
        assert NUMBER not in str(value), column
        # Not even the first twelve digits (only the last four may be kept in clear).
        assert NUMBER[:12] not in str(value), column
    assert row["last4"] == "1234"
    assert row["fingerprint"] == fingerprint(NUMBER)
    assert row["number_encrypted"] != NUMBER


def test_masked_number_shows_only_last_four(merchant, customer):
    account = _create(merchant, customer)

    assert account.masked_number == "**** 1234"
    assert BankAccount.objects.get(pk=account.pk).masked_number == "**** 1234"


def test_reveal_number_round_trips_from_the_stored_row(merchant, customer):
    account = _create(merchant, customer)

    assert BankAccount.objects.get(pk=account.pk).reveal_number() == NUMBER


def test_spaces_are_ignored_and_the_digits_stored(merchant, customer):
    account = _create(merchant, customer, number="6222 0200 0000 1234")

    assert BankAccount.objects.get(pk=account.pk).reveal_number() == NUMBER
    assert account.fingerprint == fingerprint(NUMBER)


def test_str_and_repr_never_contain_the_full_number(merchant, customer):
    account = _create(merchant, customer)
    stored = BankAccount.objects.get(pk=account.pk)

    for text in (str(account), repr(account), str(stored), repr(stored)):
        assert NUMBER not in text
        assert "**** 1234" in text


def test_get_or_create_dedupes_one_payee_by_fingerprint_per_owner(merchant, customer):
    first = _create(merchant, customer)
    again = _create(merchant, customer, number="6222 0200 0000 1234")
    other = _create(merchant, customer, number="6222 0200 0000 1234", holder_name="Someone Else", bank="CCB")

    assert again.pk == first.pk
    assert other.pk != first.pk  # another payee of the same number: its own record (G18)
    assert BankAccount.objects.count() == 2
    stored = BankAccount.objects.get(pk=first.pk)
    assert (stored.holder_name, stored.bank) == ("王小明", "ICBC")  # never renamed
    assert other.fingerprint == first.fingerprint


def test_merchant_owned_account_is_deduplicated_too(merchant):
    first = _create(merchant, None)
    again = _create(merchant, None)

    assert first.pk == again.pk
    assert BankAccount.objects.filter(customer__isnull=True).count() == 1


def test_same_number_for_two_customers_gives_two_rows_with_equal_fingerprint(merchant, customer):
    other = CustomerFactory(merchant=merchant)

    mine = _create(merchant, customer)
    theirs = _create(merchant, other)

    assert mine.pk != theirs.pk
    assert BankAccount.objects.count() == 2
    assert mine.fingerprint == theirs.fingerprint == fingerprint(NUMBER)
    # Fernet uses a random IV: equal numbers do not give equal ciphertexts.
    assert mine.number_encrypted != theirs.number_encrypted
    assert BankAccount.objects.filter(fingerprint=fingerprint(NUMBER)).count() == 2


def test_different_numbers_get_different_fingerprints(merchant, customer):
    first = _create(merchant, customer, number=NUMBER)
    second = _create(merchant, customer, number="6222020000001235")

    assert first.pk != second.pk
    assert first.fingerprint != second.fingerprint
    assert BankAccount.objects.count() == 2


@pytest.mark.parametrize("number", ["12345678", "1" * 30])
def test_length_boundaries_are_accepted(merchant, customer, number):
    account = _create(merchant, customer, number=number)

    assert account.reveal_number() == number
    assert account.masked_number == f"**** {number[-4:]}"


@pytest.mark.parametrize(
    "number",
    [
        pytest.param("abcdefghij", id="letters"),
        pytest.param("62220200000a1234", id="one-letter"),
        pytest.param("1234567", id="7-digits"),
        pytest.param("1" * 31, id="31-digits"),
        pytest.param("", id="empty"),
        pytest.param("        ", id="only-spaces"),
        pytest.param("6222-0200-0000-1234", id="dashes"),
        pytest.param("-6222020000001234", id="negative"),
        pytest.param("6222020000001234\n", id="trailing-newline"),
        pytest.param("６２２２０２００００００１２３４", id="fullwidth-digits"),
        pytest.param("٦٢٢٢٠٢٠٠٠٠٠٠١٢٣٤", id="arabic-indic-digits"),
        pytest.param("²²²²²²²²²", id="superscripts"),
    ],
)
def test_invalid_numbers_are_refused_and_write_nothing(merchant, customer, number):
    with pytest.raises(ServiceError) as excinfo:
        _create(merchant, customer, number=number)

    assert "account_number" in excinfo.value.fields
    assert BankAccount.objects.count() == 0


# --- freezes -----------------------------------------------------------------------------------


def test_freeze_and_unfreeze_a_customer(merchant, customer):
    staff = StaffFactory(merchant=merchant)
    assert customer_is_frozen(customer=customer) is False

    freeze = account_freeze(merchant=merchant, customer=customer, reason="chargeback storm", actor=staff)

    assert customer_is_frozen(customer=customer) is True
    assert AccountFreeze.objects.count() == 1
    assert freeze.is_active
    assert freeze.actor_label == staff.username

    lifted = account_unfreeze(freeze=freeze, actor=staff, reason="cleared")

    assert customer_is_frozen(customer=customer) is False
    assert lifted.lifted_at is not None
    assert lifted.lifted_by == staff
    assert lifted.lift_reason == "cleared"
    assert AccountFreeze.objects.count() == 1


def test_unfreeze_twice_keeps_the_first_lift(merchant, customer):
    freeze = account_freeze(merchant=merchant, customer=customer, reason="r")
    first = account_unfreeze(freeze=freeze, actor=None, reason="first")
    lifted_at = first.lifted_at

    second = account_unfreeze(freeze=freeze, actor=StaffFactory(merchant=merchant), reason="second")

    assert second.lifted_at == lifted_at
    assert second.lift_reason == "first"
    assert second.lifted_by is None


def test_freeze_and_unfreeze_a_bank_account(merchant, customer):
    account = _create(merchant, customer)
    other_account = _create(merchant, customer, number="6222020000009999")

    freeze = account_freeze(merchant=merchant, bank_account=account, reason="fraud report", actor_label="rule:R7")

    assert bank_account_is_frozen(bank_account=account) is True
    assert bank_account_is_frozen(bank_account=other_account) is False
    assert customer_is_frozen(customer=customer) is False
    assert freeze.actor_label == "rule:R7"

    account_unfreeze(freeze=freeze, actor=None, reason="checked")

    assert bank_account_is_frozen(bank_account=account) is False


def test_a_freeze_holds_the_number_under_every_holder_name_and_owner(merchant, customer):
    """G17 with G18: naming a frozen number under another holder makes a new record, which is frozen
    too; so is the same number stored for another customer of the merchant (a frozen destination is
    the number, whoever sends to it); another merchant's is not."""
    account = _create(merchant, customer)
    account_freeze(merchant=merchant, bank_account=account, reason="fraud report")

    renamed = _create(merchant, customer, holder_name="Someone Else", bank="CCB")
    theirs = _create(merchant, CustomerFactory(merchant=merchant))

    assert renamed.pk != account.pk
    assert bank_account_is_frozen(bank_account=renamed) is True
    elsewhere = _create(MerchantFactory(), None)
    assert bank_account_is_frozen(bank_account=theirs) is True
    assert bank_account_is_frozen(bank_account=elsewhere) is False
    assert AccountFreeze.objects.count() == 1


def test_freeze_default_actor_label_is_system(merchant, customer):
    assert account_freeze(merchant=merchant, customer=customer, reason="r").actor_label == "system"


def test_customer_stays_frozen_while_any_freeze_is_active(merchant, customer):
    first = account_freeze(merchant=merchant, customer=customer, reason="one")
    second = account_freeze(merchant=merchant, customer=customer, reason="two")

    account_unfreeze(freeze=first, actor=None, reason="lifted one")
    assert customer_is_frozen(customer=customer) is True

    account_unfreeze(freeze=second, actor=None, reason="lifted two")
    assert customer_is_frozen(customer=customer) is False


def test_freeze_of_one_customer_does_not_freeze_another(merchant, customer):
    other = CustomerFactory(merchant=merchant)

    account_freeze(merchant=merchant, customer=customer, reason="r")

    assert customer_is_frozen(customer=other) is False


def test_freeze_needs_a_subject(merchant):
    with pytest.raises(ServiceError):
        account_freeze(merchant=merchant, reason="nothing")

    assert AccountFreeze.objects.count() == 0


def test_freeze_of_another_merchants_customer_is_refused(merchant, other_merchant):
    theirs = CustomerFactory(merchant=other_merchant)

    with pytest.raises(ServiceError) as excinfo:
        account_freeze(merchant=merchant, customer=theirs, reason="not mine")

    assert excinfo.value.code == "not_found"
    assert AccountFreeze.objects.count() == 0
    assert customer_is_frozen(customer=theirs) is False


def test_freeze_of_another_merchants_bank_account_is_refused(merchant, other_merchant, customer):
    theirs = BankAccountFactory(customer=CustomerFactory(merchant=other_merchant))

    with pytest.raises(ServiceError) as excinfo:
        account_freeze(merchant=merchant, bank_account=theirs, reason="not mine")
    with pytest.raises(ServiceError):
        # Mixing one own subject with a foreign one is refused as a whole.
        account_freeze(merchant=merchant, customer=customer, bank_account=theirs, reason="half mine")

    assert excinfo.value.code == "not_found"
    assert AccountFreeze.objects.count() == 0
    assert bank_account_is_frozen(bank_account=theirs) is False
    assert customer_is_frozen(customer=customer) is False
