"""Alert fixtures: signal payloads as the domain services send them, and helpers that count rows."""

from __future__ import annotations

import pytest

from apps.alerts.models import Alert, AlertDelivery, AlertEvent
from apps.gateways.services import ensure_sandbox_channel
from tests.gateways.conftest import bank, sandbox_settings  # noqa: F401 (fixtures)
from tests.refunds.conftest import clock, refund_settings  # noqa: F401 (fixtures)


@pytest.fixture
def channel(db):
    return ensure_sandbox_channel()


def rows() -> dict[str, int]:
    return {
        "alerts": Alert.objects.count(),
        "events": AlertEvent.objects.count(),
        "deliveries": AlertDelivery.objects.count(),
    }


def channels_of(alert: Alert) -> list[tuple[str, str]]:
    return sorted(alert.deliveries.values_list("channel", "target"))


def make_refund(merchant, *, status="submitted", amount=19900, channel=None, payment_method="card", **fields):
    """A refund row in `status` (the FSM is not under test here: the alerts only read refunds)."""
    from apps.refunds.models import Refund
    from tests.factories import OrderFactory

    order = OrderFactory(merchant=merchant, amount=max(amount, 1), payment_method=payment_method)
    return Refund.objects.create(
        merchant=merchant,
        order=order,
        customer=order.customer,
        amount=amount,
        currency="CNY",
        reason="mistake",
        status=status,
        channel=channel,
        **fields,
    )


def make_payout(merchant, *, status="submitted", amount=500000, channel=None, kind="payout", **fields):
    from apps.payouts.models import Disbursement
    from tests.factories import BankAccountFactory, CustomerFactory

    account = BankAccountFactory(customer=CustomerFactory(merchant=merchant))
    return Disbursement.objects.create(
        kind=kind,
        merchant=merchant,
        amount=amount,
        currency="CNY",
        source_amount=amount,
        source_currency="CNY",
        destination_account=account,
        destination_country="CN",
        destination_currency="CNY",
        created_by="maker",
        status=status,
        channel=channel,
        **fields,
    )
