from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import Q, QuerySet

from apps.accounts.models import AccountFreeze, BankAccount, Customer, Merchant

# The actor label of freezes made by the risk engine (apps.risk.services.risk_record's default actor).
RISK_ACTOR = "risk"


def customer_list_for_merchant(*, merchant: Merchant):
    return Customer.objects.filter(merchant=merchant).select_related("referrer").order_by("-id")


def customer_get_by_external_id(*, merchant: Merchant, external_id: str) -> Customer | None:
    return Customer.objects.filter(merchant=merchant, external_id=external_id).first()


def freezes_active_for(
    *, merchant_id: int, customer_ids: Iterable[int | None] = (), bank_account: BankAccount | None = None
) -> QuerySet[AccountFreeze]:
    """The active freezes that stop money to or from these customers or this account: the one rule
    for "is this movement frozen" (refund and payout submission, the payout pre-checks, incidents).

    A customer freeze holds that customer's money. An account freeze holds the account's *number*:
    every stored account with the same fingerprint within the merchant, whoever it was stored for
    (the same number saved for another customer, or for the merchant's own payouts, is the same
    destination)."""
    match = Q(customer_id__in=[pk for pk in customer_ids if pk])
    if bank_account is not None:
        match |= Q(bank_account__fingerprint=bank_account.fingerprint)
    return AccountFreeze.objects.filter(match, merchant_id=merchant_id, lifted_at__isnull=True).order_by("pk")


def customer_is_frozen(*, customer: Customer) -> bool:
    return freezes_active_for(merchant_id=customer.merchant_id, customer_ids=[customer.pk]).exists()


def bank_account_is_frozen(*, bank_account: BankAccount) -> bool:
    return freezes_active_for(merchant_id=bank_account.merchant_id, bank_account=bank_account).exists()


@dataclass(frozen=True)
class FreezeHold:
    """Why a movement is held: the freezes in force and who answers for them."""

    freeze_ids: list[int]
    party: str  # "platform" when only the risk engine froze, else "merchant" (its staff or its API)

    @property
    def detail(self) -> dict:
        return {"freeze_ids": self.freeze_ids, "freeze_id": self.freeze_ids[0]}


def freeze_hold_for(
    *, merchant_id: int, customer_ids: Iterable[int | None] = (), bank_account: BankAccount | None = None
) -> FreezeHold | None:
    """A FreezeHold when any active freeze stops this movement (see `freezes_active_for`), else None.
    Callers: refund and payout submission, under the movement's row lock."""
    rows = list(
        freezes_active_for(merchant_id=merchant_id, customer_ids=customer_ids, bank_account=bank_account).values_list(
            "pk", "actor_id", "actor_label"
        )
    )
    if not rows:
        return None
    automatic = all(actor_id is None and label.startswith(RISK_ACTOR) for _, actor_id, label in rows)
    return FreezeHold(freeze_ids=[pk for pk, _, _ in rows], party="platform" if automatic else "merchant")


def freeze_subjects_q(*, customer_id: int | None, account_fingerprint: str) -> Q:
    """Movements (refunds, payouts, withdrawals: `customer`, `destination_account`) a freeze of
    this customer or account number would hold — the receivers of `account_unfrozen` look there
    for what to release."""
    match = Q(pk__in=[])
    if customer_id:
        match |= Q(customer_id=customer_id)
    if account_fingerprint:
        match |= Q(destination_account__fingerprint=account_fingerprint)
    return match
