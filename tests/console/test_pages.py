"""Every console page renders for a signed-in member of the merchant, shows only that merchant's
data, and sends anyone else away: anonymous → login, platform operator → no-merchant page."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine

from apps.accounts.models import User
from tests.console.support import alert, reviewed_refund, staff

pytestmark = pytest.mark.django_db

PAGES = [
    "/console/",
    "/console/alerts/",
    "/console/alerts/?tier=P0&status=open",
    "/console/cases/",
    "/console/cases/?status=decided",
    "/console/refunds/",
    "/console/refunds/?order=ord&customer=cust&status=manual_review&from=2020-01-01&to=2099-01-01",
    "/console/payouts/",
    "/console/withdrawals/?status=paid&from=bad-date",
    "/console/approvals/",
    "/console/commissions/",
    "/console/commissions/?beneficiary=c-unknown",
    "/console/rules/",
    "/console/rules/?days=90",
    "/console/reports/",
    "/console/reports/?days=7",
]


@pytest.mark.parametrize("role", list(User.Role.values))
def test_every_page_renders_for_every_role(login, merchant, role):
    client = login(staff(merchant, role))
    reviewed_refund(merchant)
    alert(merchant)
    for url in PAGES:
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)


def test_anonymous_is_sent_to_login_and_a_platform_operator_gets_the_no_merchant_page(client, login, db):
    response = client.get("/console/alerts/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    operator = User.objects.create(username="platform-op", is_staff=True)
    response = login(operator).get("/console/refunds/")
    assert response.status_code == 403
    assert b"No merchant" in response.content


def test_overview_shows_open_alerts_by_tier_in_flight_and_health_of_this_merchant_only(
    owner_client, merchant, other_merchant
):
    mine = alert(merchant, tier="P0", summary="Mine: refund 100000.00 failed")
    alert(merchant, tier="P1", kind="refund_late", summary="Mine: late refund")
    alert(other_merchant, tier="P0", summary="Theirs: secret failure")
    reviewed_refund(merchant)

    response = owner_client.get("/console/")
    body = response.content.decode()
    assert response.status_code == 200
    assert f'id="alert-{mine.pk}"' in body
    assert "Mine: refund 100000.00 failed" in body
    assert "Mine: late refund" in body
    assert "Theirs" not in body
    assert response.context["alert_counts"] == {"P0": 1, "P1": 1, "P2": 0}
    assert response.context["in_flight"]["refunds"] == [("manual_review", "In manual review", 1)]
    assert response.context["open_cases"] == 1
    assert "/static/vendor/htmx-2.0.11.min.js" in body
    assert "/static/console/live.js" in body


def test_refund_search_filters_by_order_customer_and_status(owner_client, merchant, other_merchant):
    refund, _ = reviewed_refund(merchant)
    other, _ = reviewed_refund(other_merchant)
    by_order = owner_client.get("/console/refunds/", {"order": refund.order.external_id})
    assert [r.pk for r in by_order.context["page"]] == [refund.pk]
    assert [
        r.pk for r in owner_client.get("/console/refunds/", {"order": other.order.external_id}).context["page"]
    ] == []
    by_customer = owner_client.get("/console/refunds/", {"customer": refund.customer.external_id})
    assert [r.pk for r in by_customer.context["page"]] == [refund.pk]
    assert [r.pk for r in owner_client.get("/console/refunds/", {"status": "succeeded"}).context["page"]] == []


def test_refund_detail_shows_timeline_decision_and_case(owner_client, merchant):
    refund, case = reviewed_refund(merchant)
    response = owner_client.get(f"/console/refunds/{refund.pk}/")
    body = response.content.decode()
    assert response.status_code == 200
    assert "manual_review" in body  # the decision outcome and the timeline's step
    assert list(response.context["events"].values_list("code", flat=True)) == list(
        refund.events.values_list("code", flat=True)
    )
    assert f"/console/cases/{case.pk}/" in body
    assert "Notifications sent" in body


def test_case_detail_shows_the_decision_evidence(owner_client, merchant):
    refund, case = reviewed_refund(merchant)
    response = owner_client.get(f"/console/cases/{case.pk}/")
    body = response.content.decode()
    assert response.status_code == 200
    assert "Decision evidence" in body
    for clause in refund.decision["clauses"]:
        assert clause["clause"] in body
    assert 'id="decide-form"' in body


def test_report_csv_exports_rows_and_neutralises_formulas(owner_client, merchant):
    reviewed_refund(merchant)
    response = owner_client.get("/console/reports/outcomes.csv")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    lines = response.content.decode().splitlines()
    assert lines == ["outcome,count", "manual_review,1"]
    assert owner_client.get("/console/reports/nothing.csv").status_code == 404


@time_machine.travel(datetime(2026, 11, 27, 4, 0, tzinfo=UTC), tick=True)
def test_todays_refund_rate_and_average_arrival_time(merchant):
    """At a fixed mid-day (UTC and Asia/Shanghai alike): the orders are paid minutes before "now",
    which just after midnight would be yesterday."""
    from datetime import timedelta

    from django.utils import timezone

    from apps.console.selectors import refund_figures_today
    from apps.refunds.models import Refund

    first, _ = reviewed_refund(merchant)
    second, _ = reviewed_refund(merchant)
    now = timezone.now()
    # Arrival times set directly: the figure is what is tested, not the bank round trip.
    Refund.objects.filter(pk=first.pk).update(created_at=now - timedelta(minutes=3), succeeded_at=now)
    Refund.objects.filter(pk=second.pk).update(created_at=now - timedelta(minutes=1), succeeded_at=now)
    figures = refund_figures_today(merchant=merchant)
    assert (figures["orders"], figures["refunds"], figures["rate_pct"]) == (2, 2, 100.0)
    assert (figures["arrived"], figures["avg_arrival_seconds"]) == (2, 120)
