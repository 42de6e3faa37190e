"""Builders for console tests: staff of each role, alerts, a refund waiting in the review queue and a
payout waiting for approval, all made through the owning apps' services."""

from __future__ import annotations

import itertools
from datetime import timedelta

from django.utils import timezone

from apps.accounts.models import Customer, User
from apps.accounts.services import account_freeze, customer_create
from apps.alerts.models import Alert
from apps.alerts.services import alert_raise
from apps.orders.services import order_create, product_create
from apps.payouts.models import Disbursement
from apps.payouts.services import payout_create
from apps.refunds.models import Refund
from apps.refunds.services import refund_request
from apps.risk.models import Case

_n = itertools.count(1)
LARGE = 10_000_000  # PAYOUT_LARGE_AMOUNT: needs two approvers


def staff(merchant, role: str = User.Role.OWNER, username: str | None = None) -> User:
    return User.objects.create(username=username or f"{role}-{next(_n)}", merchant=merchant, role=role)


def alert(merchant, *, tier: str = "P0", kind: str = "refund_large_failed", summary: str | None = None) -> Alert:
    n = next(_n)
    return alert_raise(
        tier=tier,
        kind=kind,
        dedup_key=f"test:{merchant.pk}:{n}",
        subject_type="refund",
        subject_id=n,
        merchant=merchant,
        summary=summary or f"Large refund {n} failed",
    )


def reviewed_refund(merchant) -> tuple[Refund, Case]:
    """A refund in manual review (its customer is frozen) and its open case."""
    n = next(_n)
    customer = customer_create(merchant=merchant, external_id=f"cust-{n}", name=f"Customer {n}", locale="en")
    product = product_create(
        merchant=merchant, sku=f"sku-{n}", name=f"Course {n}", kind="course", price=19900, currency="CNY"
    )
    order_create(
        merchant=merchant,
        external_id=f"ord-{n}",
        customer_external_id=customer.external_id,
        product_sku=product.sku,
        amount=19900,
        currency="CNY",
        paid_at=timezone.now() - timedelta(minutes=5),
        payment_method="card",
        payer_account={"holder_name": customer.name, "bank": "ICBC", "account_number": f"62220200{n:04d}0000"},
    )
    account_freeze(merchant=merchant, customer=Customer.objects.get(pk=customer.pk), reason="check")
    refund = refund_request(
        merchant=merchant, order_external_id=f"ord-{n}", amount=19900, reason="mistake", actor="test"
    )
    assert refund.status == Refund.Status.MANUAL_REVIEW, refund.status
    return refund, Case.objects.get(subject_type="refund", subject_id=refund.pk)


def pending_payout(merchant, *, maker: str) -> Disbursement:
    """A large payout waiting for two approvals (needs the `inproc_bank` fixture for its checks)."""
    from tests.payouts.conftest import account_body, fund_merchant

    fund_merchant(merchant, LARGE)
    d = payout_create(
        merchant=merchant,
        reference=f"settle-{next(_n)}",
        amount=LARGE,
        currency="CNY",
        destination_account=account_body(),
        actor=maker,
    )
    assert d.status == Disbursement.Status.PENDING_APPROVAL, (
        d.status,
        list(d.prechecks.values_list("name", "result", "detail")),
    )
    return d
