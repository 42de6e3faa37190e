"""The merchant console in a real browser: a P0 alert appears live without a reload, is acked from
its row, a review case is approved, and merchant B cannot open merchant A's objects by URL."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from apps.accounts.models import User
from apps.alerts.models import Alert
from apps.gateways.models import Channel
from apps.refunds.models import Refund
from apps.risk.models import Case
from tests.browser.conftest import screenshot
from tests.console.support import alert, reviewed_refund, staff
from tests.factories import MerchantFactory

pytestmark = [pytest.mark.browser, pytest.mark.postgres]


def raise_elsewhere(merchant, **kwargs) -> Alert:
    """Raise an alert from another thread, as a worker would: Playwright's sync API keeps an event
    loop in the test's thread, where publishing to the channel layer (async_to_sync) is refused."""
    raised: list[Alert] = []

    def run() -> None:
        try:
            raised.append(alert(merchant, **kwargs))
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(10)
    return raised[0]


@pytest.fixture
def merchant_a(transactional_db):
    Channel.objects.update(is_enabled=False)  # an approved refund waits: no bank round trip here
    return MerchantFactory(name="Acme Courses")


def test_staff_sees_a_p0_appear_live_acks_it_and_approves_a_case(logged_in_page, live_server_url, merchant_a):
    owner = staff(merchant_a, User.Role.OWNER, username="alice")
    refund, case = reviewed_refund(merchant_a)
    alert(merchant_a, tier="P1", kind="refund_late", summary="Refund for ord-1 not arrived after 24 h")

    page = logged_in_page(owner)
    page.goto(f"{live_server_url}/console/")
    page.wait_for_selector("body[data-live=connected]")
    page.evaluate("window.__sameDocument = true")
    assert page.locator("[data-tier-count=P0]").inner_text() == "0"

    raised = raise_elsewhere(merchant_a, tier="P0", summary="Refund of 150 000.00 CNY failed at the bank")

    row = page.locator(f"#alert-{raised.pk}")
    row.wait_for()
    assert "150 000.00" in row.inner_text()
    assert row.get_attribute("data-status") == "open"
    assert page.locator("[data-tier-count=P0]").inner_text() == "1"
    assert page.evaluate("window.__sameDocument") is True  # no reload happened
    screenshot(page, "console-overview")

    row.locator("button[data-action=ack]").click()
    page.wait_for_selector(f"#alert-{raised.pk}[data-status=acked]")
    raised.refresh_from_db()
    assert (raised.status, raised.assignee_id) == (Alert.Status.ACKED, owner.pk)

    page.goto(f"{live_server_url}/console/cases/{case.pk}/")
    assert "Decision evidence" in page.content()
    page.fill("#decide-form textarea[name=note]", "Spoke to the customer; genuine mistake.")
    with page.expect_navigation():
        page.click("#decide-form button[data-action=approve]")
    assert "approved" in page.locator(".flash").inner_text()
    case.refresh_from_db()
    refund.refresh_from_db()
    assert (case.status, case.decision, case.decided_by) == (Case.Status.DECIDED, "approve", "console:alice")
    # Approved by the reviewer, then held at submission: its customer is still frozen (G17).
    assert refund.status == Refund.Status.HELD
    assert list(refund.events.order_by("created_at", "id").values_list("code", flat=True))[-2:] == [
        "approved",
        "held_frozen",
    ]


def test_merchant_b_cannot_open_merchant_a_objects_by_url(logged_in_page, live_server_url, merchant_a):
    refund, case = reviewed_refund(merchant_a)
    a_alert = alert(merchant_a)
    intruder = staff(MerchantFactory(name="Other Shop"), User.Role.OWNER, username="mallory")

    page = logged_in_page(intruder)
    for path in (
        f"/console/refunds/{refund.pk}/",
        f"/console/cases/{case.pk}/",
        f"/console/alerts/{a_alert.pk}/",
    ):
        response = page.goto(f"{live_server_url}{path}")
        assert response.status == 404, path
        assert refund.customer.name not in page.content()
    page.goto(f"{live_server_url}/console/")
    assert a_alert.summary not in page.content()
    a_alert.refresh_from_db()
    assert a_alert.status == Alert.Status.OPEN
