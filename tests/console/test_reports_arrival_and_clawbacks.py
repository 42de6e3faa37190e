"""Reports: time-to-arrival histogram and commission clawbacks per day, on the page and as CSV,
counted and summed exactly from the rows each test writes, for this merchant only."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.accounts.models import User
from apps.commissions.models import Commission, CommissionEvent
from apps.refunds.models import Refund
from tests.console.support import reviewed_refund, staff

pytestmark = pytest.mark.django_db

H = timedelta(hours=1)


def _arrived(merchant, took: timedelta, *, ago: timedelta = timedelta(0)) -> Refund:
    """A refund that succeeded `ago` before now, `took` after it was requested (times set directly:
    the report is what is tested, not the bank round trip)."""
    refund, _ = reviewed_refund(merchant)
    succeeded = timezone.now() - ago
    Refund.objects.filter(pk=refund.pk).update(created_at=succeeded - took, succeeded_at=succeeded)
    return refund


@pytest.fixture
def arrivals(merchant, other_merchant):
    for took in (30 * timedelta(minutes=1), 2 * H, 6 * H - timedelta(minutes=1), 6 * H, 30 * H, 73 * H):
        _arrived(merchant, took)
    _arrived(merchant, 2 * H, ago=timedelta(days=40))  # outside 30 days, inside 90
    for _ in range(2):
        _arrived(other_merchant, 10 * H)


def _commission(refund: Refund, level: int, *, amount: int, currency: str = "CNY") -> Commission:
    return Commission.objects.create(
        merchant=refund.merchant,
        order=refund.order,
        beneficiary=refund.customer,
        level=level,
        amount=amount,
        currency=currency,
    )


def _event(c: Commission, amount: int, *, code: str = "clawed_back", ago: timedelta = timedelta(0)) -> None:
    CommissionEvent.objects.create(
        commission=c, code=code, amount=amount, actor="test", created_at=timezone.now() - ago
    )


@pytest.fixture
def clawbacks(merchant, other_merchant):
    """Today: c1 clawed back twice (1234 + 100) and c2 once (500), CNY; c3 700 JPY. Yesterday: c1 66.
    Not clawbacks: a zero-amount clawed_back event, a `frozen` event. B: 99999 CNY today."""
    refund, _ = reviewed_refund(merchant)
    c1 = _commission(refund, 1, amount=5000)
    c2 = _commission(refund, 2, amount=5000)
    c3 = _commission(refund, 3, amount=5000, currency="JPY")
    _event(c1, 1234)
    _event(c1, 100)
    _event(c2, 500)
    _event(c3, 700)
    _event(c1, 66, ago=timedelta(days=1))
    _event(c2, 0)
    _event(c2, 800, code="frozen")
    _event(c1, 5, ago=timedelta(days=45))
    theirs, _ = reviewed_refund(other_merchant)
    _event(_commission(theirs, 1, amount=100000), 99999)


def _today(days_ago: int = 0) -> str:
    return (timezone.localdate() - timedelta(days=days_ago)).isoformat()


@pytest.mark.parametrize("role", list(User.Role.values))
def test_reports_page_shows_both_new_charts_for_every_role(login, merchant, arrivals, clawbacks, role):
    response = login(staff(merchant, role)).get("/console/reports/")
    assert response.status_code == 200
    body = response.content.decode()
    for marker in (
        'id="chart-arrival"',
        'id="chart-clawbacks"',
        "/console/reports/time_to_arrival.csv?days=30",
        "/console/reports/clawbacks.csv?days=30",
    ):
        assert marker in body, marker


def test_time_to_arrival_buckets_count_refunds_succeeded_in_the_period(owner_client, arrivals):
    data = owner_client.get("/console/reports/").context["data"]["time_to_arrival"]
    assert data == [
        {"bucket": "<1h", "refunds": 1},
        {"bucket": "1-6h", "refunds": 2},
        {"bucket": "6-24h", "refunds": 1},  # exactly 6 h is the next bucket
        {"bucket": "1-3d", "refunds": 1},
        {"bucket": ">3d", "refunds": 1},
    ]
    quarter = owner_client.get("/console/reports/", {"days": 90}).context["data"]["time_to_arrival"]
    assert [r["refunds"] for r in quarter] == [1, 3, 1, 1, 1]


def test_time_to_arrival_csv(owner_client, arrivals):
    response = owner_client.get("/console/reports/time_to_arrival.csv", {"days": 30})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert 'filename="time_to_arrival-30d-' in response["Content-Disposition"]
    assert response.content.decode().splitlines() == [
        "bucket,refunds",
        "<1h,1",
        "1-6h,2",
        "6-24h,1",
        "1-3d,1",
        ">3d,1",
    ]


def test_clawbacks_per_day_and_currency_with_amounts_formatted_on_the_page(owner_client, clawbacks):
    response = owner_client.get("/console/reports/")
    rows = [{k: r[k] for k in ("day", "currency", "amount", "commissions")} for r in response.context["clawbacks"]]
    assert rows == [
        {"day": _today(1), "currency": "CNY", "amount": 66, "commissions": 1},
        {"day": _today(), "currency": "CNY", "amount": 1834, "commissions": 2},
        {"day": _today(), "currency": "JPY", "amount": 700, "commissions": 1},
    ]
    assert [(t["currency"], t["amount"]) for t in response.context["clawback_totals"]] == [
        ("CNY", 1900),
        ("JPY", 700),
    ]
    body = response.content.decode()
    assert "18.34" in body  # 1834 minor units of CNY
    assert "19.00" in body  # the period's CNY total
    assert "¥700" in body  # JPY has no minor unit
    assert "999.99" not in body  # merchant B's clawback
    assert [r["major"] for r in response.context["data"]["clawbacks"]] == ["0.66", "18.34", "700"]


def test_clawbacks_csv_is_in_minor_units_with_currency(owner_client, clawbacks):
    lines = owner_client.get("/console/reports/clawbacks.csv").content.decode().splitlines()
    assert lines == [
        "day,currency,amount,commissions",
        f"{_today(1)},CNY,66,1",
        f"{_today()},CNY,1834,2",
        f"{_today()},JPY,700,1",
    ]
    quarter = owner_client.get("/console/reports/clawbacks.csv", {"days": 90}).content.decode().splitlines()
    assert quarter[1] == f"{_today(45)},CNY,5,1"
    assert len(quarter) == 5


def test_merchant_b_reports_show_only_its_own_arrivals_and_clawbacks(other_client, arrivals, clawbacks):
    data = other_client.get("/console/reports/").context["data"]
    assert [r["refunds"] for r in data["time_to_arrival"]] == [0, 0, 2, 0, 0]
    assert [(r["currency"], r["amount"], r["commissions"]) for r in data["clawbacks"]] == [("CNY", 99999, 1)]
    lines = other_client.get("/console/reports/clawbacks.csv").content.decode().splitlines()
    assert lines == ["day,currency,amount,commissions", f"{_today()},CNY,99999,1"]
