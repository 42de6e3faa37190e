"""Gateway services: pick a channel, call it (one `ChannelCall` row per call), receive its webhooks,
and keep each channel's health, which picking a channel goes by.

`gateways` knows no refund or payout. Calls take and return the normalised types of `base.py`;
webhook results go to whoever registered the request id's prefix in `registry`.

Channel calls are network I/O: call them outside `transaction.atomic()` (from a worker or an
outbox dispatcher), so that no database lock is held while a bank takes its time and so that the
`ChannelCall` row survives whatever the caller does next.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import pairwise
from typing import TypeVar

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, transaction
from django.db.models import Count, Max, Q
from django.db.models.functions import TruncDate
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.common.errors import NotFoundError
from apps.gateways import reasons, registry
from apps.gateways.adapters import get_adapter
from apps.gateways.base import (
    Account,
    ChannelError,
    ChannelResult,
    ChannelTimeout,
    InboundEvent,
    Party,
    TransferRequest,
    VerifyResult,
)
from apps.gateways.models import Channel, ChannelCall, ChannelHealth, ChannelHealthDay, InboundWebhook
from apps.gateways.signals import channel_failure_rate_rising, channel_health_changed

logger = logging.getLogger(__name__)

T = TypeVar("T")

SANDBOX_CAPABILITIES = {"refund": True, "payout": True, "withdrawal": True, "verify": True}
# code, name, priority: the backup is there so failover can be exercised against the same bank.
SANDBOX_CHANNELS = (
    ("sandbox", "Sandbox bank", 10),
    ("sandbox-backup", "Sandbox bank (backup)", 20),
)


# --- channels -------------------------------------------------------------------------------------


def channel_for(*, capability: str, exclude: Collection[str] = ()) -> Channel | None:
    """The channel new money should leave through: enabled, able to carry `capability` ("refund",
    "payout", "withdrawal", "verify"), not one of the codes in `exclude` (failover), the healthiest
    first and by `priority` among equals; None only when no enabled channel can carry it.

    Health ranks healthy, then degraded, then down (`ChannelHealth`), and among equals a channel
    whose daily failure rate is rising after one whose is not. So a down or degraded channel is
    passed over while a healthier one can carry the capability, and the best of the rest is still
    returned when none is healthy. A channel never measured counts as healthy, and so does health
    not worked out for CHANNEL_HEALTH_STALE (beat stopped: plain priority order). One read query,
    no lock: safe inside the caller's transaction. Callers: the refund and payout submitters.
    """
    channels = (
        Channel.objects.filter(is_enabled=True)
        .exclude(code__in=list(exclude))
        .select_related("health")
        .order_by("priority", "code")
    )
    capable = [channel for channel in channels if channel.supports(capability)]
    if not capable:
        return None
    now = timezone.now()
    # min() keeps the first of equals, and `capable` is in priority order.
    return min(capable, key=lambda channel: _routing_rank(channel, now))


def _routing_rank(channel: Channel, now: dt.datetime) -> tuple[int, bool]:
    health = getattr(channel, "health", None)  # a missing reverse one-to-one raises AttributeError
    if health is None or health.computed_at is None or now - health.computed_at > settings.CHANNEL_HEALTH_STALE:
        return (0, False)
    return (_STATE_RANK[health.state], health.is_failure_rate_rising)


def ensure_sandbox_channel() -> Channel:
    """Create the "sandbox" (priority 10) and "sandbox-backup" (priority 20) channels if missing.

    Idempotent; existing rows are left as an operator configured them. Called by `seed_demo` and
    by tests. Returns the primary channel.
    """
    secret = settings.SANDBOX_WEBHOOK_SECRET
    if not secret:
        raise ImproperlyConfigured("SANDBOX_WEBHOOK_SECRET must be set to create the sandbox channels.")
    for code, name, priority in SANDBOX_CHANNELS:
        Channel.objects.get_or_create(
            code=code,
            defaults={
                "name": name,
                "adapter": "sandbox",
                "priority": priority,
                "is_enabled": True,
                "webhook_secret": secret,
                "capabilities": dict(SANDBOX_CAPABILITIES),
            },
        )
    return Channel.objects.get(code="sandbox")


# --- outbound calls -------------------------------------------------------------------------------


def _reference_of(request_id: str) -> str:
    return ":".join(request_id.split(":")[:2])


def _called(
    *,
    channel: Channel,
    action: str,
    reference: str,
    request_id: str,
    call: Callable[[], T],
    describe: Callable[[T], tuple[str, str, int | None]],
) -> T:
    """Run one adapter call and write its `ChannelCall` row, whatever happens."""
    started = time.monotonic()
    try:
        result = call()
    except ChannelError as exc:
        outcome = "timeout" if isinstance(exc, ChannelTimeout) else "error"
        _call_record(
            channel, action, reference, request_id, outcome, exc.raw_code, exc.http_status, started, _reason_of(exc)
        )
        if _is_outage(exc):
            _mark_down_quietly(channel)
        raise
    except Exception as exc:
        _call_record(channel, action, reference, request_id, "error", type(exc).__name__, None, started)
        raise
    outcome, raw_code, http_status = describe(result)
    _call_record(channel, action, reference, request_id, outcome, raw_code, http_status, started, _reason_of(result))
    return result


def _reason_of(answer: object) -> str:
    """The normalised reason code of an answer or ChannelError, "" when it has none."""
    reason = getattr(answer, "reason", None)
    return reason.code if reason is not None else ""


def _is_outage(exc: Exception) -> bool:
    # A timeout is not an outage: the bank may be slow on one request, and it may have executed it.
    return (
        isinstance(exc, ChannelError)
        and not isinstance(exc, ChannelTimeout)
        and exc.reason is not None
        and exc.reason.code == reasons.OUTAGE.code
    )


def _call_record(channel, action, reference, request_id, outcome, raw_code, http_status, started, reason="") -> None:
    latency_ms = int((time.monotonic() - started) * 1000)
    _call_row(channel, action, reference, request_id, outcome, raw_code, http_status, latency_ms, reason).save()


def _call_row(
    channel, action, reference, request_id, outcome, raw_code, http_status, latency_ms, reason=""
) -> ChannelCall:
    # Request ids and references only: account numbers never reach a log line.
    logger.info(
        "channel %s %s %s → %s%s (HTTP %s, %d ms)",
        channel.code,
        action,
        request_id or reference,
        outcome,
        f" {raw_code}" if raw_code else "",
        http_status,
        latency_ms,
    )
    return ChannelCall(
        channel=channel,
        action=action,
        reference=reference[:64],
        request_id=request_id[:128],
        outcome=outcome[:32],
        raw_code=(raw_code or "")[:64],
        reason=(reason or "")[:32],
        http_status=http_status,
        latency_ms=latency_ms,
    )


def channel_verify(*, channel: Channel, account: Account, reference: str = "", request_id: str = "") -> VerifyResult:
    """Ask the channel whether `account` exists and matches its holder name.

    Writes one ChannelCall (outcome "verified" / "mismatch" / "timeout" / "error"); ChannelError
    propagates after it is recorded.
    """
    return _called(
        channel=channel,
        action=ChannelCall.Action.VERIFY,
        reference=reference,
        request_id=request_id,
        call=lambda: get_adapter(channel).verify_account(account),
        describe=lambda r: ("verified" if r.ok else "mismatch", r.raw_code, r.http_status),
    )


def destination_verify(*, account: Account, reference: str, request_id: str) -> VerifyResult | ChannelError | None:
    """The one rule for "verify a destination before money moves to it": ask the channel chosen
    for verification (`channel_for(capability="verify")`) whether `account`'s number belongs to its
    holder name and bank.

    Returns the answer (ok, or the mismatch's reason); None when no enabled channel can verify
    (money goes on unverified); the ChannelError, not raised, when the channel could not answer
    (the caller asks again later). One ChannelCall. Callers: the payout pre-checks and the refund
    submitter, outside any transaction.
    """
    channel = channel_for(capability="verify")
    if channel is None:
        return None
    try:
        return channel_verify(channel=channel, account=account, reference=reference, request_id=request_id)
    except ChannelError as exc:
        return exc


def channel_submit(*, channel: Channel, request: TransferRequest) -> ChannelResult:
    """Send a transfer instruction, once; the bank dedupes on `request.request_id`.

    Writes one ChannelCall. On ChannelTimeout the outcome is unknown: the caller must
    `channel_query` before anything else and must never re-submit blindly (some banks execute a
    repeat). Callers: the refund and payout submitters, outside any transaction.
    """
    return _called(
        channel=channel,
        action=ChannelCall.Action.SUBMIT,
        reference=request.reference,
        request_id=request.request_id,
        call=lambda: get_adapter(channel).submit(request),
        describe=lambda r: (r.status.value, r.raw_code, r.http_status),
    )


def channel_query(*, channel: Channel, request_id: str, reference: str = "") -> ChannelResult:
    """Ask for the outcome of `request_id`; NOT_FOUND means the channel never executed it.

    Writes one ChannelCall. Callers: pollers and the unknown-outcome resolver.
    """
    return _called(
        channel=channel,
        action=ChannelCall.Action.QUERY,
        reference=reference or _reference_of(request_id),
        request_id=request_id,
        call=lambda: get_adapter(channel).query(request_id),
        describe=lambda r: (r.status.value, r.raw_code, r.http_status),
    )


@dataclass(frozen=True)
class Query:
    channel: Channel
    request_id: str
    reference: str = ""


def channel_query_many(*, queries: Sequence[Query], concurrency: int) -> list[ChannelResult | Exception]:
    """`channel_query` for several request ids at once, answers in the order asked.

    The HTTP calls run on up to `concurrency` threads that touch no database; the `ChannelCall`
    rows (one per call, as for `channel_query`) are then written by the caller's thread in one
    INSERT. A failed call's exception (ChannelError or other) is returned in its slot, not raised,
    so one bad answer does not hide the others. Callers: batch pollers, outside any transaction.
    """

    def ask(query: Query) -> tuple[ChannelResult | Exception, int]:
        started = time.monotonic()
        try:
            answer = get_adapter(query.channel).query(query.request_id)
        except Exception as exc:  # returned to the caller, recorded below
            answer = exc
        return answer, int((time.monotonic() - started) * 1000)

    if concurrency > 1 and len(queries) > 1:
        with ThreadPoolExecutor(max_workers=min(concurrency, len(queries))) as pool:
            answers = list(pool.map(ask, queries))
    else:
        answers = [ask(query) for query in queries]
    rows = []
    in_outage: dict[int, Channel] = {}
    for query, (answer, latency_ms) in zip(queries, answers, strict=True):
        if isinstance(answer, ChannelError):
            outcome = "timeout" if isinstance(answer, ChannelTimeout) else "error"
            described = (outcome, answer.raw_code, answer.http_status)
            if _is_outage(answer):
                in_outage[query.channel.pk] = query.channel
        elif isinstance(answer, Exception):
            described = ("error", type(answer).__name__, None)
        else:
            described = (answer.status.value, answer.raw_code, answer.http_status)
        reference = query.reference or _reference_of(query.request_id)
        rows.append(
            _call_row(
                query.channel,
                ChannelCall.Action.QUERY,
                reference,
                query.request_id,
                *described,
                latency_ms,
                _reason_of(answer),
            )
        )
    ChannelCall.objects.bulk_create(rows)
    for channel in in_outage.values():
        _mark_down_quietly(channel)
    return [answer for answer, _ in answers]


# --- channel health -------------------------------------------------------------------------------
#
# What counts against a channel is transient trouble on the bank's side, the kind another channel
# would not have: no answer in time, an outage (503, refused connection), any other 5xx or an
# unreadable answer, and a rejection whose reason is the bank's and retryable (channel limit
# reached). What does not: the customer's problems (account frozen or closed, holder name
# mismatch), the bank's risk hold on one transfer, and requests refused as malformed (4xx,
# `request_invalid`: ours to fix). Every action counts (verify, submit, query, statement).
#
# A channel's state, worked out from its calls in the last CHANNEL_HEALTH_WINDOW:
# - down ("outage") from its last outage error until CHANNEL_DOWN_COOLOFF has passed and a call
#   answered after that error (with probing off: until the cool-off has passed);
# - down ("failure_rate") when the window's failure rate is at least CHANNEL_DOWN_FAILURE_RATE and
#   its latest call failed;
# - degraded ("failure_rate") from CHANNEL_FAILURE_RATE_THRESHOLD up, or for a channel that was not
#   healthy, until the rate is below CHANNEL_FAILURE_RATE_RECOVERY;
# - healthy otherwise, and always with fewer than CHANNEL_HEALTH_MIN_CALLS calls in the window.
# Score: 0 when down, else 100 × (1 − rate × min(1, calls ÷ CHANNEL_HEALTH_MIN_CALLS)), rounded.

_STATE_RANK = {ChannelHealth.State.HEALTHY: 0, ChannelHealth.State.DEGRADED: 1, ChannelHealth.State.DOWN: 2}
# channel_limit, timeout, outage
CHANNEL_FAULT_REASONS = frozenset(
    code for code, reason in reasons.REASONS.items() if reason.responsible_party == Party.BANK and reason.retryable
)
# Queried by probes: no transfer has it, so a channel that answers at all answers NOT_FOUND.
PROBE_REQUEST_ID = "health:probe"


def channel_failed_q() -> Q:
    """The `ChannelCall` rows that count against their channel (see the rule above)."""
    return (Q(outcome__in=("timeout", "error")) & ~Q(reason=reasons.REQUEST_INVALID.code)) | Q(
        outcome="failed", reason__in=CHANNEL_FAULT_REASONS
    )


@dataclass
class _Stats:
    """One channel's calls in the health window (last_* over everything the query read)."""

    calls: int = 0
    failures: int = 0
    last_call_at: dt.datetime | None = None
    last_ok_at: dt.datetime | None = None
    last_failure_at: dt.datetime | None = None
    last_outage_at: dt.datetime | None = None


def _latest(*moments: dt.datetime | None) -> dt.datetime | None:
    return max((moment for moment in moments if moment is not None), default=None)


def _rate(failures: int, calls: int) -> float:
    return failures / calls if calls else 0.0


def _health_locked(channel: Channel) -> ChannelHealth:
    """The channel's health row, created if missing, locked until the caller's transaction ends."""
    health, _ = ChannelHealth.objects.select_for_update().get_or_create(channel=channel)
    return health


def _announce_change(channel: Channel, old_state: str, health: ChannelHealth) -> None:
    payload = {
        "channel_code": channel.code,
        "old_state": str(old_state),
        "new_state": str(health.state),
        "reason": health.reason,
        "failure_rate": health.failure_rate,
        "score": health.score,
        "calls": health.calls,
    }
    logger.warning("channel %s health %s → %s (%s)", channel.code, old_state, health.state, health.reason or "-")
    transaction.on_commit(lambda: channel_health_changed.send(sender=ChannelHealth, **payload), robust=True)


def channel_health_mark_down(*, channel: Channel) -> ChannelHealth:
    """Mark `channel` down now, after an outage error from a call to it, without waiting for the beat,
    so that the next `channel_for` passes it over.

    Locks the channel's health row. A channel already down only has its last outage moved (which
    restarts its cool-off): `channel_health_changed` goes out once per change, after commit.
    Callers: `_called` and `channel_query_many`, after writing the call's `ChannelCall` row.
    """
    now = timezone.now()
    with transaction.atomic():
        health = _health_locked(channel)
        old_state = health.state
        health.last_outage_at = now
        health.computed_at = now
        fields = ["last_outage_at", "computed_at"]
        if old_state != ChannelHealth.State.DOWN:
            health.state, health.reason, health.score = ChannelHealth.State.DOWN, "outage", 0
            health.state_changed_at = now
            fields += ["state", "reason", "score", "state_changed_at"]
            _announce_change(channel, old_state, health)
        health.save(update_fields=fields)
    return health


def _mark_down_quietly(channel: Channel) -> None:
    # Health bookkeeping never changes what the caller of a channel call sees.
    try:
        channel_health_mark_down(channel=channel)
    except Exception:
        logger.exception("could not mark channel %s down", channel.code)


def channel_health_refresh() -> dict[str, str]:
    """Work out every enabled channel's health from its recent calls (the rule above), keep the daily
    history, and announce what changed; returns {channel code: state}.

    First, with CHANNEL_HEALTH_PROBE on, probes (outside any transaction) each channel that is down
    past its cool-off or has had no call for CHANNEL_HEALTH_PROBE_IDLE: one status query of
    PROBE_REQUEST_ID, recorded like any call (an outage answer marks the channel down at once).
    Then one aggregate query over `ChannelCall` (the window, plus any complete UTC day the history
    still lacks, written once), and per channel, under its health row lock:
    `channel_health_changed` if the state changed, `channel_failure_rate_rising` if the daily rate
    has just started rising CHANNEL_RISING_DAYS days in a row, both after commit. Safe to run twice
    at once: the second finds the state unchanged and sends nothing, and a result computed before
    the row's last update (an outage marked meanwhile) is dropped. Caller:
    `channel_health_refresh_task` (beat, every CHANNEL_HEALTH_REFRESH_SECONDS).
    """
    channels = list(Channel.objects.filter(is_enabled=True).select_related("health").order_by("priority", "code"))
    if settings.CHANNEL_HEALTH_PROBE:
        _probe(channels)
    now = timezone.now()
    stats = _call_stats(channels, now)
    rising = _rising_days(channels, now.astimezone(dt.UTC).date())
    return {
        channel.code: _health_update(channel, stats.get(channel.pk, _Stats()), rising.get(channel.pk), now)
        for channel in channels
    }


def _needs_probe(health: ChannelHealth | None, now: dt.datetime) -> bool:
    if health is None:
        return True
    if health.state == ChannelHealth.State.DOWN:
        since = health.last_outage_at or health.state_changed_at
        return now >= since + settings.CHANNEL_DOWN_COOLOFF
    return health.last_call_at is None or now - health.last_call_at >= settings.CHANNEL_HEALTH_PROBE_IDLE


def _probe(channels: Sequence[Channel]) -> None:
    now = timezone.now()
    for channel in channels:
        if not _needs_probe(getattr(channel, "health", None), now):
            continue
        try:
            channel_query(channel=channel, request_id=PROBE_REQUEST_ID, reference=f"health:{channel.code}")
        except Exception as exc:  # recorded as its ChannelCall; an outage has marked the channel down
            logger.info("probe of channel %s failed: %s", channel.code, type(exc).__name__)


def _call_stats(channels: Sequence[Channel], now: dt.datetime) -> dict[int, _Stats]:
    """One aggregate query over `ChannelCall`: per channel, its window; and, for the complete UTC
    days the rising check needs that have no `ChannelHealthDay` yet (normally none, yesterday once
    after midnight), their totals, written as they are final. So the query usually reads only the
    window (ChannelCall.created_at is indexed)."""
    today = now.astimezone(dt.UTC).date()
    missing = _days_missing(channels, today)
    window_start = now - settings.CHANNEL_HEALTH_WINDOW
    since = window_start
    if missing:
        since = min(since, dt.datetime.combine(min(day for _, day in missing), dt.time.min, tzinfo=dt.UTC))
    failed = channel_failed_q()
    in_window = Q(created_at__gte=window_start)
    rows = (
        ChannelCall.objects.filter(
            channel__in=[channel.pk for channel in channels], created_at__gte=since, created_at__lte=now
        )
        .annotate(day=TruncDate("created_at", tzinfo=dt.UTC))
        .values("channel_id", "day")
        .annotate(
            calls=Count("pk"),
            failures=Count("pk", filter=failed),
            window_calls=Count("pk", filter=in_window),
            window_failures=Count("pk", filter=in_window & failed),
            last_call_at=Max("created_at"),
            last_ok_at=Max("created_at", filter=~failed),
            last_failure_at=Max("created_at", filter=failed),
            last_outage_at=Max("created_at", filter=Q(reason=reasons.OUTAGE.code)),
        )
        .order_by()
    )
    stats: dict[int, _Stats] = defaultdict(_Stats)
    days: dict[tuple[int, dt.date], tuple[int, int]] = {}
    for row in rows:
        one = stats[row["channel_id"]]
        one.calls += row["window_calls"]
        one.failures += row["window_failures"]
        one.last_call_at = _latest(one.last_call_at, row["last_call_at"])
        one.last_ok_at = _latest(one.last_ok_at, row["last_ok_at"])
        one.last_failure_at = _latest(one.last_failure_at, row["last_failure_at"])
        one.last_outage_at = _latest(one.last_outage_at, row["last_outage_at"])
        days[(row["channel_id"], row["day"])] = (row["calls"], row["failures"])
    history = []
    for channel_id, day in sorted(missing):
        calls, failures = days.get((channel_id, day), (0, 0))
        history.append(
            ChannelHealthDay(
                channel_id=channel_id,
                date=day,
                calls=calls,
                failures=failures,
                failure_rate=_rate(failures, calls),
                computed_at=now,
            )
        )
    # A concurrent refresh may have written the same final totals first.
    ChannelHealthDay.objects.bulk_create(history, ignore_conflicts=True)
    return stats


def _days_missing(channels: Sequence[Channel], today: dt.date) -> set[tuple[int, dt.date]]:
    """(channel id, day) of the complete days the rising check looks at that have no row yet."""
    first = today - dt.timedelta(days=settings.CHANNEL_RISING_DAYS + 1)
    wanted = {(channel.pk, first + dt.timedelta(days=n)) for channel in channels for n in range((today - first).days)}
    have = set(
        ChannelHealthDay.objects.filter(
            channel__in=[channel.pk for channel in channels], date__gte=first, date__lt=today
        ).values_list("channel_id", "date")
    )
    return wanted - have


def _rising_days(channels: Sequence[Channel], today: dt.date) -> dict[int, list[ChannelHealthDay]]:
    """Channels whose daily failure rate rose on each of the last CHANNEL_RISING_DAYS complete days,
    with the compared days (N + 1 of them, oldest first, each with enough calls)."""
    n = settings.CHANNEL_RISING_DAYS
    if n < 1:
        return {}
    by_channel: dict[int, list[ChannelHealthDay]] = defaultdict(list)
    for day in ChannelHealthDay.objects.filter(
        channel__in=[channel.pk for channel in channels],
        date__gte=today - dt.timedelta(days=n + 1),
        date__lt=today,
    ).order_by("channel_id", "date"):
        by_channel[day.channel_id].append(day)
    return {
        channel_id: days
        for channel_id, days in by_channel.items()
        if len(days) == n + 1
        and all(day.calls >= settings.CHANNEL_RISING_MIN_CALLS for day in days)
        and all(before.failure_rate < after.failure_rate for before, after in pairwise(days))
    }


def _judge(health: ChannelHealth, stats: _Stats, now: dt.datetime) -> tuple[str, str]:
    """(state, reason) by the rule above."""
    state = ChannelHealth.State
    rate = _rate(stats.failures, stats.calls)
    judged = stats.calls >= settings.CHANNEL_HEALTH_MIN_CALLS
    last_outage = _latest(health.last_outage_at, stats.last_outage_at)
    if last_outage is not None:
        last_ok = _latest(health.last_ok_at, stats.last_ok_at)
        cooling = now < last_outage + settings.CHANNEL_DOWN_COOLOFF
        unanswered = settings.CHANNEL_HEALTH_PROBE and not (last_ok is not None and last_ok > last_outage)
        if cooling or unanswered:
            return state.DOWN, "outage"
    latest_failed = stats.last_failure_at is not None and (
        stats.last_ok_at is None or stats.last_failure_at >= stats.last_ok_at
    )
    if judged and rate >= settings.CHANNEL_DOWN_FAILURE_RATE and latest_failed:
        return state.DOWN, "failure_rate"
    if judged and (
        rate >= settings.CHANNEL_FAILURE_RATE_THRESHOLD
        or (health.state != state.HEALTHY and rate >= settings.CHANNEL_FAILURE_RATE_RECOVERY)
    ):
        return state.DEGRADED, "failure_rate"
    return state.HEALTHY, ""


def _score(state: str, stats: _Stats) -> int:
    if state == ChannelHealth.State.DOWN:
        return 0
    confidence = min(1.0, stats.calls / max(1, settings.CHANNEL_HEALTH_MIN_CALLS))
    return max(0, min(100, round(100 * (1 - _rate(stats.failures, stats.calls) * confidence))))


def _health_update(channel: Channel, stats: _Stats, rising: list[ChannelHealthDay] | None, now: dt.datetime) -> str:
    with transaction.atomic():
        health = _health_locked(channel)
        if health.computed_at is not None and health.computed_at > now:
            return str(health.state)  # marked down after this refresh read the calls: that stands
        old_state = health.state
        health.state, health.reason = _judge(health, stats, now)
        health.score = _score(health.state, stats)
        health.failure_rate = _rate(stats.failures, stats.calls)
        health.calls, health.failures = stats.calls, stats.failures
        health.last_call_at = _latest(health.last_call_at, stats.last_call_at)
        health.last_ok_at = _latest(health.last_ok_at, stats.last_ok_at)
        health.last_outage_at = _latest(health.last_outage_at, stats.last_outage_at)
        health.computed_at = now
        if health.state != old_state:
            health.state_changed_at = now
            _announce_change(channel, old_state, health)
        if rising is not None and not health.is_failure_rate_rising:
            _announce_rising(channel, rising)
        health.is_failure_rate_rising = rising is not None
        health.save()
    return str(health.state)


def _announce_rising(channel: Channel, days: list[ChannelHealthDay]) -> None:
    payload = {
        "channel_code": channel.code,
        "failure_rate": days[-1].failure_rate,
        "days": [
            {
                "date": day.date.isoformat(),
                "calls": day.calls,
                "failures": day.failures,
                "failure_rate": day.failure_rate,
            }
            for day in days
        ],
    }
    logger.warning("channel %s failure rate rising %d days in a row", channel.code, len(days) - 1)
    transaction.on_commit(lambda: channel_failure_rate_rising.send(sender=ChannelHealth, **payload), robust=True)


# --- inbound webhooks -----------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookReceipt:
    status: str  # "accepted" (at least one new event) or "duplicate" (all seen before)
    outcomes: dict[str, str] = field(default_factory=dict)  # event id → handler outcome or "duplicate"


def webhook_receive(*, channel_code: str, headers: Mapping[str, str], body: bytes) -> WebhookReceipt:
    """Authenticate a channel's webhook, record each event once, and hand it to its owner.

    Authentication (signature over the raw body, timestamp within tolerance) happens before any
    write: a rejected delivery raises WebhookRejected and leaves no row. Each event is inserted
    into InboundWebhook (unique per channel + event id) and dispatched through `registry` in the
    same transaction, so a redelivery — concurrent or days later — is answered "duplicate" and
    dispatches nothing, and a handler that fails rolls the insert back for the bank to retry.
    Raises NotFoundError for an unknown channel code. Caller: the webhook view.
    """
    channel = Channel.objects.filter(code=channel_code).first()
    if channel is None:
        raise NotFoundError(_("Unknown channel."), code="unknown_channel")
    events = get_adapter(channel).parse_webhook(headers=dict(headers.items()), body=body)
    outcomes = {event.event_id: _webhook_apply(channel, event) for event in events}
    status = "accepted" if any(outcome != "duplicate" for outcome in outcomes.values()) else "duplicate"
    return WebhookReceipt(status=status, outcomes=outcomes)


def _webhook_apply(channel: Channel, event: InboundEvent) -> str:
    result = event.result
    with transaction.atomic():
        try:
            with transaction.atomic():
                row = InboundWebhook.objects.create(
                    channel=channel,
                    event_id=event.event_id,
                    request_id=result.request_id[:128],
                    status=result.status.value,
                    payload=event.raw,
                )
        except IntegrityError:
            if InboundWebhook.objects.filter(channel=channel, event_id=event.event_id).exists():
                logger.info("webhook %s:%s is a duplicate", channel.code, event.event_id)
                return "duplicate"
            raise
        outcome = registry.dispatch(result, channel_code=channel.code, source="webhook")
        row.outcome = str(outcome)[:32]
        row.save(update_fields=["outcome"])
    logger.info("webhook %s:%s %s %s → %s", channel.code, event.event_id, result.request_id, result.status, outcome)
    return row.outcome


# --- statements (reconciliation) ------------------------------------------------------------------
# Kept as one block with its imports: `ledger` reconciles, a higher-floor app hands it these lines.

from datetime import date  # noqa: E402

from apps.gateways.base import StatementLine  # noqa: E402


def channel_statement_codes(*, adapter: str) -> list[str]:
    """Codes of every channel built on `adapter`, enabled or not (a channel switched off today may
    still have moved money yesterday), in priority order. One bank's statement source covers them."""
    return list(Channel.objects.filter(adapter=adapter).order_by("priority", "code").values_list("code", flat=True))


def channel_statement(*, channel: Channel | str, date: date) -> list[StatementLine]:
    """The channel's statement of the platform's account for one value date (see
    `ChannelAdapter.statement`): what really left (OUT, once per execution) and came back (IN).

    Writes one ChannelCall (action "statement", outcome "received" / "timeout" / "error");
    ChannelError propagates after it is recorded, NotImplementedError for a channel without a
    statement API. Raises NotFoundError for an unknown channel code. Network I/O: call it outside
    any transaction. Caller: the statement sources registered for reconciliation.
    """
    if isinstance(channel, str):
        code = channel
        channel = Channel.objects.filter(code=code).first()
        if channel is None:
            raise NotFoundError(_("Unknown channel."), code="unknown_channel")
    return _called(
        channel=channel,
        action=ChannelCall.Action.STATEMENT,
        reference="",
        request_id=f"statement:{date.isoformat()}",
        call=lambda: get_adapter(channel).statement(date),
        describe=lambda lines: ("received", "", 200),
    )


# --- recalls (payout recovery) --------------------------------------------------------------------
# Kept as one block with its import: the payouts app asks a channel to pull back paid money.

from apps.gateways.base import RecallResult  # noqa: E402

RECALL_ACTION = "recall"


def channel_recall(*, channel: Channel, request_id: str, reference: str = "") -> RecallResult:
    """Ask the channel to pull back the money of the executed transfer `request_id`.

    Writes one ChannelCall (action "recall", outcome "recalled" / "refused" / "timeout" / "error");
    ChannelError propagates after it is recorded, NotImplementedError for a channel without a
    recall API. Network I/O: call it outside any transaction. Caller: the payout recall sender.
    """
    return _called(
        channel=channel,
        action=RECALL_ACTION,
        reference=reference or _reference_of(request_id),
        request_id=request_id,
        call=lambda: get_adapter(channel).recall(request_id),
        describe=lambda r: ("recalled" if r.ok else "refused", r.raw_code, r.http_status),
    )
