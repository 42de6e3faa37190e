"""A known account number under another holder name or bank is another payee record, never a rename
of the stored one (G18), unless its owner is correcting it (the bank refused the holder name and the
customer typed the same number with the right name)."""

from __future__ import annotations

import pytest

from apps.accounts.models import BankAccount
from apps.accounts.services import bank_account_get_or_create, bank_account_mark_verified
from tests.factories import CustomerFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

NUMBER = "6222021234560004"


def test_a_known_number_under_another_holder_name_or_bank_is_a_new_record_and_the_first_is_kept(merchant):
    """G18: a request naming another holder for a known number never renames the stored payee."""
    customer = CustomerFactory(merchant=merchant)
    first = bank_account_get_or_create(
        merchant=merchant, customer=customer, holder_name="王小民", bank="ICBC", account_number=NUMBER
    )
    other_name = bank_account_get_or_create(
        merchant=merchant, customer=customer, holder_name="Someone else", bank="ICBC", account_number=NUMBER
    )
    other_bank = bank_account_get_or_create(
        merchant=merchant, customer=customer, holder_name="王小民", bank="ABC", account_number=NUMBER
    )
    same = bank_account_get_or_create(
        merchant=merchant, customer=customer, holder_name=" 王小民 ", bank="ICBC", account_number=NUMBER
    )

    assert len({first.pk, other_name.pk, other_bank.pk}) == 3
    assert same.pk == first.pk  # the same payee, spaces aside
    stored = dict(BankAccount.objects.filter(customer=customer).values_list("pk", "holder_name"))
    assert stored == {first.pk: "王小民", other_name.pk: "Someone else", other_bank.pk: "王小民"}
    assert BankAccount.objects.get(pk=other_bank.pk).bank == "ABC"
    assert {a.fingerprint for a in (first, other_name, other_bank)} == {first.fingerprint}


def test_a_merchants_own_number_under_another_holder_name_is_a_new_record(merchant):
    """The incident: a payout to a known number named "深圳某某科技有限公司" was stored and shown as
    "链动小铺", the name the number was first used under."""
    first = bank_account_get_or_create(
        merchant=merchant, customer=None, holder_name="链动小铺", bank="ICBC", account_number=NUMBER
    )
    again = bank_account_get_or_create(
        merchant=merchant, customer=None, holder_name="链动小铺", bank="ICBC", account_number=NUMBER
    )
    named = bank_account_get_or_create(
        merchant=merchant, customer=None, holder_name="深圳某某科技有限公司", bank="ICBC", account_number=NUMBER
    )

    assert again.pk == first.pk
    assert named.pk != first.pk
    assert BankAccount.objects.get(pk=named.pk).holder_name == "深圳某某科技有限公司"
    assert BankAccount.objects.get(pk=first.pk).holder_name == "链动小铺"
    assert BankAccount.objects.filter(customer__isnull=True).count() == 2


def test_a_correction_renames_only_the_record_being_corrected_and_never_a_verified_one(merchant):
    customer = CustomerFactory(merchant=merchant)
    refused = bank_account_get_or_create(
        merchant=merchant, customer=customer, holder_name="王小民", bank="ICBC", account_number=NUMBER
    )
    later = bank_account_get_or_create(
        merchant=merchant, customer=customer, holder_name="王晓民", bank="ICBC", account_number=NUMBER
    )
    bank_account_mark_verified(bank_account=later)

    fixed = bank_account_get_or_create(
        merchant=merchant,
        customer=customer,
        holder_name="王小明",
        bank="ICBC",
        account_number=NUMBER,
        correct_details=True,
        correcting=refused,
    )
    assert fixed.pk == refused.pk
    assert BankAccount.objects.get(pk=later.pk).holder_name == "王晓民"

    # A verified record is what the channel confirmed: a correction of it is a new record.
    renamed = bank_account_get_or_create(
        merchant=merchant,
        customer=customer,
        holder_name="王小明明",
        bank="ICBC",
        account_number=NUMBER,
        correct_details=True,
        correcting=later,
    )
    assert renamed.pk not in (refused.pk, later.pk)
    assert BankAccount.objects.get(pk=later.pk).holder_name == "王晓民"
    assert BankAccount.objects.filter(customer=customer).count() == 3


def test_the_owner_correcting_the_holder_name_updates_the_same_row(merchant):
    customer = CustomerFactory(merchant=merchant)
    first = bank_account_get_or_create(
        merchant=merchant, customer=customer, holder_name="王小民", bank="ICBC", account_number=NUMBER
    )
    fixed = bank_account_get_or_create(
        merchant=merchant,
        customer=customer,
        holder_name="王小明",
        bank="ICBC",
        account_number=f"{NUMBER[:4]} {NUMBER[4:]}",
        correct_details=True,
    )
    assert fixed.pk == first.pk
    fixed.refresh_from_db()
    assert fixed.holder_name == "王小明"
    assert (fixed.last4, fixed.fingerprint) == (first.last4, first.fingerprint)
    assert BankAccount.objects.filter(customer=customer).count() == 1
