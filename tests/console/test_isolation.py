"""G10 in the console: another merchant's objects do not exist for you — every page and action with
their ids is a 404 like an unknown id, nothing is written, and each attempt is logged."""

from __future__ import annotations

import logging

import pytest

from apps.alerts.models import Alert, AlertEvent, Silence
from apps.payouts.models import Approval, DisbursementEvent
from apps.refunds.models import RefundEvent
from apps.risk.models import Case, CaseNote, Rule, RuleVersion
from apps.risk.rules import rule_create
from tests.console.support import alert, pending_payout, reviewed_refund

pytestmark = pytest.mark.django_db

WATCHED = (Alert, AlertEvent, Silence, Case, CaseNote, RefundEvent, Approval, DisbursementEvent, RuleVersion)


def _counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in WATCHED}


def _state() -> list:
    return [
        sorted(Alert.objects.values_list("pk", "status")),
        sorted(Case.objects.values_list("pk", "status")),
        sorted(Rule.objects.values_list("pk", "mode")),
    ]


@pytest.fixture
def theirs(merchant, inproc_bank):
    """Merchant A's objects, one of each kind the console shows (the payout first: it must pay out
    exactly the merchant's payable balance, which the refund's order would add to)."""
    payout = pending_payout(merchant, maker="a-maker")
    refund, case = reviewed_refund(merchant)
    rule = rule_create(
        merchant=merchant,
        actor="test",
        code="a-rule",
        name="A",
        scope="refund",
        expression="amount > 5",
        action="review",
    )
    return {
        "alert": alert(merchant),
        "refund": refund,
        "case": case,
        "payout": payout,
        "rule": rule,
    }


def _urls(o) -> tuple[list[str], list[tuple[str, dict]]]:
    gets = [
        f"/console/alerts/{o['alert'].pk}/",
        f"/console/cases/{o['case'].pk}/",
        f"/console/refunds/{o['refund'].pk}/",
        f"/console/payouts/{o['payout'].pk}/",
        f"/console/withdrawals/{o['payout'].pk}/",
        f"/console/rules/{o['rule'].pk}/test",
    ]
    posts = [
        (f"/console/alerts/{o['alert'].pk}/ack", {}),
        (f"/console/alerts/{o['alert'].pk}/resolve", {}),
        (f"/console/alerts/{o['alert'].pk}/silence", {"hours": "4"}),
        (f"/console/cases/{o['case'].pk}/decide", {"decision": "approve", "note": "x"}),
        (f"/console/payouts/{o['payout'].pk}/approve", {}),
        (f"/console/rules/{o['rule'].pk}/mode", {"mode": "disabled"}),
        (f"/console/rules/{o['rule'].pk}/test", {"days": "30"}),
    ]
    return gets, posts


def test_merchant_b_gets_404_for_every_page_and_action_on_a_objects_and_writes_nothing(other_client, theirs, caplog):
    gets, posts = _urls(theirs)
    before, state = _counts(), _state()
    with caplog.at_level(logging.WARNING, logger="refundguard.console"):
        for url in gets:
            response = other_client.get(url)
            assert response.status_code == 404, url
            assert theirs["refund"].customer.name not in response.content.decode()
        for url, data in posts:
            assert other_client.post(url, data).status_code == 404, url
            assert other_client.post(url, data, HTTP_HX_REQUEST="true").status_code == 404, url
    assert (_counts(), _state()) == (before, state)
    assert len([r for r in caplog.records if "not found for merchant" in r.getMessage()]) == len(gets) + 2 * len(posts)


def test_walking_ids_finds_nothing_of_another_merchant(other_client, theirs):
    before, state = _counts(), _state()
    top = max(o.pk for o in theirs.values()) + 5
    for pk in range(1, top + 1):
        for url in (
            f"/console/alerts/{pk}/",
            f"/console/cases/{pk}/",
            f"/console/refunds/{pk}/",
            f"/console/payouts/{pk}/",
        ):
            assert other_client.get(url).status_code == 404, url
        assert other_client.post(f"/console/alerts/{pk}/ack").status_code == 404
        assert other_client.post(f"/console/cases/{pk}/decide", {"decision": "approve"}).status_code == 404
    for huge in ("9223372036854775808", "99999999999999999999999"):
        assert other_client.get(f"/console/refunds/{huge}/").status_code == 404
    assert (_counts(), _state()) == (before, state)


def test_lists_search_and_reports_of_b_show_none_of_a(other_client, theirs):
    refund = theirs["refund"]
    for url, params in (
        ("/console/", {}),
        ("/console/alerts/", {}),
        ("/console/cases/", {}),
        ("/console/refunds/", {"order": refund.order.external_id}),
        ("/console/refunds/", {"customer": refund.customer.external_id}),
        ("/console/payouts/", {}),
        ("/console/approvals/", {}),
        ("/console/commissions/", {"beneficiary": refund.customer.external_id}),
        ("/console/rules/", {}),
        ("/console/reports/", {}),
        ("/console/reports/outcomes.csv", {}),
    ):
        response = other_client.get(url, params)
        if params:  # a search echoes what was asked for: what matters is that it found nothing
            assert list(response.context["page"]) == [], (url, params)
            continue
        body = response.content.decode()
        assert refund.customer.name not in body, url
        assert refund.order.external_id not in body, url
        assert theirs["alert"].summary not in body, url
        assert theirs["payout"].reference not in body, url
        assert "a-rule" not in body, url
