"""Every sandbox account suffix, bank side, through the real adapter over real HTTP."""

from __future__ import annotations

import pytest

from apps.gateways.adapters import get_adapter
from apps.gateways.base import ChannelError, ChannelTimeout, Party, TransferStatus
from apps.gateways.models import Channel, ChannelCall, SandboxEvent, SandboxSubmission, SandboxTransfer
from apps.gateways.services import channel_query, channel_submit, channel_verify
from tests.gateways.conftest import account, http, later, transfer

pytestmark = pytest.mark.timeout(60)


def executions(request_id: str) -> int:
    row = SandboxTransfer.objects.filter(request_id=request_id).first()
    return row.executions if row else 0


def outcomes(request_id: str) -> list[str]:
    return list(SandboxSubmission.objects.filter(request_id=request_id).values_list("outcome", flat=True))


@pytest.mark.parametrize("suffix", ["0000", "1234"])
def test_ordinary_account_settles_after_the_delay_and_dedupes_by_request_id(bank, suffix):
    request = transfer(1, suffix)
    first = channel_submit(channel=bank, request=request)
    assert first.status == TransferStatus.PROCESSING
    assert first.http_status == 201
    assert first.amount == 19900
    assert first.currency == "CNY"
    assert first.channel_reference.startswith("sbx_")
    assert channel_query(channel=bank, request_id=request.request_id).status == TransferStatus.PROCESSING

    with later(3):
        settled = channel_query(channel=bank, request_id=request.request_id)
        again = channel_submit(channel=bank, request=request)
    assert settled.status == TransferStatus.SUCCEEDED
    assert settled.reason is None
    assert again.status == TransferStatus.SUCCEEDED
    assert again.http_status == 200
    assert again.channel_reference == first.channel_reference
    assert executions(request.request_id) == 1
    assert SandboxTransfer.objects.count() == 1
    assert outcomes(request.request_id) == ["executed", "deduplicated"]
    calls = list(ChannelCall.objects.order_by("id").values_list("action", "outcome", "http_status"))
    assert calls == [
        ("submit", "processing", 201),
        ("query", "processing", 200),
        ("query", "succeeded", 200),
        ("submit", "succeeded", 200),
    ]


def test_0001_stays_processing_for_thirty_hours_then_succeeds(bank):
    request = transfer(2, "0001")
    assert channel_submit(channel=bank, request=request).status == TransferStatus.PROCESSING
    with later(29 * 3600):
        assert channel_query(channel=bank, request_id=request.request_id).status == TransferStatus.PROCESSING
    with later(30 * 3600 + 1):
        assert channel_query(channel=bank, request_id=request.request_id).status == TransferStatus.SUCCEEDED
    assert executions(request.request_id) == 1


def test_0002_fails_account_frozen_for_the_customer_to_fix_and_moves_no_money(bank):
    request = transfer(3, "0002")
    assert channel_submit(channel=bank, request=request).status == TransferStatus.PROCESSING
    with later(3):
        result = channel_query(channel=bank, request_id=request.request_id)
    assert result.status == TransferStatus.FAILED
    assert result.raw_code == "ACCOUNT_FROZEN"
    assert result.reason.code == "account_frozen"
    assert result.reason.retryable is False
    assert result.reason.responsible_party == Party.CUSTOMER
    assert result.reason.message_key == "transfer.reason.account_frozen"
    assert executions(request.request_id) == 0


def test_0003_succeeds_then_the_funds_come_back_account_closed(bank):
    request = transfer(4, "0003")
    channel_submit(channel=bank, request=request)
    with later(3):
        assert channel_query(channel=bank, request_id=request.request_id).status == TransferStatus.SUCCEEDED
    with later(3 + 60):
        result = channel_query(channel=bank, request_id=request.request_id)
    assert result.status == TransferStatus.RETURNED
    assert result.reason.code == "account_closed"
    assert result.reason.responsible_party == Party.CUSTOMER
    assert executions(request.request_id) == 1


def test_0004_verification_and_submit_fail_with_holder_name_mismatch(bank):
    verified = channel_verify(channel=bank, account=account("0004"), reference="refund:5")
    assert verified.ok is False
    assert verified.raw_code == "NAME_MISMATCH"
    assert verified.reason.code == "holder_name_mismatch"
    assert verified.reason.retryable is False
    assert verified.reason.responsible_party == Party.CUSTOMER
    assert channel_verify(channel=bank, account=account("0000")).ok is True

    request = transfer(5, "0004")
    result = channel_submit(channel=bank, request=request)
    assert result.status == TransferStatus.FAILED
    assert result.http_status == 422
    assert result.reason.code == "holder_name_mismatch"
    assert channel_query(channel=bank, request_id=request.request_id).status == TransferStatus.NOT_FOUND
    assert SandboxTransfer.objects.count() == 0
    assert list(ChannelCall.objects.order_by("id").values_list("action", "outcome")) == [
        ("verify", "mismatch"),
        ("verify", "verified"),
        ("submit", "failed"),
        ("query", "not_found"),
    ]


def test_0005_times_out_after_executing_so_a_query_not_a_resubmit_is_the_answer(bank):
    request = transfer(6, "0005")
    with pytest.raises(ChannelTimeout) as caught:
        channel_submit(channel=bank, request=request)
    assert caught.value.reason.code == "timeout"
    assert caught.value.reason.retryable is True
    assert executions(request.request_id) == 1  # the bank did move the money

    queried = channel_query(channel=bank, request_id=request.request_id)
    # Found, not NOT_FOUND: the bank executed it. Whether it has settled yet depends on how long the
    # timed-out submit (1.5 s) and this query took against the bank's 2 s settle time.
    assert queried.status in (TransferStatus.PROCESSING, TransferStatus.SUCCEEDED)
    with later(3):
        assert channel_query(channel=bank, request_id=request.request_id).status == TransferStatus.SUCCEEDED
    assert executions(request.request_id) == 1
    assert list(ChannelCall.objects.order_by("id").values_list("action", "outcome")) == [
        ("submit", "timeout"),
        ("query", queried.status.value),
        ("query", "succeeded"),
    ]


def test_0005_blind_resubmit_would_pay_twice(bank):
    """The sandbox must be able to catch a double payment, or the guarantees prove nothing."""
    request = transfer(7, "0005")
    for _ in range(2):
        with pytest.raises(ChannelTimeout):
            channel_submit(channel=bank, request=request)
    assert executions(request.request_id) == 2
    assert outcomes(request.request_id) == ["executed", "executed"]


def test_0006_first_submit_times_out_without_executing_then_a_retry_executes_once(bank):
    request = transfer(8, "0006")
    with pytest.raises(ChannelTimeout):
        channel_submit(channel=bank, request=request)
    assert executions(request.request_id) == 0
    assert channel_query(channel=bank, request_id=request.request_id).status == TransferStatus.NOT_FOUND

    assert channel_submit(channel=bank, request=request).status == TransferStatus.PROCESSING
    assert channel_submit(channel=bank, request=request).status == TransferStatus.PROCESSING
    assert executions(request.request_id) == 1
    assert outcomes(request.request_id) == ["dropped", "executed", "deduplicated"]


def test_0007_first_submit_rejected_channel_limit_retryable_then_accepted(bank):
    request = transfer(9, "0007")
    first = channel_submit(channel=bank, request=request)
    assert first.status == TransferStatus.FAILED
    assert first.raw_code == "LIMIT_REACHED"
    assert first.reason.code == "channel_limit"
    assert first.reason.retryable is True
    assert first.reason.responsible_party == Party.BANK
    assert executions(request.request_id) == 0

    assert channel_submit(channel=bank, request=request).status == TransferStatus.PROCESSING
    assert executions(request.request_id) == 1
    assert outcomes(request.request_id) == ["rejected", "executed"]


def test_0008_schedules_each_webhook_twice_succeeded_before_processing(bank):
    request = transfer(10, "0008")
    channel_submit(channel=bank, request=request)
    events = list(SandboxEvent.objects.order_by("due_at", "id"))
    assert [event.status for event in events] == ["succeeded", "processing", "succeeded", "processing"]
    assert len({event.event_id for event in events}) == 2
    assert [event.copy for event in events] == [1, 1, 2, 2]
    with later(3):
        assert channel_query(channel=bank, request_id=request.request_id).status == TransferStatus.SUCCEEDED
    assert executions(request.request_id) == 1


def test_0009_is_held_by_the_banks_risk_control(bank):
    request = transfer(11, "0009")
    channel_submit(channel=bank, request=request)
    with later(3):
        result = channel_query(channel=bank, request_id=request.request_id)
    assert result.status == TransferStatus.HELD
    assert result.reason.code == "risk_hold"
    assert result.reason.responsible_party == Party.BANK
    assert executions(request.request_id) == 0


def test_outage_fails_every_call_for_that_channel_only(bank, live_server):
    switch = http("POST", f"{live_server.url}/sandbox/bank/outage", json={"channel": "sandbox", "enabled": True})
    assert switch.status_code == 200
    assert switch.json() == {"channel": "sandbox", "enabled": True}
    request = transfer(12, "0000")
    for call in (
        lambda: channel_submit(channel=bank, request=request),
        lambda: channel_query(channel=bank, request_id=request.request_id),
        lambda: channel_verify(channel=bank, account=account("0000")),
    ):
        with pytest.raises(ChannelError) as caught:
            call()
        assert not isinstance(caught.value, ChannelTimeout)
        assert caught.value.http_status == 503
        assert caught.value.reason.code == "outage"
        assert caught.value.reason.retryable is True
    assert SandboxTransfer.objects.count() == 0
    assert list(ChannelCall.objects.values_list("outcome", "http_status", "raw_code").distinct()) == [
        ("error", 503, "SERVICE_UNAVAILABLE")
    ]

    backup = Channel.objects.get(code="sandbox-backup")
    assert channel_submit(channel=backup, request=request).status == TransferStatus.PROCESSING
    assert SandboxTransfer.objects.get().channel == "sandbox-backup"

    http("POST", f"{live_server.url}/sandbox/bank/outage", json={"channel": "sandbox", "enabled": False})
    assert channel_query(channel=bank, request_id=request.request_id).status == TransferStatus.PROCESSING
    assert executions(request.request_id) == 1


def test_refused_connection_is_a_channel_error_not_a_timeout(bank):
    bank.base_url = "http://127.0.0.1:9/sandbox/bank"  # discard port: nothing listens
    with pytest.raises(ChannelError) as caught:
        get_adapter(bank).submit(transfer(13, "0000"))
    assert not isinstance(caught.value, ChannelTimeout)
    assert caught.value.reason.code == "outage"


def test_same_request_id_for_a_different_instruction_is_refused(bank):
    channel_submit(channel=bank, request=transfer(14, "0000"))
    with pytest.raises(ChannelError) as caught:
        channel_submit(channel=bank, request=transfer(14, "0000", amount=19901))
    assert caught.value.http_status == 409
    assert caught.value.reason.code == "request_invalid"
    assert caught.value.reason.retryable is False
    assert executions("refund:14:submit") == 1


@pytest.mark.parametrize(
    "body",
    [
        {
            "request_id": "r:1",
            "amount": 10.5,
            "currency": "CNY",
            "account": {"holder_name": "a", "bank": "b", "number": "12340000"},
        },
        {
            "request_id": "r:1",
            "amount": 0,
            "currency": "CNY",
            "account": {"holder_name": "a", "bank": "b", "number": "12340000"},
        },
        {
            "request_id": "r:1",
            "amount": 100,
            "currency": "cny",
            "account": {"holder_name": "a", "bank": "b", "number": "12340000"},
        },
        {"request_id": "r:1", "amount": 100, "currency": "CNY", "account": {"holder_name": "a", "bank": "b"}},
        {
            "request_id": "",
            "amount": 100,
            "currency": "CNY",
            "account": {"holder_name": "a", "bank": "b", "number": "1234"},
        },
        [1, 2],
    ],
)
def test_bank_refuses_malformed_transfers(bank, live_server, body):
    response = http("POST", f"{live_server.url}/sandbox/bank/transfers", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INVALID_REQUEST"
    assert SandboxTransfer.objects.count() == 0
