"""Concurrency on PostgreSQL, real threads: the owner lock serialises balance checks, the row lock
and the send claim make one approval move and one channel call, whoever races."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from apps.common.errors import ServiceError
from apps.gateways.models import ChannelCall, SandboxTransfer
from apps.payouts.models import Disbursement
from apps.payouts.services import DISBURSEMENTS, payout_approve, payout_create, payout_submit
from apps.transfers.poller import transfer_poll
from tests.payouts.conftest import (
    account_body,
    fund_merchant,
    in_flight,
    ledger_unbalanced,
    payable,
    second_approval_code,
    staff,
)

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(60)]

S = Disbursement.Status
THREADS = 6


def race(work: Callable[[int], object], n: int = THREADS) -> list[object]:
    barrier = threading.Barrier(n)

    def run(i: int):
        barrier.wait()
        try:
            return work(i)
        except ServiceError as exc:
            return exc
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(run, range(n)))


def test_concurrent_payouts_of_the_whole_payable_let_exactly_one_through(
    transactional_db, merchant, inproc_bank, payout_settings
):
    payout_settings.PAYOUT_REVIEW_NEW_DESTINATION = False
    fund_merchant(merchant, 300000)

    race(
        lambda i: payout_create(
            merchant=merchant,
            reference=f"all-{i}",
            amount=300000,
            currency="CNY",
            destination_account=account_body(),
            actor="api-key:x",
        )
    )

    rows = Disbursement.objects.filter(merchant=merchant)
    assert rows.count() == THREADS
    assert rows.exclude(status=S.FAILED).count() == 1
    assert set(rows.filter(status=S.FAILED).values_list("failure_code", flat=True)) == {
        "precheck_amount_matches_source"
    }
    assert SandboxTransfer.objects.count() == 1
    assert ChannelCall.objects.filter(action="submit").count() == 1
    assert payable(merchant) == 0
    assert in_flight() == 300000
    assert ledger_unbalanced() == []


def test_racing_approvers_and_redelivered_tasks_submit_a_large_payout_once(
    transactional_db, merchant, inproc_bank, payout_settings
):
    checkers = [staff(merchant, f"checker-{i}") for i in range(THREADS)]
    fund_merchant(merchant, 10_000_000)
    d = payout_create(
        merchant=merchant,
        reference="large",
        amount=10_000_000,
        currency="CNY",
        destination_account=account_body(),
        actor="maker",
    )
    assert (d.status, d.required_approvals) == (S.PENDING_APPROVAL, 2)

    codes = [second_approval_code(checker) for checker in checkers]  # whoever comes second needs one
    results = race(lambda i: payout_approve(disbursement_id=d.pk, approver=checkers[i], otp_token=codes[i]))
    refusals = [r for r in results if isinstance(r, ServiceError)]
    # Two approvals move it; every later one finds it no longer waiting.
    assert len(refusals) == THREADS - 2
    assert {r.code for r in refusals} == {"invalid_state"}
    race(lambda i: payout_submit(disbursement_id=d.pk) if i % 2 else transfer_poll(DISBURSEMENTS, d.pk))

    d.refresh_from_db()
    assert d.status == S.PROCESSING
    assert d.approvals.count() == 2
    assert list(d.events.filter(code="approved").values_list("code", flat=True)) == ["approved"]
    assert ChannelCall.objects.filter(reference=f"payout:{d.pk}", action="submit").count() == 1
    assert SandboxTransfer.objects.get(request_id=d.request_id).executions == 1
    assert in_flight() == 10_000_000
    assert payable(merchant) == 0
