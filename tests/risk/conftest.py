"""Risk fixtures: a frozen clock with channels switched off (approved refunds simply wait)."""

from __future__ import annotations

import pytest
import time_machine

from apps.gateways.models import Channel
from tests.risk.support import NOW


@pytest.fixture
def frozen(db):
    Channel.objects.update(is_enabled=False)
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller
