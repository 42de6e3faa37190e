"""Browser-test fixtures: Debian's Chromium driven by Playwright against the app served over real
HTTP and WebSockets by daphne. Shared by every page's browser tests (progress pages, console).

What a test gets
----------------
- `browser` (session): one headless Chromium for the whole run, launched from the `chromium` on
  PATH (`apt-get install chromium`, see `.ci/run`); never a Playwright-downloaded browser. Missing
  Chromium skips the browser tests loudly, or fails the run when CI=true.
- `live_app` (session): daphne serving `refundguard.asgi:application` (HTTP *and* `/ws/...`) in a
  background thread of the pytest process, on a free port. Same process, so the pytest test
  database, `settings` overrides, eager Celery tasks and time-machine all reach the served app;
  the channel layer is whatever settings chose (Redis with REDIS_URL, else the in-memory one, which
  works because web and test share the process). `live_app.url` is its base URL.
- `live_server_url` (function): `live_app.url`, with PUBLIC_BASE_URL and the sandbox bank pointed at
  it, so links in messages and the bank's webhooks come back to the served app.
- `page` (function): a fresh browser context (cookies, storage) and page per test, desktop size,
  English/Chinese-neutral; closed after the test. `new_page(**context_options)` opens more (a
  second user, a mobile viewport: `new_page(viewport=MOBILE, is_mobile=True)`).
- `sandbox_bank` (function): the sandbox channel pointing at the served app's `/sandbox/bank/`, with
  short settle times; `deliver_webhooks()` (tests.refunds.conftest) then makes the bank report.
- `logged_in_page(user)` (function): a page signed in to the console as `user` through
  `/accounts/login/`; the user's password is (re)set to `BROWSER_PASSWORD` first.

Rules for tests that use them
-----------------------------
- Mark them `pytest.mark.browser` (the marker this conftest also adds) and request
  `transactional_db` (or `@pytest.mark.django_db(transaction=True)`): the served app reads the
  database over its own connections, so the data must be committed.
- Do not keep pages open across tests; one context per test keeps them independent and cheap.
- Playwright's sync API runs an event loop in the test thread, so code there cannot use
  `async_to_sync` (e.g. a service that pushes to the channel layer) while the browser is open: raise
  such events through the served app (HTTP), or wrap the call in `off_loop(fn, *args, **kwargs)`.
- Screenshots worth keeping go to `docs/screenshots/` via `screenshot(page, name)` (PNG, small).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections

from tests.gateways.conftest import sandbox_settings  # noqa: F401 (fixture)

SCREENSHOTS = Path(settings.BASE_DIR) / "docs" / "screenshots"
MOBILE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
BROWSER_PASSWORD = "browser-tests-only-pw-1"  # test-only; logged_in_page sets it on the user
# Flags for a headless Chromium in a container: no sandbox (root, no user namespaces), no
# background traffic to Google (updates, safe browsing), /tmp instead of a small /dev/shm.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--disable-extensions",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--metrics-recording-only",
    "--no-first-run",
    "--mute-audio",
]
TIMEOUT_MS = 10_000
SANDBOX_SETTLE = 0.3


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.postgres)


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


# --- the browser ----------------------------------------------------------------------------------


# Package scope, not session: Playwright's sync API runs an event loop in this thread while it is
# open, and tests after the browser tests (asyncio.run, async_to_sync) need the thread without one.
@pytest.fixture(scope="package")
def browser():
    executable = shutil.which("chromium")
    if executable is None:
        message = "chromium is not on PATH: install it with `apt-get install -y chromium` (see .ci/run)"
        if _in_ci():
            pytest.fail(message + " — CI=true, so browser tests may not be skipped")
        pytest.skip("BROWSER TESTS SKIPPED: " + message)
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; Django would then refuse ORM calls
    # from the (synchronous) test code. The check guards async code, of which tests have none.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            launched = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
            yield launched
            launched.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def new_page(browser) -> Iterator[Callable[..., object]]:
    """Open a page in a fresh context: `new_page(viewport=MOBILE, locale="zh-CN")`."""
    contexts = []

    def open_page(**options):
        options.setdefault("viewport", DESKTOP)
        context = browser.new_context(**options)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_page):
    return new_page()


def off_loop(fn: Callable, *args, **kwargs):
    """Run `fn` in a fresh thread (no event loop there) and return its result or raise its error."""
    outcome: dict = {}

    def run():
        try:
            outcome["value"] = fn(*args, **kwargs)
        except BaseException as exc:
            outcome["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, name="off-loop")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def screenshot(page, name: str) -> Path:
    """Save a screenshot of the whole page as docs/screenshots/<name>.png (committed, linked from README)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


# --- the served app ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LiveApp:
    url: str
    port: int


@pytest.fixture(scope="session")
def live_app(django_db_setup, django_db_blocker) -> Iterator[LiveApp]:
    """daphne serving HTTP and WebSockets from a thread of this process, for the whole session.

    Twisted's reactor runs once per process, so this is session-scoped; it starts after the test
    database exists (its threads open their own connections to it, closed after every request).
    """
    from daphne.server import Server  # installs Twisted's asyncio reactor: import only here

    from refundguard.asgi import application

    db = connections.settings["default"]
    previous_max_age = db.get("CONN_MAX_AGE", 0)
    # Request threads close their connection after each request: a kept connection would block
    # the test database's flush and drop.
    db["CONN_MAX_AGE"] = 0
    port = _free_port()
    ready = threading.Event()
    server = Server(
        application=application,
        endpoints=[f"tcp:port={port}:interface=127.0.0.1"],
        signal_handlers=False,
        ready_callable=ready.set,
        action_logger=None,
        websocket_handshake_timeout=5,
    )
    thread = threading.Thread(target=server.run, name="live-app-daphne", daemon=True)
    thread.start()
    if not ready.wait(10):
        pytest.fail("daphne did not start")
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail(f"daphne is not listening on {port}")
            time.sleep(0.05)
    yield LiveApp(url=f"http://127.0.0.1:{port}", port=port)

    from twisted.internet import reactor

    reactor.callFromThread(reactor.stop)
    thread.join(10)
    db["CONN_MAX_AGE"] = previous_max_age
    with django_db_blocker.unblock():
        _close_leftover_connections()


def _close_leftover_connections() -> None:
    """Safety net before the test database is dropped: end sessions the server threads left open."""
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    connections.close_all()


@pytest.fixture
def live_server_url(live_app, transactional_db, settings) -> str:
    """The served app's base URL; links in messages and the sandbox bank point at it."""
    settings.PUBLIC_BASE_URL = live_app.url
    settings.SANDBOX_BANK_URL = f"{live_app.url}/sandbox/bank"
    settings.CHANNEL_HTTP_KEEPALIVE = False
    return live_app.url


@pytest.fixture
def sandbox_bank(live_server_url, sandbox_settings):  # noqa: F811 (the imported fixture)
    """The sandbox bank served by the live app; transfers settle SANDBOX_SETTLE seconds after submission."""
    from apps.gateways.models import Channel
    from apps.gateways.services import ensure_sandbox_channel

    sandbox_settings.SANDBOX_BANK_SETTLE_SECONDS = SANDBOX_SETTLE
    ensure_sandbox_channel()
    Channel.objects.update(timeout_seconds=5)
    return Channel.objects.get(code="sandbox")


# --- signing in -------------------------------------------------------------------------------------


@pytest.fixture
def logged_in_page(new_page, live_server_url) -> Callable[..., object]:
    """`logged_in_page(user, **context_options)`: a page signed in to the console as `user`.

    Sets the user's password to BROWSER_PASSWORD, signs in through /accounts/login/ like a person
    and returns the page showing wherever the login redirected (the console by default)."""

    def sign_in(user, **options):
        user.set_password(BROWSER_PASSWORD)
        user.save(update_fields=["password"])
        page = new_page(**options)
        page.goto(f"{live_server_url}/accounts/login/")
        page.fill("input[name=username]", user.get_username())
        page.fill("input[name=password]", BROWSER_PASSWORD)
        with page.expect_navigation():
            page.click("button[type=submit]")
        if "/accounts/login/" in page.url:
            raise AssertionError(f"signing in as {user.get_username()} failed")
        return page

    return sign_in
