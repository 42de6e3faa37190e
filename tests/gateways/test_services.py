"""Channel choice, the call log, the normalisation table, and the sandbox channels' seed."""

from __future__ import annotations

import io
import json
import logging

import pytest
from django.core.management import call_command
from django.forms.models import model_to_dict

from apps.gateways.adapters import ADAPTERS, get_adapter
from apps.gateways.adapters.sandbox import SandboxAdapter
from apps.gateways.base import Account, ChannelError, ChannelTimeout, Party
from apps.gateways.models import (
    Channel,
    ChannelCall,
    SandboxEvent,
    SandboxSubmission,
    SandboxTransfer,
)
from apps.gateways.sandbox.bank import sandbox_bank_deliver_webhooks
from apps.gateways.services import channel_for, channel_query, channel_submit, channel_verify, ensure_sandbox_channel
from tests.gateways.conftest import later, transfer


def test_ensure_sandbox_channel_is_idempotent_and_keeps_operator_changes(db, sandbox_settings):
    primary = ensure_sandbox_channel()
    assert (primary.code, primary.adapter, primary.priority) == ("sandbox", "sandbox", 10)
    assert primary.capabilities == {"refund": True, "payout": True, "withdrawal": True, "verify": True}
    assert primary.webhook_secret == sandbox_settings.SANDBOX_WEBHOOK_SECRET
    backup = Channel.objects.get(code="sandbox-backup")
    assert (backup.adapter, backup.priority, backup.capabilities) == ("sandbox", 20, primary.capabilities)

    Channel.objects.filter(code="sandbox").update(timeout_seconds=9, is_enabled=False)
    ensure_sandbox_channel()
    assert Channel.objects.count() == 2
    assert Channel.objects.get(code="sandbox").timeout_seconds == 9


def test_seed_demo_creates_the_sandbox_channels(db, sandbox_settings):
    call_command("seed_demo", "--force", stdout=io.StringIO())
    call_command("seed_demo", "--force", stdout=io.StringIO())
    assert sorted(Channel.objects.values_list("code", flat=True)) == ["sandbox", "sandbox-backup"]


def test_channel_for_picks_the_first_enabled_capable_channel_by_priority(channel):
    assert channel_for(capability="refund").code == "sandbox"
    assert channel_for(capability="refund", exclude=["sandbox"]).code == "sandbox-backup"
    assert channel_for(capability="refund", exclude=["sandbox", "sandbox-backup"]) is None

    Channel.objects.filter(code="sandbox").update(is_enabled=False)
    assert channel_for(capability="payout").code == "sandbox-backup"
    Channel.objects.filter(code="sandbox").update(is_enabled=True, priority=30)
    assert channel_for(capability="payout").code == "sandbox-backup"
    Channel.objects.filter(code="sandbox-backup").update(capabilities={"refund": True, "payout": False})
    assert channel_for(capability="payout").code == "sandbox"
    assert channel_for(capability="teleport") is None


def test_unknown_adapter_is_a_channel_error(channel):
    channel.adapter = "carrier-pigeon"
    with pytest.raises(ChannelError):
        get_adapter(channel)
    assert ADAPTERS["sandbox"] is SandboxAdapter
    assert isinstance(get_adapter(Channel.objects.get(code="sandbox")), SandboxAdapter)


@pytest.mark.parametrize(
    ("raw", "code", "retryable", "party"),
    [
        ("ACCOUNT_FROZEN", "account_frozen", False, Party.CUSTOMER),
        ("NAME_MISMATCH", "holder_name_mismatch", False, Party.CUSTOMER),
        ("ACCOUNT_CLOSED", "account_closed", False, Party.CUSTOMER),
        ("LIMIT_REACHED", "channel_limit", True, Party.BANK),
        ("RISK_REVIEW", "risk_hold", False, Party.BANK),
        ("GATEWAY_TIMEOUT", "timeout", True, Party.BANK),
        ("timeout", "timeout", True, Party.BANK),
        ("SERVICE_UNAVAILABLE", "outage", True, Party.BANK),
        ("REQUEST_ID_CONFLICT", "request_invalid", False, Party.PLATFORM),
        ("SOMETHING_NEW", "unknown", False, Party.BANK),
    ],
)
def test_raw_bank_codes_normalise_to_reasons(channel, raw, code, retryable, party):
    reason = get_adapter(channel).reason_for(raw)
    assert (reason.code, reason.retryable, reason.responsible_party) == (code, retryable, party)
    assert reason.message_key == f"transfer.reason.{code}"


FULL_NUMBER = "6222020000001234"


def test_full_account_number_is_never_logged_or_stored(bank, refund_handler, caplog):
    caplog.set_level(logging.DEBUG)
    account = Account(holder_name="王小明", bank="ICBC", number=FULL_NUMBER)
    request = transfer(1, "1234")
    assert request.account == account
    channel_verify(channel=bank, account=account, reference="refund:1")
    channel_submit(channel=bank, request=request)
    channel_query(channel=bank, request_id=request.request_id)
    with later(3):
        sandbox_bank_deliver_webhooks()
    assert ChannelCall.objects.count() == 3
    assert len(refund_handler.calls) == 2

    stored = [
        json.dumps(model_to_dict(row), default=str)
        for model in (ChannelCall, SandboxTransfer, SandboxEvent, SandboxSubmission)
        for row in model.objects.all()
    ]
    stored += [json.dumps(row.payload) for row in bank.webhooks.all()]
    assert stored
    assert not [text for text in stored if FULL_NUMBER in text]
    assert FULL_NUMBER not in caplog.text
    assert SandboxTransfer.objects.get().account_last4 == "1234"


def test_every_call_writes_one_channel_call_with_latency(bank):
    request = transfer(2, "0000")
    channel_submit(channel=bank, request=request)
    channel_query(channel=bank, request_id=request.request_id)
    rows = list(ChannelCall.objects.order_by("id"))
    assert [(r.action, r.reference, r.request_id, r.http_status) for r in rows] == [
        ("submit", "refund:2", "refund:2:submit", 201),
        ("query", "refund:2", "refund:2:submit", 200),
    ]
    assert all(r.channel_id == bank.pk and r.latency_ms >= 0 for r in rows)


def test_timeout_call_is_logged_with_its_latency(bank):
    with pytest.raises(ChannelTimeout):
        channel_submit(channel=bank, request=transfer(3, "0006"))
    call = ChannelCall.objects.get()
    assert (call.action, call.outcome, call.raw_code, call.http_status) == ("submit", "timeout", "timeout", None)
    assert call.latency_ms >= 400


def test_seed_demo_pays_its_distributors_and_has_someone_to_page(db, sandbox_settings, settings):
    from apps.accounts.models import User
    from apps.commissions.models import Commission

    call_command("seed_demo", "--force", stdout=io.StringIO())
    call_command("seed_demo", "--force", stdout=io.StringIO())
    oncall = User.objects.get(username=settings.ALERT_ONCALL_ROTA[0])
    assert oncall.phone
    referred = Commission.objects.values_list("order__referrer_id", flat=True)
    assert referred.count() > 0  # demo orders of referred customers earned their uplines something
    assert all(r is not None for r in referred)
