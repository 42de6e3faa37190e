"""G5 for every movement kind: duplicate and out-of-order webhooks do no harm; states never move
backwards.

An item the bank pays and then returns (the sandbox's 0003 account) is told so by four events:
processing, succeeded, succeeded again under a new event id, returned. Each of the 24 orderings,
each event delivered once or twice (a repeat anywhere after the first), signed and posted to the
receiver, ends the same way: returned, one settle and one return posting, one settled and one
returned timeline event, the money back where it came from.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter

import pytest

from apps.gateways.models import InboundWebhook

# Transactional: anomalies are announced after commit.
pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]

AMOUNT = 1000
EVENTS = (
    ("processing", "evt_p", ""),
    ("succeeded", "evt_s", ""),
    ("succeeded", "evt_s_again", ""),  # the bank reporting success a second time, under a new event id
    ("returned", "evt_r", "ACCOUNT_CLOSED"),
)
ORDERINGS = list(itertools.permutations(range(len(EVENTS))))


def deliveries(ordering: tuple[int, ...], rng: random.Random) -> list[int]:
    """The ordering, with each event delivered once or twice; a repeat lands anywhere after the first."""
    sequence = list(ordering)
    for index in ordering:
        if rng.random() < 0.5:
            first = sequence.index(index)
            sequence.insert(rng.randint(first + 1, len(sequence)), index)
    return sequence


def test_all_24_orderings_of_a_returned_items_webhooks_end_returned_with_one_settle_and_one_return(movement, client):
    assert len(ORDERINGS) == 24
    items = []
    for _ in ORDERINGS:  # one customer each: many refunds by one customer go to a person
        item = movement.create(suffix="0003", amount=AMOUNT)
        movement.submit(item)
        items.append(item)
    rng = random.Random(20261127)

    with movement.anomalies() as anomalies:
        for item, ordering in zip(items, ORDERINGS, strict=True):
            item.refresh_from_db()
            assert item.status == "processing"
            sequence = deliveries(ordering, rng)
            seen = set()
            for index in sequence:
                status, event_id, code = EVENTS[index]
                outcome = movement.send_event(client, item, status, event_id=f"{event_id}_{item.pk}", code=code)
                assert (outcome == "duplicate") == (index in seen), (ordering, sequence, index, outcome)
                seen.add(index)
                assert movement.status(item) in ("processing", movement.settled, movement.returned)

            item.refresh_from_db()
            assert item.status == movement.returned, (ordering, sequence)
            assert item.failure_code == "account_closed"
            timeline = movement.codes(item)
            assert timeline.count(movement.settled) == 1, (ordering, timeline)
            assert timeline.count(movement.returned) == 1, (ordering, timeline)
            assert timeline.index(movement.settled) < timeline.index(movement.returned)
            assert timeline.count("processing") <= 1
            expected = [movement.inflight_posting, movement.settle_posting, movement.return_posting]
            assert movement.postings(item) == expected, (ordering, sequence)
            assert InboundWebhook.objects.filter(request_id=item.request_id).count() == len(EVENTS)
            assert [kind for pk, kind in anomalies if pk == item.pk] == [movement.return_anomaly], (ordering, sequence)
            assert movement.calls(item, "submit") == 1

    assert movement.in_flight() == 0
    # The money is back with whoever it left: the customer's balance for a refund (the payer's
    # money, now owed to them), the merchant's payable for a payout, the wallet for a withdrawal.
    returned = Counter()
    for item in items:
        returned[movement.returned_to(item)] += AMOUNT
    for (owner, kind), amount in returned.items():
        assert movement.balance(owner, kind) == -amount, (owner, kind)
