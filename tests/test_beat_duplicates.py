"""Two beats, each periodic effect once per period (RELIABILITY.md G8), with real processes.

daphne (the API and the sandbox bank), two Celery workers and TWO `celery beat` processes run
against the test's PostgreSQL database (committed rows: `transactional_db`) and this run's Redis
database, flushed first. The environment puts the alert jobs and the commission jobs on a
PERIOD-second tick and the refund poller on a short tick. The alert jobs' schedule rows are written
before the beats start, with last-run times that put plain interval ticks a few hundredths to
tenths of a second before window boundaries, as a beat started at an unlucky moment ticks (every
beat keeps those rows' times). For about PERIODS periods the test feeds every job something to do,
a batch per period, then stops the beats, lets the workers drain and counts:
- each alert job has one `PeriodicRun` per window, every window from its first to its last (none
  skipped), covering the run, although each beat sent the job every period;
- each fed item had its effect exactly once: a P0 re-paged once, one "not arrived" and one
  "deadline near" alert per late refund, one spike alert per merchant, one resolution per alert
  whose refund arrived;
- each refund the bank keeps processing was queried once per poll interval, never twice;
- each matured commission became available once and was paid once (one event each, one posting).
BEAT_DUPLICATES_BEATS=1 runs the same with one beat, for comparison (the counts must not differ).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import os
import re
import signal
import subprocess
import time
import warnings
from collections import Counter
from itertools import pairwise

import pytest
import redis
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from apps.alerts import rules
from apps.alerts.models import Alert, AlertEvent
from apps.commissions.models import Commission, CommissionEvent
from apps.commissions.services import commission_plan_create
from apps.common.models import PeriodicRun
from apps.gateways.models import ChannelCall
from apps.ledger.models import LedgerTransaction
from apps.orders.models import Product
from apps.orders.services import order_create
from apps.refunds.models import Refund
from tests.alerts.conftest import make_refund
from tests.factories import CustomerFactory, MerchantFactory, OrderFactory, ProductFactory
from tests.test_e2e_run import Stack, _free_port, served_env
from tests.test_worker_faults import Shop

pytestmark = [pytest.mark.postgres, pytest.mark.e2e, pytest.mark.timeout(420)]

PERIOD = 12  # seconds: the tick of every alert and commission job, and the length of their windows
PERIODS = 10  # periods the beats run for; batches are fed in all but the last two
POLL_INTERVAL = 6  # seconds between two queries of one in-flight refund
BEATS = int(os.environ.get("BEAT_DUPLICATES_BEATS", "2"))
STARTUP_S = 25  # for two beats to start on a loaded 2-core machine
WEBHOOK_SECRET = "whsec_beat_duplicates_0123456789abcdef"
WORKER = ("-m", "celery", "-A", "refundguard", "worker", "--loglevel=INFO", "--concurrency=1", "--pool=prefork")
BEAT = ("-m", "celery", "-A", "refundguard", "beat", "--loglevel=INFO")
ALERT_JOBS = ("escalate", "sla_watch", "deadline_watch", "spike_detect", "auto_resolve")
SCHEDULE_OF = {
    "escalate": "alert-escalate",
    "sla_watch": "alert-sla-watch",
    "deadline_watch": "alert-deadline-watch",
    "spike_detect": "alert-spike-detect",
    "auto_resolve": "alert-auto-resolve",
}
QUEUES = ("money", "notifications", "housekeeping")


@pytest.fixture
def runtime(transactional_db, tmp_path, settings):
    """The web and two workers on the test database and this run's Redis; the test starts the beats."""
    if not settings.REDIS_URL:
        pytest.fail("this test needs Redis (REDIS_URL)")
    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = served_env(settings, tmp_path, base=base, webhook_secret=WEBHOOK_SECRET)
    env.update(
        {
            "ALERT_ESCALATION_TICK_SECONDS": str(PERIOD),
            "ALERT_WATCH_TICK_SECONDS": str(PERIOD),
            "ALERT_SPIKE_TICK_SECONDS": str(PERIOD),
            "ALERT_SPIKE_MIN_COUNT": "3",
            "COMMISSION_TICK_SECONDS": str(PERIOD),
            "REFUND_POLL_TICK_SECONDS": "2",
            "REFUND_POLL_INTERVAL_SECONDS": str(POLL_INTERVAL),
        }
    )
    stack = Stack(env, tmp_path)
    stack.base = base
    try:
        stack.start("web", "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "refundguard.asgi:application")
        for name in ("w1", "w2"):
            stack.start(name, *WORKER, "--hostname", f"{name}@beats")
        yield stack
    except BaseException:
        print(stack.dump())
        raise
    finally:
        stack.stop()


class Feed:
    """Something for every periodic job to do, one batch at a time; remembers what each batch owes."""

    def __init__(self) -> None:
        self.numbers = itertools.count(1)
        self.merchant = MerchantFactory(name="Beats")
        self.p0s: list[int] = []
        self.late: list[int] = []  # submitted 25 h ago, still processing: "not arrived"
        self.old_card: list[int] = []  # card refunds requested 6 days ago: "deadline near"
        self.spiking: list[int] = []  # merchants with a burst of quick refunds today
        self.arrived: list[int] = []  # alerts whose refund has since succeeded
        self.commissions: list[int] = []
        self.product = ProductFactory(merchant=self.merchant, price=10000, currency="CNY")
        commission_plan_create(merchant=self.merchant, levels=[1000, 500])
        upline = CustomerFactory(merchant=self.merchant, name="Upline")
        self.distributor = CustomerFactory(merchant=self.merchant, name="Distributor", referrer=upline)

    def batch(self) -> None:
        n = next(self.numbers)
        now = timezone.now()
        self.p0s.append(
            Alert.objects.create(
                tier="P0",
                kind="reconciliation_mismatch",
                dedup_key=f"beats:p0:{n}",
                subject_type="reconciliation_day",
                subject_id=f"beats-{n}",
                summary=f"unacked P0 {n}",
                last_paged_at=now - dt.timedelta(minutes=11),  # past ALERT_P0_REPAGE_MINUTES (10)
            ).pk
        )
        refund = make_refund(
            self.merchant,
            status="processing",
            submitted_at=now - dt.timedelta(hours=25),
            created_at=now - dt.timedelta(days=2),
        )
        self.late.append(refund.pk)
        refund = make_refund(self.merchant, status="processing", created_at=now - dt.timedelta(days=6))
        self.old_card.append(refund.pk)

        spiky = MerchantFactory(name=f"Spike {n}")
        course = ProductFactory(merchant=spiky, kind=Product.Kind.COURSE)
        for _ in range(3):  # ALERT_SPIKE_MIN_COUNT, within minutes of payment, no baseline
            order = OrderFactory(merchant=spiky, product=course, paid_at=now - dt.timedelta(minutes=5))
            Refund.objects.create(
                merchant=spiky, order=order, customer=order.customer, amount=100, currency="CNY", reason="mistake"
            )
        self.spiking.append(spiky.pk)

        refund = make_refund(self.merchant, status="succeeded", created_at=now - dt.timedelta(days=2))
        self.arrived.append(
            Alert.objects.create(
                tier="P1",
                kind="refund_not_arrived",
                dedup_key=rules.refund_key(refund.pk, "not_arrived"),
                subject_type="refund",
                subject_id=str(refund.pk),
                merchant=self.merchant,
                summary=f"refund {refund.pk} not arrived (it since has)",
            ).pk
        )

        buyer = CustomerFactory(merchant=self.merchant, referrer=self.distributor)
        order = order_create(
            merchant=self.merchant,
            external_id=f"beats-o-{n}",
            customer_external_id=buyer.external_id,
            product_sku=self.product.sku,
            amount=10000,
            currency="CNY",
            paid_at=now - dt.timedelta(minutes=1),
            payment_method="wallet",
        )
        accrued = Commission.objects.filter(order=order)
        assert accrued.count() == 2  # distributor 10 %, its upline 5 %
        accrued.update(created_at=now - dt.timedelta(days=8))  # past the settlement period
        self.commissions += list(accrued.values_list("pk", flat=True))


def _beat_sends(stack: Stack, name: str) -> Counter:
    """How many times the beat `name` sent each schedule entry (its log)."""
    return Counter(re.findall(r"Sending due task (\S+) ", stack.log(name)))


def _stop(stack: Stack, name: str) -> None:
    """Stop one process for good (its log stays). What is measured here ends before the stop: a beat
    that has not exited a minute after SIGTERM is killed and reported as a warning, not a failure
    of the once-per-period guarantee (under a loaded CI machine one has been seen to linger)."""
    proc = stack.procs.pop(name)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        warnings.warn(
            f"{name} did not exit within 60 s of SIGTERM; killed. Log tail: {stack.log(name)[-2000:]}", stacklevel=2
        )


def _drain(settings, stack: Stack, deadline_s: float = 90) -> None:
    """Wait until no message waits in a queue or sits unacknowledged."""
    broker = redis.Redis.from_url(settings.REDIS_URL)
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        stack.check_alive()
        if not any(broker.llen(q) for q in QUEUES) and not broker.hlen("unacked"):
            return
        time.sleep(1)
    pytest.fail(f"the workers did not drain the queues within {deadline_s}s")


def _pin_ticks_before_window_ends(settings) -> dt.datetime:
    """Schedule the alert jobs as a beat started at an unlucky moment would tick them: a few
    hundredths to tenths of a second before a window ends (each job a different lead, within a
    worker's pick-up delay), from a boundary STARTUP_S ahead on. The beats keep these rows' last
    run times. Returns the boundary."""
    interval, _ = IntervalSchedule.objects.get_or_create(every=PERIOD, period=IntervalSchedule.SECONDS)
    boundary = (int(time.time()) + STARTUP_S) // PERIOD * PERIOD + PERIOD
    for job, lead in zip(ALERT_JOBS, (0.02, 0.05, 0.1, 0.2, 0.4), strict=True):
        name = SCHEDULE_OF[job]
        PeriodicTask.objects.create(
            name=name,
            task=settings.CELERY_BEAT_SCHEDULE[name]["task"],
            interval=interval,
            last_run_at=dt.datetime.fromtimestamp(boundary - lead - PERIOD, tz=dt.UTC),
        )
    return dt.datetime.fromtimestamp(boundary, tz=dt.UTC)


def _windows(job: str) -> list[dt.datetime]:
    return sorted(PeriodicRun.objects.filter(job=f"alerts.{job}").values_list("window_start", flat=True))


def test_two_beats_each_periodic_effect_once_per_period(runtime, settings):
    shop = Shop(runtime.base)
    # First: Shop finds its refunds by order external_id, which the factories' orders also use.
    stuck = [shop.refund("0001") for _ in range(2)]  # the sandbox bank keeps 0001 processing
    feed = Feed()
    feed.batch()  # due before the first tick

    first_tick = _pin_ticks_before_window_ends(settings)
    beats = [f"beat{i}" for i in range(1, BEATS + 1)]
    for name in beats:
        runtime.start(name, *BEAT)
    time.sleep(max(0.0, (first_tick - timezone.now()).total_seconds()))
    for _ in range(PERIODS - 2):
        time.sleep(PERIOD)
        runtime.check_alive()
        feed.batch()
    time.sleep(2 * PERIOD)
    runtime.check_alive()
    for name in beats:
        _stop(runtime, name)
    stopped = timezone.now()
    _drain(settings, runtime)
    period = dt.timedelta(seconds=PERIOD)

    # Each beat sent each alert job about every period: the duplicates were real.
    sends = {name: _beat_sends(runtime, name) for name in beats}
    for name in beats:
        for job in ALERT_JOBS:
            assert sends[name][SCHEDULE_OF[job]] >= PERIODS - 3, (name, sends[name])

    # One run per window, no window skipped, from the first tick to the last.
    runs = {job: _windows(job) for job in ALERT_JOBS}
    # Windows whose tick (at most 1 s in) came before the beats stopped, counted from the pinned
    # boundary on: each has its run. The window the beats stopped in may have had its tick or not.
    elapsed = int((stopped - first_tick - dt.timedelta(seconds=1)) / period) + 1
    since_first = {job: sum(1 for w in windows if w >= first_tick) for job, windows in runs.items()}
    print(
        f"\n{BEATS} beat(s); {elapsed} windows of {PERIOD}s elapsed from the pinned boundary; runs in them: "
        + ", ".join(f"{job}={n}" for job, n in since_first.items())
        + "; runs in all: "
        + ", ".join(f"{job}={len(w)}" for job, w in runs.items())
        + "; escalate sent by "
        + ", ".join(f"{name} {sends[name][SCHEDULE_OF['escalate']]}x" for name in beats)
    )
    skipped = {
        job: [f"{a:%H:%M:%S}..{b:%H:%M:%S}" for a, b in pairwise(windows) if b - a != period]
        for job, windows in runs.items()
    }
    assert skipped == {job: [] for job in ALERT_JOBS}, skipped
    assert all(elapsed <= n <= elapsed + 1 for n in since_first.values()), (elapsed, since_first)
    for job, windows in runs.items():
        assert windows[0] <= first_tick + period, (job, windows[0], first_tick)
        assert windows[-1] >= stopped - 2 * period, (job, windows[-1], stopped)

    # Each fed item had its effect exactly once.
    fed = len(feed.p0s)
    assert fed == PERIODS - 1
    escalated = Counter(AlertEvent.objects.filter(alert_id__in=feed.p0s, code="escalated").values_list("alert_id"))
    assert escalated == Counter((pk,) for pk in feed.p0s)
    assert sorted(Alert.objects.filter(pk__in=feed.p0s).values_list("escalation_level", flat=True)) == [1] * fed
    for what, ids in (("not_arrived", feed.late), ("deadline", feed.old_card)):
        alerts = Alert.objects.filter(dedup_key__in=[rules.refund_key(pk, what) for pk in ids])
        assert sorted(alerts.values_list("subject_id", "occurrence_count")) == sorted((str(pk), 1) for pk in ids)
    spikes = Alert.objects.filter(kind="refund_spike")
    assert sorted(spikes.values_list("merchant_id", "occurrence_count")) == sorted((pk, 1) for pk in feed.spiking)
    resolved = Counter(AlertEvent.objects.filter(alert_id__in=feed.arrived, code="resolved").values_list("alert_id"))
    assert resolved == Counter((pk,) for pk in feed.arrived)
    raised = sum(
        r["raised"] for r in PeriodicRun.objects.filter(job="alerts.sla_watch").values_list("result", flat=True)
    )
    assert raised == fed

    # Each commission moved once: available once, paid once, one settlement posting.
    assert len(feed.commissions) == 2 * fed
    moves = Counter(
        CommissionEvent.objects.filter(commission_id__in=feed.commissions, code__in=("available", "paid")).values_list(
            "commission_id", "code"
        )
    )
    assert moves == Counter({(pk, code): 1 for pk in feed.commissions for code in ("available", "paid")})
    postings = Counter(
        LedgerTransaction.objects.filter(
            reference__in=[f"commission:{pk}:settle" for pk in feed.commissions]
        ).values_list("reference", flat=True)
    )
    assert postings == Counter(f"commission:{pk}:settle" for pk in feed.commissions)

    # The poller queried each stuck refund once per interval: never two queries closer than half an
    # interval, at most one per interval over the run, and it did keep polling.
    for pk in stuck:
        times = sorted(
            ChannelCall.objects.filter(action="query", reference=f"refund:{pk}").values_list("created_at", flat=True)
        )
        assert len(times) >= 5, (pk, times)
        closest = min((b - a).total_seconds() for a, b in pairwise(times))
        assert closest >= POLL_INTERVAL / 2, (pk, closest)
        assert len(times) <= (times[-1] - times[0]).total_seconds() / POLL_INTERVAL + 1
        print(f"refund {pk}: {len(times)} queries, closest two {closest:.1f}s apart")
