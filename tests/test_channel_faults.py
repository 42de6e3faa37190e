"""G4 and the channel-fault simulator: seeded scenarios of timeouts before and after execution,
lost answers, slow answers, refused connections, duplicated, reordered and dropped webhooks, a
skewed bank clock, outages (with failover), late returns, holds and the bank's other behaviours,
driven through the real refund and payout services (tests/channel_faults.py), every invariant
checked after every tick.

CI runs FAULTS_SCENARIOS (default 50) scenarios of seed FAULTS_SEED (default fixed, so CI is
reproducible); nightly: `FAULTS_SCENARIOS=1000 FAULTS_SEED=$(date +%Y%m%d) pytest -m faults`.
A failing scenario prints its plan and the command that replays it alone.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from datetime import timedelta

import pytest
import responses
import time_machine
from django.db import transaction
from django.utils import timezone

from apps.gateways.services import ensure_sandbox_channel
from tests.channel_faults import ScenarioRun
from tests.gateways.conftest import sandbox_settings  # noqa: F401 (fixture)
from tests.gateways.faults import FaultPlan, FaultyBank
from tests.gateways.inproc_bank import point_settings_at_inproc_bank

pytestmark = [pytest.mark.django_db, pytest.mark.faults]

SEED = int(os.environ.get("FAULTS_SEED", "20261207"))
ONLY = os.environ.get("FAULTS_SCENARIO")
SCENARIOS = [int(ONLY)] if ONLY else list(range(int(os.environ.get("FAULTS_SCENARIOS", "50"))))


class SimClock:
    """Our clock and the bank's, frozen; it moves only when the scenario moves it."""

    def __init__(self, traveller) -> None:
        self._traveller = traveller

    def advance(self, seconds: float) -> None:
        self._traveller.shift(timedelta(seconds=seconds))

    def now(self):
        return timezone.now()


@pytest.fixture
def fault_settings(db, sandbox_settings):  # noqa: F811 (the imported fixture)
    s = sandbox_settings
    point_settings_at_inproc_bank(s)
    s.SANDBOX_BANK_DELAY_SECONDS = 120.0  # 0001: settles two minutes late, within a scenario
    s.SANDBOX_BANK_RETURN_SECONDS = 60.0
    s.PAYOUT_REVIEW_NEW_DESTINATION = False
    for prefix in ("REFUND", "PAYOUT"):
        setattr(s, f"{prefix}_RETRY_CAP", timedelta(seconds=300))
    ensure_sandbox_channel()
    return s


@contextmanager
def scenario(number: int, on_commit, *, seed: int = SEED):
    plan = FaultPlan(seed=seed, scenario=number)
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        bank = FaultyBank(plan, SimClock(traveller))
        with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
            bank.install(mock)
            yield ScenarioRun(plan=plan, bank=bank, on_commit=on_commit)


def replay_command(number: int) -> str:
    return f"FAULTS_SEED={SEED} FAULTS_SCENARIO={number} pytest tests/test_channel_faults.py -k scenarios"


@pytest.mark.parametrize("number", SCENARIOS, ids=[f"scenario-{n}" for n in SCENARIOS])
def test_seeded_fault_scenarios_keep_every_invariant(number, fault_settings, django_capture_on_commit_callbacks):
    with scenario(number, django_capture_on_commit_callbacks) as run:
        violations = run.run()
    if violations:
        pytest.fail(
            "\n".join(
                [
                    f"seed {SEED} scenario {number} broke {len(violations)} invariant checks:",
                    *violations[:10],
                    f"plan: {run.plan.describe()}",
                    f"replay: {replay_command(number)}",
                    "last of the trace:",
                    *run.bank.trace[-30:],
                ]
            ),
            pytrace=False,
        )


@pytest.mark.parametrize("number", [3, 17, 42])
def test_a_scenario_replays_exactly_from_its_seed(number, fault_settings, django_capture_on_commit_callbacks):
    traces = []
    for _ in range(2):
        with transaction.atomic():
            with scenario(number, django_capture_on_commit_callbacks) as run:
                run.run()
            traces.append(run.bank.trace)
            transaction.set_rollback(True)
    assert traces[0] == traces[1]
    assert len(traces[0]) > 10
