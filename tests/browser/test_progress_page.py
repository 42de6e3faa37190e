"""The customer's progress page in a real browser: the parcel-tracker timeline, a delay with its
reason and new ETA, the account-change form resuming a refund the bank refused, a live update over
the WebSocket without reloading, and a tampered link. Also saves the README screenshots."""

from __future__ import annotations

import re
import time
from datetime import datetime

import pytest
from playwright.sync_api import expect

from apps.refunds.models import Refund
from apps.refunds.services import refund_progress_token
from tests.browser.conftest import DESKTOP, MOBILE, SANDBOX_SETTLE, screenshot
from tests.refunds.conftest import deliver_webhooks, open_order, request_refund

pytestmark = [
    pytest.mark.browser,
    pytest.mark.postgres,
    pytest.mark.timeout(120),
    # whitenoise hands static files to the ASGI handler as a synchronous iterator
    pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume synchronous iterators"),
]


def start_refund(api, suffix: str, *, locale: str = "en") -> Refund:
    body = request_refund(api, open_order(api, suffix, locale=locale))
    return Refund.objects.get(pk=body["id"])


def progress_path(refund: Refund) -> str:
    return f"/r/{refund_progress_token(refund)}/"


def bank_reports() -> None:
    """Let the sandbox bank settle what it was sent, then deliver its webhooks over HTTP."""
    time.sleep(SANDBOX_SETTLE + 0.2)
    deliver_webhooks()


def wait_for_status(refund: Refund, status: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        refund.refresh_from_db()
        if refund.status == status or time.monotonic() > deadline:
            break
        deliver_webhooks()
        time.sleep(0.2)
    assert refund.status == status


def test_customer_opens_the_link_and_sees_the_timeline_in_both_languages(api, sandbox_bank, live_server_url, new_page):
    refund = start_refund(api, "0000", locale="zh-hans")
    assert refund.status == Refund.Status.PROCESSING
    url = live_server_url + progress_path(refund)

    for name, viewport in (("desktop", DESKTOP), ("mobile", MOBILE)):
        page = new_page(viewport=viewport, is_mobile=viewport is MOBILE)
        page.goto(url)  # the customer's own language by default
        expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
        expect(page.get_by_test_id("status")).to_have_text("银行处理中")
        steps = page.locator(".tk-step")
        expect(steps).to_have_count(5)
        expect(steps.nth(3)).to_have_class(re.compile(r"\bis-current\b"))
        expect(steps.nth(3)).to_contain_text("处理中")
        expect(steps.nth(4)).to_have_class(re.compile(r"\bis-todo\b"))
        expect(page.locator(".tk-countdown").first).to_contain_text("还有")
        expect(page.get_by_test_id("account")).to_have_text("**** 0000")
        assert "6222020000000000" not in page.content()  # last four only (G12)
        screenshot(page, f"progress-zh-{name}")

        page.get_by_role("link", name="English").click()
        expect(page.get_by_test_id("status")).to_have_text("The bank is processing it")
        expect(steps.nth(2)).to_contain_text("Bank accepted")
        expect(steps.nth(2)).to_have_class(re.compile(r"\bis-done\b"))
        expect(page.locator(".tk-countdown").first).to_contain_text("to go")
        screenshot(page, f"progress-en-{name}")


def test_a_refund_held_by_the_bank_shows_the_reason_who_acts_and_the_new_eta(api, sandbox_bank, live_server_url, page):
    refund = start_refund(api, "0009")
    bank_reports()
    refund.refresh_from_db()
    assert refund.events.filter(code="held_by_bank").exists()

    page.goto(live_server_url + progress_path(refund))
    problem = page.get_by_test_id("problem")
    expect(problem.get_by_test_id("reason")).to_have_text("The bank is running a security check on this transfer.")
    expect(problem.get_by_test_id("responsible")).to_have_attribute("data-party", "bank")
    expect(problem.get_by_test_id("responsible")).to_contain_text("nothing is needed from you")
    eta = problem.get_by_test_id("new-eta").locator("time")
    expect(eta).to_be_visible()
    assert datetime.fromisoformat(eta.get_attribute("datetime")) == refund.expected_arrival_at
    expect(page.locator(".tk-step.is-problem")).to_contain_text("Processing")


def test_a_frozen_account_is_replaced_on_the_page_and_the_refund_arrives(api, sandbox_bank, live_server_url, page):
    refund = start_refund(api, "0002")
    bank_reports()
    refund.refresh_from_db()
    assert refund.status == Refund.Status.NEEDS_ACTION

    page.goto(live_server_url + progress_path(refund))
    expect(page.get_by_test_id("responsible")).to_have_attribute("data-party", "customer")
    expect(page.get_by_test_id("reason")).to_have_text("The bank says the receiving account is frozen.")
    form = page.get_by_test_id("account-form")
    form.get_by_label("Account holder name").fill("王小明")
    form.get_by_label("Bank").fill("ICBC")
    form.get_by_label("Account number").fill("6222 0211 1111 0000")
    with page.expect_navigation():
        form.get_by_role("button").click()

    expect(page.get_by_test_id("updated")).to_be_visible()
    expect(page.get_by_test_id("account")).to_have_text("**** 0000")
    refund.refresh_from_db()
    assert refund.status == Refund.Status.PROCESSING
    assert refund.destination_account.last4 == "0000"

    wait_for_status(refund, Refund.Status.SUCCEEDED)
    expect(page.get_by_test_id("status")).to_have_text("The money has arrived")  # pushed live
    expect(page.locator(".tk-step").nth(4)).to_have_class(re.compile(r"\bis-done\b"))
    codes = list(refund.events.order_by("created_at", "id").values_list("code", flat=True))
    assert codes[-4:] == ["account_updated", "submitted", "processing", "succeeded"]


def test_the_arrival_appears_live_without_a_reload(api, sandbox_bank, live_server_url, page):
    refund = start_refund(api, "0000")
    page.goto(live_server_url + progress_path(refund))
    expect(page.locator("#live")).to_have_attribute("data-socket", "open")
    page.evaluate("window.__notReloaded = true")
    expect(page.get_by_test_id("status")).to_have_text("The bank is processing it")

    bank_reports()
    wait_for_status(refund, Refund.Status.SUCCEEDED)

    expect(page.get_by_test_id("status")).to_have_text("The money has arrived")
    expect(page.get_by_test_id("live-state")).to_have_text("Updated just now")
    expect(page.get_by_test_id("messages").locator("li")).not_to_have_count(0)
    assert page.evaluate("window.__notReloaded") is True


def test_a_tampered_link_shows_the_invalid_page(api, sandbox_bank, live_server_url, page):
    refund = start_refund(api, "0000")
    token = refund_progress_token(refund)
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    response = page.goto(f"{live_server_url}/r/{tampered}/")
    assert response.status == 404
    expect(page.get_by_test_id("invalid")).to_contain_text("Link invalid or expired")
    assert "**** 0000" not in page.content()
