"""What runs after a commit cannot undo it, so it must not fail the request or stop what follows it:
a listener that raises on a state-change announcement is logged, the answer stands, and the hooks
registered after it (the submission's publish) still run."""

from __future__ import annotations

import pytest

from apps.gateways.models import ChannelCall
from apps.orders.models import Order
from apps.refunds.models import Refund
from apps.refunds.signals import refund_state_changed
from tests.refunds.conftest import (  # noqa: F401 (fixtures)
    bank,
    open_order,
    refund_settings,
    request_refund,
    sandbox_settings,
)

pytestmark = pytest.mark.postgres


@pytest.fixture
def failing_listener():
    calls = []

    def listener(sender, **kwargs):
        calls.append(kwargs["to_status"])
        raise RuntimeError("a listener broke after commit")

    refund_state_changed.connect(listener, weak=False, dispatch_uid="tests.failing_listener")
    yield calls
    refund_state_changed.disconnect(dispatch_uid="tests.failing_listener")


def test_a_broken_listener_neither_fails_the_refund_request_nor_stops_its_submission(
    api,
    bank,  # noqa: F811
    refund_settings,  # noqa: F811
    failing_listener,
    django_capture_on_commit_callbacks,
):
    order = open_order(api, "0000")
    with django_capture_on_commit_callbacks(execute=True):
        body = request_refund(api, order)  # asserts 201

    assert "approved" in failing_listener
    refund = Refund.objects.get(pk=body["id"])
    assert refund.status in (Refund.Status.SUBMITTED, Refund.Status.PROCESSING)
    assert ChannelCall.objects.filter(reference=f"refund:{refund.pk}", action="submit").count() == 1


def test_a_broken_listener_does_not_turn_a_committed_cancel_into_an_error(
    api,
    bank,  # noqa: F811
    refund_settings,  # noqa: F811
    failing_listener,
    django_capture_on_commit_callbacks,
):
    order = open_order(api, "0001")
    paid = Order.objects.get(external_id=order)
    refund = Refund.objects.create(
        merchant=api.merchant,
        order=paid,
        customer=paid.customer,
        amount=100,
        currency="CNY",
        reason="mistake",
        status=Refund.Status.REQUESTED,
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"/api/v1/refunds/{refund.pk}/cancel")

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "cancelled"
    assert failing_listener == ["cancelled"]
