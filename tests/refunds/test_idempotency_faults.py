"""G16: a fault around the commit never repeats a refund (RELIABILITY.md).

The client retries one Idempotency-Key after each fault: the broker unreachable when the submission
is published, the database connection lost just after COMMIT (the server cannot know it committed)
or just after the effect's own after-commit work starts, and lost before COMMIT. Each ends with one
refund, one execution at the sandbox bank (live server, real HTTP), a balanced ledger and every
answer JSON. The pollers stand in for lost messages: the clock is moved past the submit grace.
"""

from __future__ import annotations

import threading

import pytest
from django.conf import settings
from django.db import OperationalError, connection
from django.db.backends.postgresql.base import DatabaseWrapper
from django.db.models import Sum

import apps.refunds.api as refunds_api
from apps.common.models import IdempotencyRecord
from apps.gateways.models import ChannelCall, SandboxTransfer
from apps.ledger.models import LedgerEntry
from apps.refunds.models import Refund
from apps.refunds.signals import refund_state_changed
from tests.gateways.conftest import http
from tests.refunds.conftest import deliver_webhooks, run_poller
from tests.refunds.support import body, make_order, new_key, post_refund

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120), pytest.mark.django_db(transaction=True)]

DEAD_BROKER = "redis://127.0.0.1:1/0"  # nothing listens on port 1: every connect is refused


def _reset_producers(app) -> None:
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture
def dead_broker():
    """Publishing really goes to the broker (not eager), and the broker is unreachable."""
    from refundguard.celery import app

    saved = app.conf.broker_url, app.conf.task_always_eager
    _reset_producers(app)
    app.conf.broker_url, app.conf.task_always_eager = DEAD_BROKER, False
    yield
    _reset_producers(app)
    app.conf.broker_url, app.conf.task_always_eager = saved


def _settle(clock) -> Refund:
    """Past the submit grace the poller submits what no message did; then the bank settles."""
    clock.advance(settings.REFUND_SUBMIT_GRACE.total_seconds() + 1)
    run_poller()
    deliver_webhooks()
    clock.advance(3)  # the sandbox bank settles 2 s after submission
    deliver_webhooks()
    return Refund.objects.get()


def _assert_paid_once(refund: Refund) -> None:
    assert Refund.objects.count() == 1
    assert refund.status == Refund.Status.SUCCEEDED
    assert ChannelCall.objects.filter(action=ChannelCall.Action.SUBMIT).count() == 1
    assert list(SandboxTransfer.objects.values_list("request_id", "executions")) == [(refund.request_id, 1)]
    unbalanced = LedgerEntry.objects.values("transaction_id", "currency").annotate(total=Sum("amount"))
    assert [row for row in unbalanced if row["total"] != 0] == []
    assert IdempotencyRecord.objects.count() == 1


def test_broker_unreachable_three_posts_of_one_key_make_one_refund_and_one_bank_execution(
    api, merchant, bank, refund_settings, clock, dead_broker
):
    api.raise_request_exception = False
    order = make_order(merchant, amount=10000)
    key = new_key()

    answers = [post_refund(api, body(order), key=key) for _ in range(3)]

    assert [a.status_code for a in answers] == [201, 201, 201], answers[0].content[:300]
    assert [a.get("Idempotent-Replayed") for a in answers] == [None, "true", "true"]
    assert all(a["Content-Type"] == "application/json" for a in answers)
    assert answers[1].json() == answers[2].json() == answers[0].json()
    assert Refund.objects.count() == 1
    assert ChannelCall.objects.count() == 0  # the submission message went nowhere
    _assert_paid_once(_settle(clock))


class Fault:
    """Fires once, in the thread serving the refund request, at the point the test chose."""

    def __init__(self) -> None:
        self.thread: int | None = None
        self.fired = 0

    def arm(self) -> None:
        if not self.fired:
            self.thread = threading.get_ident()

    def take(self) -> bool:
        if self.thread != threading.get_ident() or self.fired:
            return False
        self.fired += 1
        return True


def _kill_own_connection() -> None:
    """The server ends this backend (as a failover or an idle-killer would): the query fails."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")


@pytest.fixture
def fault(monkeypatch, request):
    point = request.param
    fault = Fault()
    real_request = refunds_api.refund_request

    def refund_request(**kwargs):
        fault.arm()
        refund = real_request(**kwargs)
        if point == "before_commit" and fault.take():
            _kill_own_connection()
        return refund

    monkeypatch.setattr(refunds_api, "refund_request", refund_request)
    if point == "commit_unacknowledged":
        real_commit = DatabaseWrapper._commit

        def commit(self):
            real_commit(self)
            if fault.take():
                # COMMIT reached the server, its answer never reached us.
                self.connection.close()
                raise OperationalError("server closed the connection unexpectedly")

        monkeypatch.setattr(DatabaseWrapper, "_commit", commit)
    if point == "after_commit":

        def receiver(sender, **kwargs):
            if fault.take():
                _kill_own_connection()

        refund_state_changed.connect(receiver, weak=False, dispatch_uid="tests.refunds.fault")
    yield fault
    refund_state_changed.disconnect(dispatch_uid="tests.refunds.fault")


@pytest.mark.parametrize(
    ("fault", "first_status", "second_replayed"),
    [
        # The refund committed but the server cannot tell: an outage answer, then the stored one.
        ("commit_unacknowledged", 503, "true"),
        # The refund and its answer committed; what follows the commit cannot change the answer.
        ("after_commit", 201, "true"),
        # Nothing committed: the first retry, at once, makes the refund.
        ("before_commit", 503, None),
    ],
    indirect=["fault"],
)
def test_connection_lost_around_the_commit_then_three_retries_make_one_refund_and_one_bank_execution(
    api, merchant, bank, refund_settings, clock, live_server, fault, first_status, second_replayed
):
    order = make_order(merchant, amount=10000)
    key = new_key()
    headers = {"Authorization": api._credentials["HTTP_AUTHORIZATION"], "Idempotency-Key": key}

    answers = [http("POST", f"{live_server.url}/api/v1/refunds", json=body(order), headers=headers) for _ in range(4)]

    assert fault.fired == 1
    assert [a.status_code for a in answers] == [first_status, 201, 201, 201], answers[0].text[:300]
    assert all(a.headers["Content-Type"] == "application/json" for a in answers)
    if first_status == 503:
        assert answers[0].json()["error"]["code"] == "service_unavailable"
        assert int(answers[0].headers["Retry-After"]) > 0
    assert [a.headers.get("Idempotent-Replayed") for a in answers[1:]] == [second_replayed, "true", "true"]
    created = [a.json() for a in answers if a.status_code == 201]
    assert all(answer == created[0] for answer in created)
    _assert_paid_once(_settle(clock))
