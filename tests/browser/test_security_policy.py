"""Every page type under the Content-Security-Policy in a real browser: the console (an htmx action
and the live socket), the login page, the API docs, the admin and a progress page with its live
update. The browser records every `securitypolicyviolation` and every console error: zero, and the
pages still work."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from apps.accounts.models import User
from apps.alerts.models import Alert
from apps.gateways.models import Channel
from apps.refunds.models import Refund
from tests.browser.conftest import BROWSER_PASSWORD
from tests.browser.test_progress_page import bank_reports, progress_path, start_refund, wait_for_status
from tests.console.support import alert, staff
from tests.factories import MerchantFactory

pytestmark = [
    pytest.mark.browser,
    pytest.mark.postgres,
    pytest.mark.timeout(120),
    pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume synchronous iterators"),
]

# Runs in every document before its own scripts; the Python side reads it after each step.
RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__violations.push(e.violatedDirective + " blocked " + (e.blockedURI || "inline") +
                           " at " + (e.sourceFile || location.href) + ":" + e.lineNumber);
});
"""


class Watch:
    """Violations and console errors of every page opened through `open`."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def attach(self, page):
        page.context.add_init_script(RECORD_VIOLATIONS)
        page.on("console", self._console)
        page.on("response", self._response)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        return page

    def _response(self, response) -> None:
        if response.status >= 400:
            self.problems.append(f"{response.status} {response.request.method} {response.url}")
        elif response.request.resource_type == "document" and "content-security-policy" not in response.headers:
            self.problems.append(f"no Content-Security-Policy on {response.url}")

    def _console(self, message) -> None:
        # A failed load is recorded with its URL by the response handler.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.problems.append(f"console: {message.text}")

    def check(self, page, where: str) -> None:
        violations = page.evaluate("window.__violations || []")
        self.problems.extend(f"{where}: {violation}" for violation in violations)
        assert self.problems == [], self.problems


@pytest.fixture
def watch() -> Watch:
    return Watch()


def test_login_console_docs_and_admin_run_without_a_violation(new_page, live_server_url, transactional_db, watch):
    Channel.objects.update(is_enabled=False)
    merchant = MerchantFactory(name="Acme Courses")
    owner = staff(merchant, User.Role.OWNER, username="alice")
    owner.set_password(BROWSER_PASSWORD)
    owner.save(update_fields=["password"])
    open_alert = alert(merchant, tier="P1", kind="refund_late", summary="Refund for ord-1 not arrived after 24 h")

    page = watch.attach(new_page())
    page.goto(f"{live_server_url}/accounts/login/")
    watch.check(page, "login")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", BROWSER_PASSWORD)
    with page.expect_navigation():
        page.click("button[type=submit]")

    page.goto(f"{live_server_url}/console/")
    page.wait_for_selector("body[data-live=connected]")  # console/live.js on its WebSocket
    page.locator(f"#alert-{open_alert.pk} button[data-action=ack]").click()  # htmx, CSRF from hx-headers
    page.wait_for_selector(f"#alert-{open_alert.pk}[data-status=acked]")
    open_alert.refresh_from_db()
    assert open_alert.status == Alert.Status.ACKED
    watch.check(page, "console dashboard")

    page.goto(f"{live_server_url}/console/reports/")
    page.wait_for_selector("canvas")
    watch.check(page, "console reports")

    page.goto(f"{live_server_url}/api/docs/")
    page.wait_for_selector(".swagger-ui .information-container")
    expect(page.locator(".swagger-ui .title").first).to_contain_text("RefundGuard API")
    watch.check(page, "api docs")

    User.objects.create_superuser(username="root", password=BROWSER_PASSWORD, email="root@example.com")
    admin = watch.attach(new_page())
    admin.goto(f"{live_server_url}/admin/login/")
    admin.fill("input[name=username]", "root")
    admin.fill("input[name=password]", BROWSER_PASSWORD)
    with admin.expect_navigation():
        admin.click("input[type=submit]")
    expect(admin.locator("#site-name")).to_be_visible()
    watch.check(admin, "admin index")
    admin.goto(f"{live_server_url}/admin/accounts/customer/")
    watch.check(admin, "admin changelist")
    admin.goto(f"{live_server_url}/admin/accounts/customer/add/")
    expect(admin.locator("form")).not_to_have_count(0)
    watch.check(admin, "admin add form")


def test_progress_page_updates_live_without_a_violation(api, sandbox_bank, live_server_url, new_page, watch):
    refund = start_refund(api, "0000")
    page = watch.attach(new_page())
    page.goto(live_server_url + progress_path(refund))
    expect(page.locator("#live")).to_have_attribute("data-socket", "open")  # track/live.js
    expect(page.get_by_test_id("status")).to_have_text("The bank is processing it")

    bank_reports()
    wait_for_status(refund, Refund.Status.SUCCEEDED)

    expect(page.get_by_test_id("status")).to_have_text("The money has arrived")
    expect(page.get_by_test_id("live-state")).to_have_text("Updated just now")  # data-updated-text
    watch.check(page, "progress page")
