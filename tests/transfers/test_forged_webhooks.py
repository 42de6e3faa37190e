"""G6 for every movement kind: unsigned, stale or tampered webhooks are refused before any write.

A processing item, and a "succeeded" event for it that would settle it: posted unsigned, with an
empty or malformed signature, signed with another secret, too old or too new, signed over another
body, or re-serialized after signing. Each is a 400 in the error envelope, and nothing changed: not
the item's row, not its timeline, not the ledger, no webhook recorded. The receiver's own checks
(size, nesting, unknown channel, method) are tests/gateways/test_webhook_receiver.py.
"""

from __future__ import annotations

import json

import pytest
from django.utils import timezone

from apps.gateways.models import Channel, InboundWebhook
from apps.gateways.signing import signature_header
from apps.ledger.models import LedgerTransaction
from tests.gateways.conftest import WEBHOOK_URL

pytestmark = pytest.mark.django_db

AMOUNT = 19900


def snapshot(movement, item) -> tuple:
    return (
        movement.model.objects.filter(pk=item.pk).values().get(),
        movement.codes(item),
        InboundWebhook.objects.count(),
        LedgerTransaction.objects.count(),
        movement.in_flight(),
    )


def test_forged_stale_or_unsigned_webhooks_are_refused_before_any_write(movement, client):
    item = movement.create(amount=AMOUNT)
    movement.submit(item)
    item.refresh_from_db()
    assert item.status == "processing"
    before = snapshot(movement, item)
    good = movement.event_body(item, "succeeded", event_id="evt_forged")
    secret = Channel.objects.get(code="sandbox").webhook_secret
    timestamp = int(timezone.now().timestamp())
    other_body = good.replace(b'"amount":19900', b'"amount":19901')
    assert other_body != good
    signed_elsewhere = signature_header(secret=secret, timestamp=timestamp, body=other_body)
    reserialized = json.dumps(json.loads(good), indent=1).encode()
    post = movement.post_webhook
    attempts = {
        "unsigned": post(client, good, header=None),
        "empty signature": post(client, good, header=""),
        "wrong secret": post(client, good, secret="whsec_not_the_channels_secret"),
        "stale": post(client, good, skew=-301),
        "future": post(client, good, skew=301),
        "signature of another body": post(client, good, header=signed_elsewhere),
        "wrong scheme": post(client, good, header=f"t={timestamp},v0=abc"),
        "timestamp not a number": post(client, good, header="t=soon,v1=" + "0" * 64),
        "re-serialized body": client.post(
            WEBHOOK_URL,
            data=reserialized,
            content_type="application/json",
            HTTP_X_REFUNDGUARD_SIGNATURE=signature_header(secret=secret, timestamp=timestamp, body=good),
        ),
    }
    for name, response in attempts.items():
        assert response.status_code == 400, name
        assert set(response.json()["error"]) == {"code", "message", "fields"}, name
    assert snapshot(movement, item) == before
    assert InboundWebhook.objects.count() == 0

    # The same event, signed as the bank signs it, is applied: the refusals were the signature's.
    assert movement.send_event(client, item, "succeeded", event_id="evt_genuine") == "applied"
    assert movement.status(item) == movement.settled
