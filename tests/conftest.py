"""Shared fixtures. PostgreSQL is the truth: tests marked `postgres` skip loudly on SQLite and
fail the run when CI=true and PostgreSQL is missing."""

from __future__ import annotations

import os

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from apps.accounts.services import api_key_create
from apps.common import caching
from apps.common.throttling import limit_state_clear
from apps.ledger.services import ledger_account_cache_clear
from tests.factories import MerchantFactory

_SKIPPED_FOR_POSTGRES: list[str] = []


def pytest_collection_modifyitems(config, items):
    if settings.IS_POSTGRES:
        return
    if os.environ.get("CI", "").lower() == "true":
        raise pytest.UsageError(
            "CI=true but DATABASE_URL does not point at PostgreSQL: the guarantees are proven only there."
        )
    skip = pytest.mark.skip(reason="needs PostgreSQL (set DATABASE_URL)")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)
            _SKIPPED_FOR_POSTGRES.append(item.nodeid)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if _SKIPPED_FOR_POSTGRES:
        terminalreporter.write_sep("!", f"{len(_SKIPPED_FOR_POSTGRES)} tests needing PostgreSQL were SKIPPED")
        terminalreporter.write_line("Set DATABASE_URL=postgres://... to run them (CI always does).")


@pytest.fixture(autouse=True)
def _no_process_local_cache():
    """Each test starts and ends without per-process copies (apps.common.localcache, the
    generation caches of apps.common.caching and the ledger's account ids): the database is rolled
    back between tests without the signals that would bump the generations, and an account id cached
    by an on-commit callback a test ran (captureOnCommitCallbacks) names a row that was rolled back."""
    caching.clear()
    ledger_account_cache_clear()
    yield
    caching.clear()
    ledger_account_cache_clear()


@pytest.fixture(autouse=True)
def _no_rate_limit_counts():
    """Each test starts with no rate-limit counts (apps.common.throttling): they live in the shared
    cache (Redis in CI), so requests of earlier tests, or of another run, would count against this
    one. Sign-in lockouts (django-axes) are database rows, rolled back with the test."""
    limit_state_clear()


@pytest.fixture(autouse=True)
def _celery_eager():
    """Tasks run in-process during tests; the broker path is covered by the e2e test."""
    from refundguard.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


@pytest.fixture
def in_memory_layer(settings):
    """Channels' in-memory layer, fresh for the test (WebSocket tests: one process, no Redis)."""
    from channels.layers import channel_layers

    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.fixture(autouse=True)
def _live_events_direct(settings):
    """Live events go straight to the channel layer (one process here); tests of the database relay
    that crosses processes in the embedded setup switch it on themselves."""
    settings.LIVE_RELAY = "channel_layer"


@pytest.fixture
def merchant(db):
    return MerchantFactory(name="Merchant A")


@pytest.fixture
def other_merchant(db):
    return MerchantFactory(name="Merchant B")


def _client_for(merchant) -> APIClient:
    _, raw = api_key_create(merchant=merchant)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    client.merchant = merchant
    return client


@pytest.fixture
def api(merchant) -> APIClient:
    """An API client authenticated as merchant A."""
    return _client_for(merchant)


@pytest.fixture
def other_api(other_merchant) -> APIClient:
    """An API client authenticated as merchant B."""
    return _client_for(other_merchant)
