from __future__ import annotations

from apps.accounts.models import AccountFreeze, BankAccount, Customer, Merchant


def customer_list_for_merchant(*, merchant: Merchant):
    return Customer.objects.filter(merchant=merchant).select_related("referrer").order_by("-id")


def customer_get_by_external_id(*, merchant: Merchant, external_id: str) -> Customer | None:
    return Customer.objects.filter(merchant=merchant, external_id=external_id).first()


def customer_is_frozen(*, customer: Customer) -> bool:
    return AccountFreeze.objects.filter(customer=customer, lifted_at__isnull=True).exists()


def bank_account_is_frozen(*, bank_account: BankAccount) -> bool:
    """A freeze of any of the owner's records of this number freezes them all: naming the number
    under another holder name makes a new record (G18), and must not slip past a freeze (G17)."""
    return AccountFreeze.objects.filter(
        lifted_at__isnull=True,
        bank_account__merchant_id=bank_account.merchant_id,
        bank_account__customer_id=bank_account.customer_id,
        bank_account__fingerprint=bank_account.fingerprint,
    ).exists()
