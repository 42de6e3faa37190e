"""The sandbox bank's daily statement, through the real adapter over real HTTP: what really moved,
once per execution, per channel and value date."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
import time_machine

from apps.common.errors import NotFoundError
from apps.gateways.base import ChannelError, ChannelTimeout, StatementDirection, StatementLine
from apps.gateways.models import ChannelCall, SandboxTransfer
from apps.gateways.sandbox.bank import outage_set
from apps.gateways.services import channel_statement, channel_statement_codes, channel_submit
from tests.gateways.conftest import http, later, transfer

pytestmark = pytest.mark.timeout(60)

START = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
DAY = START.date()


@pytest.fixture
def day_start():
    """A fixed morning, still ticking, so that settlements and returns fall on DAY."""
    with time_machine.travel(START, tick=True):
        yield


def test_statement_lists_each_execution_and_each_return_of_the_day(bank, day_start):
    for number, suffix in [(1, "0000"), (2, "0002"), (3, "0003"), (6, "0009"), (7, "0001")]:
        channel_submit(channel=bank, request=transfer(number, suffix, amount=1000 * number))
    # 0005: the submit times out but executes; a blind re-submit executes again (this bank's quirk).
    for _ in range(2):
        with pytest.raises(ChannelTimeout):
            channel_submit(channel=bank, request=transfer(5, "0005", amount=5000))
    assert SandboxTransfer.objects.get(request_id="refund:5:submit").executions == 2

    with later(120):
        lines = channel_statement(channel=bank, date=DAY)
        tomorrow = channel_statement(channel="sandbox", date=date(2026, 11, 21))

    transfer_id = dict(SandboxTransfer.objects.values_list("request_id", "transfer_id"))
    assert sorted(lines, key=lambda line: line.line_id) == sorted(
        [
            StatementLine(
                f"{transfer_id['refund:1:submit']}:out:1",
                DAY,
                "refund:1:submit",
                "refund:1",
                1000,
                "CNY",
                StatementDirection.OUT,
                transfer_id["refund:1:submit"],
            ),
            StatementLine(
                f"{transfer_id['refund:3:submit']}:out:1",
                DAY,
                "refund:3:submit",
                "refund:3",
                3000,
                "CNY",
                StatementDirection.OUT,
                transfer_id["refund:3:submit"],
            ),
            StatementLine(
                f"{transfer_id['refund:3:submit']}:in",
                DAY,
                "refund:3:submit",
                "refund:3",
                3000,
                "CNY",
                StatementDirection.IN,
                transfer_id["refund:3:submit"],
            ),
            *[
                StatementLine(
                    f"{transfer_id['refund:5:submit']}:out:{n}",
                    DAY,
                    "refund:5:submit",
                    "refund:5",
                    5000,
                    "CNY",
                    StatementDirection.OUT,
                    transfer_id["refund:5:submit"],
                )
                for n in (1, 2)
            ],
        ],
        key=lambda line: line.line_id,
    )
    assert tomorrow == []
    statement_calls = ChannelCall.objects.filter(action="statement").order_by("id")
    assert list(statement_calls.values_list("request_id", "outcome", "http_status")) == [
        ("statement:2026-11-20", "received", 200),
        ("statement:2026-11-21", "received", 200),
    ]


def test_unsettled_transfers_are_not_on_the_statement_yet(bank, day_start):
    channel_submit(channel=bank, request=transfer(1, "0000"))
    assert channel_statement(channel=bank, date=DAY) == []
    with later(3):
        assert [line.direction for line in channel_statement(channel=bank, date=DAY)] == ["out"]


def test_statement_is_per_channel(bank, day_start):
    channel_submit(channel=bank, request=transfer(1, "0000"))
    with later(3):
        assert len(channel_statement(channel="sandbox", date=DAY)) == 1
        assert channel_statement(channel="sandbox-backup", date=DAY) == []
    assert channel_statement_codes(adapter="sandbox") == ["sandbox", "sandbox-backup"]
    assert channel_statement_codes(adapter="carrier-pigeon") == []


def test_outage_is_a_channel_error_and_is_recorded(bank, day_start):
    outage_set(channel="sandbox", enabled=True)
    with pytest.raises(ChannelError) as caught:
        channel_statement(channel=bank, date=DAY)
    assert caught.value.http_status == 503
    call = ChannelCall.objects.get(action="statement")
    assert (call.outcome, call.http_status, call.raw_code) == ("error", 503, "SERVICE_UNAVAILABLE")


@pytest.mark.parametrize("raw", ["", "2026-13-01", "20261120", "2026-11-20T00:00", "yesterday"])
def test_bad_date_is_400(bank, sandbox_settings, raw):
    response = http("GET", f"{sandbox_settings.SANDBOX_BANK_URL}/statements", params={"date": raw})
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["date"]


def test_unknown_channel_code_is_not_found(channel):
    with pytest.raises(NotFoundError):
        channel_statement(channel="nope", date=DAY)
