"""Fixtures of the guarantee tests that hold for every movement of money out (refund, payout,
withdrawal): `movement` runs a test once per kind, against the in-process sandbox bank."""

from __future__ import annotations

import pytest

from tests.gateways.conftest import sandbox_settings  # noqa: F401 (fixture)
from tests.gateways.inproc_bank import bank_queries, inproc_sandbox  # noqa: F401 (fixtures)
from tests.payouts.conftest import payout_settings  # noqa: F401 (fixture)
from tests.refunds.conftest import clock, refund_settings  # noqa: F401 (fixtures)
from tests.transfers.movements import DRIVERS, KINDS, Movement


@pytest.fixture
def transfer_settings(refund_settings, payout_settings):  # noqa: F811 (the imported fixtures)
    """Refund and payout timings shrunk alike (poll 5 s, unknown-outcome query 3 s, retry 10 s);
    a first payout to a new account goes straight out instead of to a reviewer."""
    payout_settings.PAYOUT_REVIEW_NEW_DESTINATION = False
    return payout_settings


@pytest.fixture(params=KINDS)
def movement(request, merchant, inproc_sandbox, transfer_settings) -> Movement:  # noqa: F811
    """The driver of one movement kind for merchant A, the sandbox bank wired in-process."""
    return DRIVERS[request.param](merchant)
