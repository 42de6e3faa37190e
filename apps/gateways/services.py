"""Gateway services: pick a channel, call it (one `ChannelCall` row per call), receive its webhooks.

`gateways` knows no refund or payout. Calls take and return the normalised types of `base.py`;
webhook results go to whoever registered the request id's prefix in `registry`.

Channel calls are network I/O: call them outside `transaction.atomic()` (from a worker or an
outbox dispatcher), so that no database lock is held while a bank takes its time and so that the
`ChannelCall` row survives whatever the caller does next.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, transaction

from apps.common.errors import NotFoundError
from apps.gateways import registry
from apps.gateways.adapters import get_adapter
from apps.gateways.base import (
    Account,
    ChannelError,
    ChannelResult,
    ChannelTimeout,
    InboundEvent,
    TransferRequest,
    VerifyResult,
)
from apps.gateways.models import Channel, ChannelCall, InboundWebhook

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
    """The first enabled channel by priority that can carry `capability` ("refund", "payout",
    "withdrawal", "verify"), skipping the codes in `exclude` (for failover); None if there is none."""
    for channel in Channel.objects.filter(is_enabled=True).exclude(code__in=list(exclude)).order_by("priority", "code"):
        if channel.supports(capability):
            return channel
    return None


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
        _call_record(channel, action, reference, request_id, outcome, exc.raw_code, exc.http_status, started)
        raise
    except Exception as exc:
        _call_record(channel, action, reference, request_id, "error", type(exc).__name__, None, started)
        raise
    outcome, raw_code, http_status = describe(result)
    _call_record(channel, action, reference, request_id, outcome, raw_code, http_status, started)
    return result


def _call_record(channel, action, reference, request_id, outcome, raw_code, http_status, started) -> None:
    latency_ms = int((time.monotonic() - started) * 1000)
    _call_row(channel, action, reference, request_id, outcome, raw_code, http_status, latency_ms).save()


def _call_row(channel, action, reference, request_id, outcome, raw_code, http_status, latency_ms) -> ChannelCall:
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
    for query, (answer, latency_ms) in zip(queries, answers, strict=True):
        if isinstance(answer, ChannelError):
            outcome = "timeout" if isinstance(answer, ChannelTimeout) else "error"
            described = (outcome, answer.raw_code, answer.http_status)
        elif isinstance(answer, Exception):
            described = ("error", type(answer).__name__, None)
        else:
            described = (answer.status.value, answer.raw_code, answer.http_status)
        reference = query.reference or _reference_of(query.request_id)
        rows.append(
            _call_row(query.channel, ChannelCall.Action.QUERY, reference, query.request_id, *described, latency_ms)
        )
    ChannelCall.objects.bulk_create(rows)
    return [answer for answer, _ in answers]


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
        raise NotFoundError("Unknown channel.", code="unknown_channel")
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
