"""Channel health fixtures shared by the gateway and refund tests: small thresholds and a recorder
of the health signals (what the alerts app will listen to)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from apps.gateways.signals import channel_failure_rate_rising, channel_health_changed

MIN_CALLS = 10
COOLOFF = 60


@pytest.fixture
def health_settings(sandbox_settings):
    sandbox_settings.CHANNEL_HEALTH_WINDOW = timedelta(minutes=15)
    sandbox_settings.CHANNEL_HEALTH_MIN_CALLS = MIN_CALLS
    sandbox_settings.CHANNEL_FAILURE_RATE_THRESHOLD = 0.2
    sandbox_settings.CHANNEL_FAILURE_RATE_RECOVERY = 0.1
    sandbox_settings.CHANNEL_DOWN_FAILURE_RATE = 0.9
    sandbox_settings.CHANNEL_DOWN_COOLOFF = timedelta(seconds=COOLOFF)
    sandbox_settings.CHANNEL_HEALTH_PROBE = True
    sandbox_settings.CHANNEL_HEALTH_PROBE_IDLE = timedelta(seconds=120)
    sandbox_settings.CHANNEL_HEALTH_STALE = timedelta(seconds=600)
    sandbox_settings.CHANNEL_RISING_DAYS = 3
    sandbox_settings.CHANNEL_RISING_MIN_CALLS = MIN_CALLS
    return sandbox_settings


class Announced:
    """Every health signal sent, in order, as (signal name, payload)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict]] = []

    def changed(self, sender, **payload) -> None:
        payload.pop("signal", None)
        self.sent.append(("changed", payload))

    def rising(self, sender, **payload) -> None:
        payload.pop("signal", None)
        self.sent.append(("rising", payload))

    def transitions(self, code: str | None = None) -> list[tuple[str, str, str]]:
        return [
            (payload["channel_code"], payload["old_state"], payload["new_state"])
            for name, payload in self.sent
            if name == "changed" and code in (None, payload["channel_code"])
        ]

    def of(self, name: str) -> list[dict]:
        return [payload for sent, payload in self.sent if sent == name]


@pytest.fixture
def announced():
    log = Announced()
    channel_health_changed.connect(log.changed, weak=False, dispatch_uid="tests.health.changed")
    channel_failure_rate_rising.connect(log.rising, weak=False, dispatch_uid="tests.health.rising")
    yield log
    channel_health_changed.disconnect(dispatch_uid="tests.health.changed")
    channel_failure_rate_rising.disconnect(dispatch_uid="tests.health.rising")
