"""Gang clustering (union-find over shared device / IP / account), freezes and their lifting
through /api/v1/freezes, and the review queue (/api/v1/cases: assign, notes, decide → refund moves)."""

from __future__ import annotations

import pytest

from apps.accounts.models import AccountFreeze, Customer
from apps.accounts.services import account_freeze
from apps.refunds.models import Refund, RefundEvent
from apps.risk.clusters import cluster_stats
from apps.risk.models import Case, CaseNote, ClusterMember, Observation
from tests.factories import StaffFactory
from tests.risk.support import (
    NOW,
    clauses,
    counts,
    customer,
    delta,
    order,
    product,
    refund,
    results,
)

pytestmark = pytest.mark.postgres


def pk(external_id: str) -> int:
    return Customer.objects.get(external_id=external_id).pk


def test_customers_sharing_a_device_then_an_account_chain_into_one_cluster(api, frozen):
    a, b, c, loner = customer(api), customer(api), customer(api), customer(api)
    sku = product(api)
    a_order = order(api, a, sku)
    b_order1 = order(api, b, sku)
    b_order2 = order(api, b, product(api))
    c_order = order(api, c, sku)
    loner_order = order(api, loner, sku)

    refund(api, a_order, device_id="d-ab")  # A on d-ab
    refund(api, b_order1, device_id="d-ab")  # B on d-ab → A–B
    account = {"holder_name": "x", "bank": "ABC", "account_number": "6228480000009990"}
    refund(api, b_order2, destination_account=account)  # B pays out to the account
    refund(api, c_order, destination_account=account)  # C to the same account → B–C
    refund(api, loner_order)

    members = {pk(x) for x in (a, b, c)}
    roots = set(ClusterMember.objects.filter(customer_id__in=members).values_list("root_id", flat=True))
    assert len(roots) == 1
    assert ClusterMember.objects.filter(root_id__in=roots).count() == 3
    assert not ClusterMember.objects.filter(customer_id=pk(loner)).exists()
    # 4 refunds over 4 orders of the cluster in the link window.
    for member in members:
        assert cluster_stats(customer_id=member, now=NOW) == (3, 1.0)
    assert cluster_stats(customer_id=pk(loner), now=NOW) == (1, 0.0)
    # The features a rule sees: the next request from C carries the cluster's size and rate.
    last = refund(api, order(api, c, product(api)))
    features = Observation.objects.get(subject_id=last["id"]).features
    assert (features["cluster_size"], features["cluster_refund_rate"]) == (3, 4 / 5)


def test_lifting_a_freeze_through_the_api_lets_the_customer_be_approved_again(api, frozen, merchant):
    buyer = customer(api)
    sku = product(api)
    orders = [order(api, buyer, sku) for _ in range(2)]
    freeze = account_freeze(merchant=merchant, customer=Customer.objects.get(external_id=buyer), reason="manual check")

    held = refund(api, orders[0])
    assert held["status"] == "manual_review"
    assert "customer_frozen" in clauses(held)

    listed = results(api.get("/api/v1/freezes", {"status": "active"}))
    assert [(f["id"], f["customer"], f["is_active"]) for f in listed] == [(freeze.pk, buyer, True)]
    before = counts()
    response = api.post(f"/api/v1/freezes/{freeze.pk}/lift", {"reason": "customer verified"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["is_active"] is False
    assert response.json()["lift_reason"] == "customer verified"
    again = api.post(f"/api/v1/freezes/{freeze.pk}/lift", {"reason": "twice"}, format="json")
    assert again.status_code == 409
    assert delta(before) == {}
    assert AccountFreeze.objects.get().lift_reason == "customer verified"
    assert results(api.get("/api/v1/freezes", {"status": "active"})) == []
    assert len(results(api.get("/api/v1/freezes", {"status": "lifted"}))) == 1

    assert refund(api, orders[1])["status"] == "approved"


def test_lift_needs_a_reason(api, merchant, db):
    freeze = account_freeze(merchant=merchant, customer=Customer.objects.get(pk=pk(customer(api))), reason="x")
    for data in ({}, {"reason": ""}, {"reason": "ok", "lifted_at": None}):
        assert api.post(f"/api/v1/freezes/{freeze.pk}/lift", data, format="json").status_code == 400
    assert AccountFreeze.objects.get().is_active


def _reviewed_refund(api) -> tuple[dict, Case]:
    """A refund in manual review (its customer is frozen) and its case."""
    buyer = customer(api)
    order_id = order(api, buyer, product(api))
    cust = Customer.objects.get(external_id=buyer)
    account_freeze(merchant=cust.merchant, customer=cust, reason="check")
    body = refund(api, order_id)
    assert body["status"] == "manual_review"
    return body, Case.objects.get(subject_type="refund", subject_id=body["id"])


@pytest.mark.parametrize(("decision", "status"), [("approve", "approved"), ("decline", "rejected")])
def test_deciding_a_case_moves_the_refund_once(api, frozen, merchant, decision, status):
    body, case = _reviewed_refund(api)
    reviewer = StaffFactory(merchant=merchant, role="reviewer", username="rev-1")
    assigned = api.post(f"/api/v1/cases/{case.pk}/assign", {"assignee": reviewer.username}, format="json")
    assert assigned.status_code == 200, assigned.content
    assert (assigned.json()["assignee"], assigned.json()["status"]) == ("rev-1", "assigned")
    noted = api.post(f"/api/v1/cases/{case.pk}/notes", {"text": "called the customer"}, format="json")
    assert noted.status_code == 201
    before = counts()
    events_before = RefundEvent.objects.filter(refund_id=body["id"]).count()

    response = api.post(f"/api/v1/cases/{case.pk}/decide", {"decision": decision, "note": "ok"}, format="json")

    assert response.status_code == 200, response.content
    decided = response.json()
    assert (decided["status"], decided["decision"]) == ("decided", decision)
    assert decided["decided_by"].startswith("api-key:")
    assert [n["text"] for n in decided["notes"]] == ["assigned to rev-1", "called the customer", "ok"]
    assert Refund.objects.get(pk=body["id"]).status == status
    assert RefundEvent.objects.filter(refund_id=body["id"]).count() == events_before + 1
    assert delta(before) == {"CaseNote": 1}

    # Decided is final: a second verdict, through the case or the refund, changes nothing.
    again = api.post(f"/api/v1/cases/{case.pk}/decide", {"decision": "approve"}, format="json")
    assert again.status_code == 409
    direct = api.post(f"/api/v1/refunds/{body['id']}/approve", {}, format="json")
    assert direct.status_code == 409
    assert api.post(f"/api/v1/cases/{case.pk}/assign", {"assignee": "rev-1"}, format="json").status_code == 409
    assert Refund.objects.get(pk=body["id"]).status == status
    assert RefundEvent.objects.filter(refund_id=body["id"]).count() == events_before + 1
    assert CaseNote.objects.filter(case=case).count() == 3


def test_reviewing_the_refund_directly_closes_its_case_without_a_loop(api, frozen):
    body, case = _reviewed_refund(api)

    response = api.post(f"/api/v1/refunds/{body['id']}/reject", {"note": "no"}, format="json")

    assert response.status_code == 200, response.content
    case.refresh_from_db()
    assert (case.status, case.decision) == ("decided", "decline")
    assert api.post(f"/api/v1/cases/{case.pk}/decide", {"decision": "approve"}, format="json").status_code == 409
    assert Refund.objects.get(pk=body["id"]).status == "rejected"


def test_cancelling_a_refund_in_review_withdraws_its_case_and_a_later_verdict_changes_nothing(api, frozen):
    body, case = _reviewed_refund(api)
    assert api.post(f"/api/v1/refunds/{body['id']}/cancel", format="json").status_code == 200
    case.refresh_from_db()
    assert (case.status, case.decision) == ("decided", "withdrawn")
    assert case.decided_by
    before = counts()

    response = api.post(f"/api/v1/cases/{case.pk}/decide", {"decision": "approve", "note": "x"}, format="json")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "case_decided"
    assert delta(before) == {}
    assert Refund.objects.get(pk=body["id"]).status == "cancelled"


def test_assign_only_to_own_staff(api, frozen, merchant, other_merchant):
    _, case = _reviewed_refund(api)
    StaffFactory(merchant=other_merchant, username="theirs")
    before = counts()
    for name in ("theirs", "nobody", ""):
        response = api.post(f"/api/v1/cases/{case.pk}/assign", {"assignee": name}, format="json")
        assert response.status_code == (400 if not name else 422)  # blank: the schema; unknown: a rule
        assert "assignee" in response.json()["error"]["fields"]
    assert delta(before) == {}
    assert Case.objects.get(pk=case.pk).assignee is None


def test_decide_refuses_unknown_decisions(api, frozen):
    _, case = _reviewed_refund(api)
    # "withdrawn" is the system's verdict for a cancelled subject, never a reviewer's.
    for data in ({"decision": "maybe"}, {"decision": "withdrawn"}, {}, {"decision": "approve", "status": "decided"}):
        assert api.post(f"/api/v1/cases/{case.pk}/decide", data, format="json").status_code == 400
    assert Case.objects.get(pk=case.pk).status == "open"
