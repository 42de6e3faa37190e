"""While a request holds an Idempotency-Key, a duplicate is answered 409 at once (it never queues
behind the first); after the first commits, the duplicate replays its answer. PostgreSQL: the
claim's advisory lock (apps/common/idempotency.py)."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory

from apps.common.errors import ConflictError
from apps.common.idempotency import idempotent
from apps.common.models import IdempotencyRecord

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(60), pytest.mark.django_db(transaction=True)]

SCOPE = "merchant:1"


def _request(key: str) -> Request:
    raw = APIRequestFactory().post("/api/v1/refunds", {"amount": 100}, format="json", HTTP_IDEMPOTENCY_KEY=key)
    return Request(raw, parsers=[JSONParser()])


def test_a_duplicate_while_the_first_runs_is_409_at_once_and_replays_once_it_committed():
    entered, release = threading.Event(), threading.Event()
    runs: list[str] = []
    first: list[Response] = []

    def slow() -> Response:
        runs.append("first")
        IdempotencyRecord.objects.count()  # the handler's transaction is open and has written the claim
        entered.set()
        assert release.wait(30)
        return Response({"id": 1}, status=201)

    def run_first() -> None:
        try:
            first.append(idempotent(request=_request("k-1"), scope=SCOPE, endpoint="refunds.create", handler=slow))
        finally:
            connection.close()

    thread = threading.Thread(target=run_first)
    thread.start()
    assert entered.wait(30)
    try:
        with pytest.raises(ConflictError) as busy:
            idempotent(
                request=_request("k-1"), scope=SCOPE, endpoint="refunds.create", handler=lambda: runs.append("dup")
            )
        # A different key is not held up by the first one.
        other = idempotent(
            request=_request("k-2"),
            scope=SCOPE,
            endpoint="refunds.create",
            handler=lambda: Response({"id": 2}, status=201),
        )
    finally:
        release.set()
        thread.join(30)

    assert busy.value.code == "idempotency_in_progress"
    assert other.status_code == 201
    assert first[0].status_code == 201
    replay = idempotent(
        request=_request("k-1"), scope=SCOPE, endpoint="refunds.create", handler=lambda: runs.append("x")
    )
    assert replay["Idempotent-Replayed"] == "true"
    assert replay.data == {"id": 1}
    assert runs == ["first"]
    assert IdempotencyRecord.objects.filter(key="k-1").count() == 1
