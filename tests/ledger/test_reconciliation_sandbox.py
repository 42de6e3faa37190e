"""End to end: refunds that really went through the sandbox bank (API → refund FSM → bank over HTTP
→ webhooks and polls → ledger), then the bank's statement pulled through the registered "sandbox"
source and reconciled: all matched. Then the bank pays one of them twice, moves money nobody asked
for, and the ledger books a payment the bank never made: each is found."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine

from apps.gateways.base import Account, ChannelTimeout, TransferRequest
from apps.gateways.models import Channel, ChannelCall, SandboxTransfer
from apps.gateways.services import channel_submit
from apps.ledger.models import LedgerAccount
from apps.ledger.services import Line, ledger_account_get_or_create, ledger_post, reconciliation_run
from apps.ledger.statements import register_statement_source, statement_source_get, unregister_statement_source
from apps.payouts.statement_sources import SANDBOX_SOURCE, register_channel_statement_sources
from apps.refunds.models import Refund
from tests.gateways.conftest import HOLDER
from tests.refunds.conftest import Clock, deliver_webhooks, open_order, request_refund, run_poller

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]

MORNING = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
DAY = MORNING.date()


@pytest.fixture
def clock():
    """A fixed morning, still ticking, moved forward on demand: every movement falls on DAY."""
    with time_machine.travel(MORNING, tick=True) as traveller:
        yield Clock(traveller)


@pytest.fixture
def sandbox_source():
    previous = statement_source_get(SANDBOX_SOURCE)
    register_channel_statement_sources()
    yield
    if previous is None:
        unregister_statement_source(SANDBOX_SOURCE)
    else:
        register_statement_source(SANDBOX_SOURCE, previous.fetch, prefixes=previous.prefixes)


def refund_through_the_bank(api, suffix: str) -> Refund:
    body = request_refund(api, open_order(api, suffix))
    return Refund.objects.get(pk=body["id"])


def items(run) -> dict[tuple[str, str], tuple[str, str, int | None, int | None]]:
    return {
        (item.reference, item.direction): (item.kind, item.severity, item.statement_amount, item.platform_amount)
        for item in run.items.all()
    }


def test_refunds_through_the_sandbox_bank_reconcile_then_planted_discrepancies_are_found(
    api, bank, refund_settings, clock, sandbox_source
):
    paid = refund_through_the_bank(api, "0000")
    returned = refund_through_the_bank(api, "0003")
    timed_out = refund_through_the_bank(api, "0005")  # executed, answered too late: queried, paid once
    frozen = refund_through_the_bank(api, "0002")  # fails: no money moves on either side
    clock.advance(3)
    deliver_webhooks()
    run_poller()
    clock.advance(61)  # the 0003 account returns the funds
    deliver_webhooks()
    run_poller()
    statuses = {r.pk: r.status for r in Refund.objects.all()}
    assert statuses == {
        paid.pk: "succeeded",
        returned.pk: "reversed",
        timed_out.pk: "succeeded",
        frozen.pk: "needs_action",
    }

    run = reconciliation_run(date=DAY, source=SANDBOX_SOURCE, actor="test")

    amount = paid.amount
    assert (run.status, run.severity, run.version) == ("clean", "", 1)
    assert items(run) == {
        (f"refund:{paid.pk}", "out"): ("matched", "", amount, amount),
        (f"refund:{returned.pk}", "out"): ("matched", "", amount, amount),
        (f"refund:{returned.pk}", "in"): ("matched", "", amount, amount),
        (f"refund:{timed_out.pk}", "out"): ("matched", "", amount, amount),
    }
    assert (run.statement_lines, run.platform_records) == (4, 4)
    assert run.totals == {
        "CNY": {"statement_out": 3 * amount, "statement_in": amount, "platform_out": 3 * amount, "platform_in": amount}
    }
    # Three days (DAY ± 1) × both channels of the sandbox bank, one recorded call each.
    assert ChannelCall.objects.filter(action="statement", outcome="received").count() == 6

    # Planted: a blind re-submit of the 0005 refund (the bank executes it again), a transfer the
    # platform never asked for, and a settle booked in the ledger for money the bank never moved.
    request = TransferRequest(
        request_id=timed_out.request_id,
        reference=f"refund:{timed_out.pk}",
        amount=timed_out.amount,
        currency="CNY",
        account=Account(holder_name=HOLDER, bank="ICBC", number=timed_out.destination_account.reveal_number()),
    )
    with pytest.raises(ChannelTimeout):
        channel_submit(channel=bank, request=request)
    assert SandboxTransfer.objects.get(request_id=timed_out.request_id).executions == 2
    rogue = TransferRequest(
        request_id="refund:987654:1",
        reference="refund:987654",
        amount=4321,
        currency="CNY",
        account=Account(holder_name=HOLDER, bank="ICBC", number="6222029999990000"),
    )
    channel_submit(channel=Channel.objects.get(code="sandbox-backup"), request=rogue)
    cash = ledger_account_get_or_create(owner="platform", kind=LedgerAccount.Kind.CASH_CLEARING, currency="CNY")
    losses = ledger_account_get_or_create(owner="platform", kind=LedgerAccount.Kind.LOSSES, currency="CNY")
    ledger_post(reference="refund:876543:settle", kind="test", lines=[Line(losses, 777), Line(cash, -777)])
    clock.advance(3)

    rerun = reconciliation_run(date=DAY, source=SANDBOX_SOURCE, actor="test")

    run.refresh_from_db()
    assert (run.is_current, rerun.is_current, rerun.version) == (False, True, 2)
    assert (rerun.status, rerun.severity) == ("mismatched", "P0")
    assert items(rerun) == {
        (f"refund:{paid.pk}", "out"): ("matched", "", amount, amount),
        (f"refund:{returned.pk}", "out"): ("matched", "", amount, amount),
        (f"refund:{returned.pk}", "in"): ("matched", "", amount, amount),
        (f"refund:{timed_out.pk}", "out"): ("duplicate", "P0", 2 * amount, amount),
        ("refund:987654", "out"): ("missing_on_platform", "P0", 4321, None),
        ("refund:876543", "out"): ("missing_on_channel", "P0", None, 777),
    }
    counts = (
        rerun.matched_count,
        rerun.missing_on_platform_count,
        rerun.missing_on_channel_count,
        rerun.amount_mismatch_count,
        rerun.duplicate_count,
    )
    assert counts == (3, 1, 1, 0, 1)
    rogue_item = rerun.items.get(reference="refund:987654")
    assert rogue_item.line_ids[0].startswith("sandbox-backup:sbx_")
