"""G2 for every movement kind (RELIABILITY.md): twenty parallel identical API requests with one
Idempotency-Key make one item and one bank execution; the others are replays of the first answer
or a 409 while it runs. PostgreSQL, real threads each on its own connection, the in-process bank.

The rest of G2 (a reused key with another body, another endpoint or merchant, replays after
23 h 59 m, purging) is the API layer's and is proven once, in tests/refunds/test_idempotency.py.
"""

from __future__ import annotations

import pytest

from apps.common.models import IdempotencyRecord
from apps.gateways.models import ChannelCall, SandboxTransfer
from apps.ledger.selectors import ledger_unbalanced_transactions
from tests.payouts.conftest import new_key, post
from tests.support import send_at_once

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

N = 20
AMOUNT = {"refund": 10000, "payout": 500000, "withdrawal": 100000}


def test_twenty_parallel_identical_requests_make_one_item_and_one_bank_execution(api, movement):
    url, data = movement.api_request(amount=AMOUNT[movement.kind])
    key = new_key()

    answers = send_at_once(api, N, lambda client: post(client, url, data, key=key))

    assert len(answers) == N
    created = [a for a in answers if a[0] == 201 and not a[2]]
    replays = [a for a in answers if a[0] == 201 and a[2]]
    busy = [a for a in answers if a[0] == 409]
    assert len(created) == 1, answers
    assert len(created) + len(replays) + len(busy) == N
    assert all(a[1]["error"]["code"] == "idempotency_in_progress" for a in busy)
    assert all(a[1] == created[0][1] for a in replays)
    item = movement.model.objects.get()
    assert movement.items().filter(pk=item.pk).exists()  # of this kind
    assert item.pk == created[0][1]["id"]
    assert IdempotencyRecord.objects.filter(key=key).count() == 1
    assert ChannelCall.objects.filter(action="verify").count() == movement.verify_calls
    assert ChannelCall.objects.filter(action="submit").count() == 1
    assert list(SandboxTransfer.objects.values_list("request_id", "executions")) == [(item.request_id, 1)]
    assert movement.postings(item) == [movement.inflight_posting]
    assert list(ledger_unbalanced_transactions()) == []
