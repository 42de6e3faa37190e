"""Killed workers and an unreachable broker, with real processes (RELIABILITY.md G7).

daphne serves the API and the sandbox bank, Celery workers and one beat run against the test's
PostgreSQL database (committed rows: `transactional_db`) and this run's Redis database, which is
flushed first. The visibility timeout and the notification lease are shortened through the
environment so a killed worker's tasks come back within seconds.

- Workers are SIGKILLed (whole process group) every ~1.5 s, 12 times, and restarted, while 30
  refunds are requested, submitted, polled, settled by bank webhooks and notified.
- The broker is cut (a TCP proxy in front of Redis, the broker's only way there, drops its
  connections and refuses new ones) while refunds are requested; once it is back, each is executed.
Afterwards: every refund succeeded, the bank executed each exactly once (its own rows), each SMS
the customer is owed was recorded once by the sandbox SMS provider, and the ledger balances.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import socket
import threading
import time
from collections import Counter
from urllib.parse import urlsplit

import pytest
import redis
import requests

from apps.accounts.services import api_key_create
from apps.gateways.sandbox.models import SandboxTransfer
from apps.gateways.services import ensure_sandbox_channel
from apps.ledger.models import LedgerAccount
from apps.ledger.selectors import ledger_balance_from_entries, ledger_unbalanced_transactions
from apps.notifications.models import Notification, SandboxMessage
from apps.refunds.models import Refund
from tests.factories import MerchantFactory
from tests.test_e2e_run import Stack, _free_port, served_env

pytestmark = [pytest.mark.postgres, pytest.mark.e2e, pytest.mark.timeout(300)]

REFUNDS = 30
KILLS = 12
DEADLINE_S = 150
WEBHOOK_SECRET = "whsec_worker_faults_0123456789abcdef"
WORKER = ("-m", "celery", "-A", "refundguard", "worker", "--loglevel=INFO", "--concurrency=1", "--pool=prefork")


class BrokerProxy:
    """A TCP proxy in front of Redis that can be cut: open connections are dropped and new ones
    refused until it is restored. Only this test's processes go through it."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = threading.Event()
        self.up.set()
        self.sockets: set[socket.socket] = set()
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self.lock:
                self.sockets |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for s in (source, sink):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.up.clear()
        with self.lock:
            for s in self.sockets:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            self.sockets.clear()

    def restore(self) -> None:
        self.up.set()

    def close(self) -> None:
        self.cut()
        self.listener.close()


@pytest.fixture
def runtime(transactional_db, tmp_path, settings):
    """The web, two workers and beat on the test database and this run's Redis database."""
    if not settings.REDIS_URL:
        pytest.fail("these tests need Redis (REDIS_URL)")
    redis_url = urlsplit(settings.REDIS_URL)
    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    proxy = BrokerProxy((redis_url.hostname or "127.0.0.1", redis_url.port or 6379))
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = served_env(settings, tmp_path, base=base, webhook_secret=WEBHOOK_SECRET)
    env.update(
        {
            # Only the broker goes through the proxy: "broker down" for this run's processes alone.
            "CELERY_BROKER_URL": f"redis://127.0.0.1:{proxy.port}{redis_url.path or '/0'}",
            "SANDBOX_BANK_SETTLE_SECONDS": "0.5",
            "CELERY_VISIBILITY_TIMEOUT_SECONDS": "8",
            "NOTIFY_SENDING_LEASE_SECONDS": "10",
            "NOTIFY_SWEEP_TICK_SECONDS": "2",
            "REFUND_POLL_TICK_SECONDS": "1",
            "HEARTBEAT_SECONDS": "2",
        }
    )
    stack = Stack(env, tmp_path)
    stack.base = base
    stack.proxy = proxy
    try:
        stack.start("web", "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "refundguard.asgi:application")
        stack.start("beat", "-m", "celery", "-A", "refundguard", "beat", "--loglevel=INFO")
        yield stack
    except BaseException:
        print(stack.dump())
        raise
    finally:
        stack.stop()
        proxy.close()


def _wait(what: str, condition, stack: Stack, deadline_s: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    print(stack.dump())
    pytest.fail(f"{what} did not happen within {deadline_s}s")


class Shop:
    """One merchant, one product and a paid order per refund, through the served API."""

    def __init__(self, base: str) -> None:
        self.base = base
        merchant = MerchantFactory(name="Faults")
        ensure_sandbox_channel()
        _, raw = api_key_create(merchant=merchant)
        self.http = requests.Session()
        self.http.trust_env = False
        self.http.headers["Authorization"] = f"Bearer {raw}"
        self.numbers = itertools.count(1)
        self.suffix_of_order: dict[str, str] = {}
        self._post("/api/v1/products", {"sku": "course", "name": "Course", "kind": "course", "price": 9900})

    def _post(self, path: str, body: dict, *, tries: int = 30, any_answer: bool = False, **headers) -> dict | None:
        """POST until it is answered 200/201, retrying transport errors and 5xx with the same body
        (and Idempotency-Key); None if `tries` answers were all 5xx, or (`any_answer`) on a 4xx."""
        body = body if path == "/api/v1/customers" else {"currency": "CNY", **body}
        for _ in range(tries):
            try:
                response = self.http.post(f"{self.base}{path}", json=body, headers=headers, timeout=30)
            except requests.RequestException:
                time.sleep(1)
                continue
            if response.status_code in (200, 201):
                return response.json()
            if response.status_code < 500 and any_answer:
                print(f"POST {path} → {response.status_code}: {response.text}")
                return None
            if response.status_code < 500:
                pytest.fail(f"POST {path} → {response.status_code}: {response.text}")
            time.sleep(1)
        return None

    def refund(self, suffix: str = "0000") -> int:
        n = next(self.numbers)
        self.suffix_of_order[f"o-{n}"] = suffix
        customer = {"external_id": f"c-{n}", "name": "王小明", "phone": f"+86138000{n:05d}"}
        assert self._post("/api/v1/customers", customer) is not None
        order = {
            "external_id": f"o-{n}",
            "customer": f"c-{n}",
            "product": "course",
            "amount": 9900,
            "paid_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60)),
            "payment_method": "card",
            "device_id": f"d-{n}",
            "ip": f"203.0.113.{n}",
            "payer_account": {"holder_name": "王小明", "bank": "ICBC", "account_number": f"6222020{n:05d}{suffix}"},
        }
        assert self._post("/api/v1/orders", order) is not None
        body = {"order": f"o-{n}", "amount": 9900, "reason": "mistake", "reason_text": "bought twice"}
        # Whatever the answer (a broker fault after commit may cost it), the refund is what was stored.
        self._post("/api/v1/refunds", body, tries=3, any_answer=True, **{"Idempotency-Key": f"refund-{n}"})
        refund = Refund.objects.get(order__external_id=f"o-{n}")
        assert refund.decision.get("outcome") == "approved", (refund.status, refund.decision)
        return refund.pk


# Where each account suffix ends (DESIGN.md "Sandbox bank"), how often the bank executes it, and
# the customer messages its timeline owes (event code → channels; SMS only for what needs action,
# no e-mail: these customers have no address).
EXPECTED = {
    "0000": (Refund.Status.SUCCEEDED, 1, {"approved": {"inbox"}, "succeeded": {"push", "inbox"}}),
    "0002": (Refund.Status.NEEDS_ACTION, 0, {"approved": {"inbox"}, "needs_action": {"sms", "push", "inbox"}}),
}


def _settled(ids: list[int]) -> bool:
    resting = Refund.objects.filter(pk__in=ids, status__in=[Refund.Status.SUCCEEDED, Refund.Status.NEEDS_ACTION])
    unsent = Notification.objects.filter(subject_type="refund", subject_id__in=ids, status__in=["queued", "sending"])
    return resting.count() == len(ids) and not unsent.exists()


def _assert_each_refund_paid_and_told_once(shop: Shop, ids: list[int]) -> None:
    refunds = {r.pk: r for r in Refund.objects.filter(pk__in=ids).select_related("order")}
    suffix = {pk: shop.suffix_of_order[r.order.external_id] for pk, r in refunds.items()}
    assert {pk: r.status for pk, r in refunds.items()} == {pk: EXPECTED[suffix[pk]][0] for pk in ids}

    executions = Counter()
    for request_id, count in SandboxTransfer.objects.values_list("request_id", "executions"):
        executions[int(request_id.split(":")[1])] += count if request_id.startswith("refund:") else 0
    assert {pk: executions[pk] for pk in ids} == {pk: EXPECTED[suffix[pk]][1] for pk in ids}

    told = Counter(
        (n.subject_id, n.event_key.split(":")[2], n.channel)
        for n in Notification.objects.filter(subject_type="refund", subject_id__in=ids, recipient_type="customer")
    )
    expected = Counter(
        (pk, code, channel) for pk in ids for code, channels in EXPECTED[suffix[pk]][2].items() for channel in channels
    )
    assert told == expected
    sms = Notification.objects.filter(subject_type="refund", subject_id__in=ids, channel="sms")
    recorded = Counter(SandboxMessage.objects.filter(channel="sms").values_list("notification_id", flat=True))
    assert recorded == dict.fromkeys(sms.values_list("pk", flat=True), 1)

    assert not ledger_unbalanced_transactions().exists()
    for account in LedgerAccount.objects.all():
        assert account.balance == ledger_balance_from_entries(account=account), account


def test_workers_killed_again_and_again_leave_every_refund_paid_once_and_told_once(runtime):
    shop = Shop(runtime.base)
    workers = {name: runtime.start(f"{name}-0", *WORKER, "--hostname", f"{name}@faults") for name in ("w1", "w2")}
    kills = 0
    stop = threading.Event()

    def killer() -> None:
        nonlocal kills
        rng = random.Random(7)
        while kills < KILLS and not stop.is_set():
            time.sleep(1.0 + rng.random())
            name = rng.choice(sorted(workers))
            with contextlib.suppress(ProcessLookupError):
                os.killpg(workers[name].pid, 9)
            workers[name].wait(timeout=10)
            kills += 1
            workers[name] = runtime.start(f"{name}-{kills}", *WORKER, "--hostname", f"{name}@faults")

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        ids = [shop.refund("0002" if i % 5 == 4 else "0000") for i in range(REFUNDS)]
        thread.join(timeout=120)
    finally:
        stop.set()
    assert kills == KILLS

    _wait("every refund resting and its customer told", lambda: _settled(ids), runtime)
    _assert_each_refund_paid_and_told_once(shop, ids)


def test_an_unreachable_broker_delays_refunds_but_each_is_executed_once(runtime):
    shop = Shop(runtime.base)
    runtime.start("w1", *WORKER, "--hostname", "w1@faults")
    ids = [shop.refund() for _ in range(3)]
    runtime.proxy.cut()
    # Requests while the broker is down: the refund commits, its submission cannot be published.
    cut_ids = [shop.refund("0002" if i == 4 else "0000") for i in range(5)]
    runtime.proxy.restore()
    ids += cut_ids + [shop.refund() for _ in range(2)]

    _wait("every refund resting after the broker came back", lambda: _settled(ids), runtime)
    _assert_each_refund_paid_and_told_once(shop, ids)
