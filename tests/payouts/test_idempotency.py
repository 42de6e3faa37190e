"""G2 for payouts and withdrawals (RELIABILITY.md): twenty parallel identical requests with one
Idempotency-Key make one movement, one verification, one bank execution; the others are replays
of the first answer or a 409 while it runs. PostgreSQL, real threads, the in-process bank."""

from __future__ import annotations

import pytest

from apps.common.models import IdempotencyRecord
from apps.gateways.models import ChannelCall, SandboxTransfer
from apps.payouts.models import Disbursement
from tests.payouts.conftest import (
    PAYOUTS,
    WITHDRAWALS,
    customer_with_wallet,
    fund_merchant,
    ledger_unbalanced,
    new_key,
    payout_body,
    post,
    withdrawal_body,
)
from tests.support import send_at_once

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]

N = 20


@pytest.mark.parametrize("kind", ["payout", "withdrawal"])
def test_twenty_parallel_identical_requests_make_one_movement_and_one_bank_execution(
    transactional_db, api, merchant, inproc_bank, payout_settings, kind
):
    payout_settings.PAYOUT_REVIEW_NEW_DESTINATION = False
    if kind == "payout":
        fund_merchant(merchant, 500000)
        url, data = PAYOUTS, payout_body(500000)
    else:
        url, data = WITHDRAWALS, withdrawal_body(customer_with_wallet(merchant, 100000), 100000)
    key = new_key()
    answers = send_at_once(api, N, lambda client: post(client, url, data, key=key))

    created = [a for a in answers if a[0] == 201 and not a[2]]
    replays = [a for a in answers if a[0] == 201 and a[2]]
    busy = [a for a in answers if a[0] == 409]
    assert len(created) == 1, answers
    assert len(created) + len(replays) + len(busy) == N
    assert all(a[1]["error"]["code"] == "idempotency_in_progress" for a in busy)
    assert all(a[1] == created[0][1] for a in replays)
    d = Disbursement.objects.get()
    assert d.kind == kind
    assert IdempotencyRecord.objects.filter(key=key).count() == 1
    assert ChannelCall.objects.filter(action="verify").count() == 1
    assert ChannelCall.objects.filter(action="submit").count() == 1
    assert list(SandboxTransfer.objects.values_list("request_id", "executions")) == [(d.request_id, 1)]
    assert ledger_unbalanced() == []
