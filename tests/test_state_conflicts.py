"""A state conflict is a 409 on every endpoint: the action is well-formed, the object's state does
not allow it. Nothing is written. (Payouts and withdrawals: tests/payouts/test_api.py and
test_maker_checker.py.)"""

from __future__ import annotations

import pytest
from django_fsm import TransitionNotAllowed

from apps.accounts.services import account_freeze
from apps.alerts.services import alert_raise
from apps.common.exception_handler import api_exception_handler
from apps.refunds.models import Refund
from apps.risk.models import Case
from tests.refunds.support import REFUNDS, body, make_order, post_refund, row_counts

pytestmark = pytest.mark.django_db


def _refund(api, merchant, *, frozen: bool = False) -> int:
    order = make_order(merchant, amount=10000)
    if frozen:  # a frozen customer's refund goes to manual review, with a case
        account_freeze(merchant=merchant, customer=order.customer, reason="chargeback investigation")
    response = post_refund(api, body(order))
    assert response.status_code == 201, response.content
    return response.json()["id"]


def _assert_conflict(response, code: str) -> None:
    assert response.status_code == 409, response.content
    assert response.json()["error"]["code"] == code


@pytest.mark.parametrize("action", ["approve", "reject"])
def test_reviewing_a_refund_not_in_review_is_409(api, merchant, action):
    pk = _refund(api, merchant)
    assert Refund.objects.get(pk=pk).status == "approved"
    before = row_counts()

    _assert_conflict(api.post(f"{REFUNDS}/{pk}/{action}", {}, format="json"), "invalid_state")
    assert row_counts() == before


def test_cancelling_a_paid_refund_is_409(api, merchant):
    pk = _refund(api, merchant)
    Refund.objects.filter(pk=pk).update(status="succeeded")
    before = row_counts()

    _assert_conflict(api.post(f"{REFUNDS}/{pk}/cancel"), "invalid_state")
    assert Refund.objects.get(pk=pk).status == "succeeded"
    assert row_counts() == before


def test_deciding_a_decided_case_is_409(api, merchant):
    pk = _refund(api, merchant, frozen=True)
    case = Case.objects.get(subject_type="refund", subject_id=pk)
    assert api.post(f"{REFUNDS}/{pk}/approve", {}, format="json").status_code == 200

    _assert_conflict(
        api.post(f"/api/v1/cases/{case.pk}/decide", {"decision": "decline"}, format="json"), "case_decided"
    )


def test_lifting_a_lifted_freeze_is_409(api):
    assert api.post("/api/v1/customers", {"external_id": "c-f", "name": "Wang"}, format="json").status_code == 201
    freeze = api.post("/api/v1/freezes", {"customer": "c-f", "reason": "chargebacks"}, format="json").json()
    assert api.post(f"/api/v1/freezes/{freeze['id']}/lift", {"reason": "cleared"}, format="json").status_code == 200

    _assert_conflict(
        api.post(f"/api/v1/freezes/{freeze['id']}/lift", {"reason": "again"}, format="json"), "freeze_lifted"
    )


def test_acking_a_resolved_alert_is_409(api, merchant):
    alert = alert_raise(
        tier="P1",
        kind="refund_not_arrived",
        dedup_key="refund:1:not_arrived",
        subject_type="refund",
        subject_id=1,
        merchant=merchant,
        summary="refund 1 not arrived",
    )
    assert api.post(f"/api/v1/alerts/{alert.pk}/resolve", {}, format="json").status_code == 200

    _assert_conflict(api.post(f"/api/v1/alerts/{alert.pk}/ack", {}, format="json"), "invalid_state")


def test_a_transition_refused_by_the_state_machine_is_409_not_500():
    response = api_exception_handler(TransitionNotAllowed("Can't switch from state 'paid'"), {})
    assert response.status_code == 409
    assert response.data["error"]["code"] == "invalid_state"
