"""A known account number: kept as first stored, unless its owner is correcting it (the bank refused
the holder name and the customer typed the same number with the right name)."""

from __future__ import annotations

import pytest

from apps.accounts.models import BankAccount
from apps.accounts.services import bank_account_get_or_create
from tests.factories import CustomerFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

NUMBER = "6222021234560004"


def test_a_known_number_keeps_its_stored_details_by_default(merchant):
    customer = CustomerFactory(merchant=merchant)
    first = bank_account_get_or_create(
        merchant=merchant, customer=customer, holder_name="王小民", bank="ICBC", account_number=NUMBER
    )
    again = bank_account_get_or_create(
        merchant=merchant, customer=customer, holder_name="Someone else", bank="ABC", account_number=NUMBER
    )
    assert again.pk == first.pk
    again.refresh_from_db()
    assert (again.holder_name, again.bank) == ("王小民", "ICBC")
    assert BankAccount.objects.filter(customer=customer).count() == 1


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
