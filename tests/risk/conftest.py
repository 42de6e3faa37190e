"""Risk fixtures: a frozen clock with channels switched off (approved refunds simply wait)."""

from __future__ import annotations

import pytest
import time_machine

from apps.gateways.models import Channel
from apps.risk import caching
from tests.risk.support import NOW


@pytest.fixture
def frozen(db):
    Channel.objects.update(is_enabled=False)
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture(autouse=True)
def _fresh_risk_caches():
    """Each test starts with empty per-process risk caches: the database is rolled back between
    tests without the signals that would bump their generations (apps.risk.caching)."""
    caching.clear()
    yield
    caching.clear()
