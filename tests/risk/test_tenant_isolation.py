"""G10 for the risk endpoints: another merchant's rules, cases, list entries and freezes do not
exist for the caller (404 with the error shape, like an id that exists nowhere), nothing is
written, and platform-rule statistics count only the caller's own traffic."""

from __future__ import annotations

import pytest

from apps.accounts.models import Customer
from apps.accounts.services import account_freeze
from apps.risk.models import Case, ListEntry, Rule
from tests.factories import StaffFactory
from tests.risk.support import (
    counts,
    customer,
    delta,
    make_rule,
    order,
    product,
    refund,
    results,
)

pytestmark = pytest.mark.postgres

MISSING = 10**9


def _world(api, merchant) -> dict:
    """B's rule, case (a frozen customer's refund in review), list entry and freeze."""
    rule = make_rule(api, expression="amount > 1")
    buyer = customer(api)
    order_id = order(api, buyer, product(api))
    freeze = account_freeze(merchant=merchant, customer=Customer.objects.get(external_id=buyer), reason="check")
    body = refund(api, order_id)
    entry = api.post(
        "/api/v1/lists", {"list_type": "block", "kind": "device", "value": "d-b", "reason": "r"}, format="json"
    ).json()
    case = Case.objects.get(subject_id=body["id"])
    return {"rule": rule["id"], "case": case.pk, "entry": entry["id"], "freeze": freeze.pk, "refund": body["id"]}


def _requests(ids: dict) -> list[tuple[str, str, dict | None]]:
    rule, case, entry, freeze = ids["rule"], ids["case"], ids["entry"], ids["freeze"]
    return [
        ("get", f"/api/v1/rules/{rule}", None),
        ("patch", f"/api/v1/rules/{rule}", {"mode": "active"}),
        ("delete", f"/api/v1/rules/{rule}", None),
        ("get", f"/api/v1/rules/{rule}/versions", None),
        ("get", f"/api/v1/rules/{rule}/stats", None),
        ("get", f"/api/v1/cases/{case}", None),
        ("post", f"/api/v1/cases/{case}/assign", {"assignee": "b-staff"}),
        ("post", f"/api/v1/cases/{case}/decide", {"decision": "approve"}),
        ("post", f"/api/v1/cases/{case}/notes", {"text": "hi"}),
        ("get", f"/api/v1/lists/{entry}", None),
        ("patch", f"/api/v1/lists/{entry}", {"reason": "mine now"}),
        ("delete", f"/api/v1/lists/{entry}", None),
        ("get", f"/api/v1/freezes/{freeze}", None),
        ("post", f"/api/v1/freezes/{freeze}/lift", {"reason": "mine now"}),
    ]


def assert_not_found(response) -> None:
    assert response.status_code == 404, (response.status_code, response.content)
    body = response.json()
    assert body["error"]["code"] == "not_found"
    assert body["error"]["fields"] == {}


def test_other_merchants_risk_objects_are_404_and_untouched(api, other_api, other_merchant, frozen):
    StaffFactory(merchant=other_merchant, username="b-staff")
    theirs = _world(other_api, other_merchant)
    before = counts()
    snapshot = {
        "rule": Rule.objects.get(pk=theirs["rule"]).version,
        "case": Case.objects.get(pk=theirs["case"]).status,
        "entry": ListEntry.objects.get(pk=theirs["entry"]).reason,
    }

    for method, url, data in _requests(theirs):
        assert_not_found(getattr(api, method)(url, data, format="json"))
    missing = {key: MISSING for key in theirs}
    for method, url, data in _requests(missing):
        assert_not_found(getattr(api, method)(url, data, format="json"))

    assert delta(before) == {}
    assert Rule.objects.get(pk=theirs["rule"]).version == snapshot["rule"]
    assert Case.objects.get(pk=theirs["case"]).status == snapshot["case"]
    assert ListEntry.objects.get(pk=theirs["entry"]).reason == snapshot["entry"]
    # Lists show none of B's objects.
    for url in ("/api/v1/cases", "/api/v1/lists", "/api/v1/freezes"):
        assert results(api.get(url)) == [], url
    assert all(r["is_platform"] for r in results(api.get("/api/v1/rules")))


def test_walked_ids_find_nothing_of_another_merchant(api, other_api, other_merchant, frozen):
    _world(other_api, other_merchant)
    for n in range(1, 60):
        for url in (f"/api/v1/cases/{n}", f"/api/v1/lists/{n}", f"/api/v1/freezes/{n}"):
            assert api.get(url).status_code == 404
        response = api.get(f"/api/v1/rules/{n}")
        assert response.status_code == 404 or response.json()["is_platform"]


def test_backtests_and_platform_rule_stats_see_only_the_callers_traffic(api, other_api, other_merchant, frozen):
    platform = Rule.objects.get(code="refund-burst-1h")
    sku = product(other_api)
    buyer = customer(other_api)
    for _ in range(5):
        refund(other_api, order(other_api, buyer, sku))  # B's 5th hits the platform burst rule

    stats = api.get(f"/api/v1/rules/{platform.pk}/stats").json()
    their_stats = other_api.get(f"/api/v1/rules/{platform.pk}/stats").json()
    test = api.post("/api/v1/rules/test", {"scope": "refund", "expression": "amount > 0"}, format="json").json()

    assert (stats["hits"], stats["reviewed"]) == (0, 0)
    assert their_stats["hits"] == 1
    assert (test["evaluated"], test["hits"]) == (0, 0)
