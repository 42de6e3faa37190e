"""G7, the other half: a transaction that rolls back publishes nothing. Fifty refund requests that
would each schedule a submission and a customer's message are rolled back by a failure after the
service returned: no task is published, no refund, timeline event or message row is left."""

from __future__ import annotations

from unittest import mock

import pytest
from celery import Task
from django.db import transaction

from apps.notifications.models import Notification
from apps.refunds.models import Refund, RefundEvent
from apps.refunds.services import refund_request
from tests.refunds.support import make_order

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


class RolledBackError(Exception):
    pass


def _request(order) -> Refund:
    return refund_request(
        merchant=order.merchant,
        order_external_id=order.external_id,
        amount=1000,
        reason="mistake",
        reason_text="bought twice",
        actor="api",
    )


def _request_then_fail(order) -> None:
    """The refund is approved and its submission scheduled; then the transaction fails."""
    with transaction.atomic():
        assert _request(order).status == Refund.Status.APPROVED
        raise RolledBackError


def test_fifty_rolled_back_refund_requests_publish_no_task(merchant, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    orders = [make_order(merchant, amount=5000) for _ in range(51)]
    with mock.patch.object(Task, "apply_async", autospec=True) as publish:
        for order in orders[:50]:
            with pytest.raises(RolledBackError):
                _request_then_fail(order)
        assert publish.call_count == 0
        assert (Refund.objects.count(), RefundEvent.objects.count(), Notification.objects.count()) == (0, 0, 0)

        # The same request committed publishes its submission: the count above could have moved.
        with transaction.atomic():
            _request(orders[50])
        names = [call.args[0].name for call in publish.call_args_list]
    assert "apps.refunds.tasks.refund_submit_task" in names
    assert Refund.objects.count() == 1
