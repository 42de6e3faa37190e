"""The sandbox bank's behaviour: what it does with a submit, a query, a verification, and which
webhooks it owes. The HTTP views (views.py) only parse, call these, and sleep where the bank is
meant to be slow.

Behaviour by the last four digits of the destination account (DESIGN.md, "Sandbox bank"):
0000/other settle after SANDBOX_BANK_SETTLE_SECONDS; 0001 after SANDBOX_BANK_DELAY_SECONDS;
0002 fails (account frozen); 0003 succeeds then returns the funds after SANDBOX_BANK_RETURN_SECONDS;
0004 verification and submit fail (holder name mismatch); 0005 executes, answers too late and does
not dedupe by request id; 0006 drops the first submit without executing, answering too late;
0007 rejects the first submit (limit reached); 0008 sends each webhook twice, succeeded before
processing; 0009 is held by the bank's risk control. Everything else dedupes by request id.
The bank also prints a daily statement of what really moved (`statement`), for reconciliation.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import requests
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.common.crypto import fingerprint
from apps.gateways.models import Channel
from apps.gateways.sandbox.models import (
    INVALID_REQUEST,
    LIMIT_REACHED,
    NAME_MISMATCH,
    NOT_FOUND,
    REQUEST_ID_CONFLICT,
    SERVICE_UNAVAILABLE,
    Behaviour,
    SandboxEvent,
    SandboxOutage,
    SandboxSubmission,
    SandboxTransfer,
)
from apps.gateways.signing import SIGNATURE_HEADER, signature_header

logger = logging.getLogger(__name__)

DEFAULT_CHANNEL = "sandbox"
KINDS = ("refund", "payout", "withdrawal")
_CURRENCY = re.compile(r"[A-Z]{3}")
_ACCOUNT_NUMBER = re.compile(r"[0-9]{4,34}")
_CHANNEL = re.compile(r"[-a-zA-Z0-9_]{1,32}")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# A delivery claimed by one worker is not picked up by another for this long.
DELIVERY_LEASE = timedelta(seconds=30)
MAX_BACKOFF_SECONDS = 600


@dataclass(frozen=True)
class BankAnswer:
    """What the bank answers over HTTP, and how long it dawdles before answering."""

    http_status: int
    body: dict[str, Any]
    sleep_seconds: float = 0.0


class InvalidRequest(Exception):
    def __init__(self, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.fields = fields or {}


def error_body(code: str, message: str, fields: dict | None = None) -> dict:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def channel_from(raw: str | None) -> str:
    raw = (raw or DEFAULT_CHANNEL).strip()
    if not _CHANNEL.fullmatch(raw):
        raise InvalidRequest("Unknown channel header.", {"channel": "invalid"})
    return raw


# --- outage -------------------------------------------------------------------------------------


def outage_set(*, channel: str, enabled: bool) -> SandboxOutage:
    outage, _ = SandboxOutage.objects.update_or_create(
        channel=channel, defaults={"is_enabled": enabled, "changed_at": timezone.now()}
    )
    return outage


def in_outage(channel: str) -> bool:
    return SandboxOutage.objects.filter(channel=channel, is_enabled=True).exists()


def outage_answer() -> BankAnswer:
    return BankAnswer(503, error_body(SERVICE_UNAVAILABLE, "The bank is unavailable."))


# --- input --------------------------------------------------------------------------------------


def _account(raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise InvalidRequest("account must be an object.", {"account": "required"})
    fields = {}
    for key in ("holder_name", "bank", "number"):
        value = raw.get(key)
        if not isinstance(value, str) or not value.strip():
            fields[f"account.{key}"] = "required"
    if not fields and not _ACCOUNT_NUMBER.fullmatch(raw["number"]):
        fields["account.number"] = "invalid"
    if fields:
        raise InvalidRequest("Invalid account.", fields)
    return {"holder_name": raw["holder_name"], "bank": raw["bank"], "number": raw["number"]}


def parse_transfer(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise InvalidRequest("Body must be a JSON object.")
    fields = {}
    request_id = data.get("request_id")
    if not isinstance(request_id, str) or not 0 < len(request_id) <= 128:
        fields["request_id"] = "required, at most 128 characters"
    amount = data.get("amount")
    if type(amount) is not int or amount <= 0:
        fields["amount"] = "a positive integer in minor units"
    currency = data.get("currency")
    if not isinstance(currency, str) or not _CURRENCY.fullmatch(currency):
        fields["currency"] = "ISO 4217, upper case"
    kind = data.get("kind", "refund")
    if kind not in KINDS:
        fields["kind"] = f"one of {', '.join(KINDS)}"
    try:
        account = _account(data.get("account"))
    except InvalidRequest as exc:
        fields.update(exc.fields)
        account = None
    if fields:
        raise InvalidRequest("Invalid transfer.", fields)
    return {"request_id": request_id, "amount": amount, "currency": currency, "kind": kind, "account": account}


def parse_verify(data: Any) -> dict[str, str]:
    if not isinstance(data, dict):
        raise InvalidRequest("Body must be a JSON object.")
    return _account(data.get("account", data))


# --- transfers ----------------------------------------------------------------------------------


def transfer_body(transfer: SandboxTransfer) -> dict[str, Any]:
    status, code, since = transfer.state_at()
    return {
        "transfer_id": transfer.transfer_id,
        "request_id": transfer.request_id,
        "status": status,
        "code": code,
        "amount": transfer.amount,
        "currency": transfer.currency,
        "kind": transfer.kind,
        "account_last4": transfer.account_last4,
        "submitted_at": transfer.submitted_at.isoformat(),
        "updated_at": since.isoformat(),
    }


def _record(*, request_id: str, channel: str, last4: str, outcome: str, code: str = "") -> None:
    SandboxSubmission.objects.create(
        request_id=request_id, channel=channel, account_last4=last4, outcome=outcome, code=code
    )


def _rejected(*, request_id: str, code: str, message: str) -> BankAnswer:
    return BankAnswer(422, {"request_id": request_id, "status": "rejected", "code": code, "message": message})


def _schedule_events(transfer: SandboxTransfer) -> None:
    steps = transfer.timeline()
    events = []
    if transfer.behaviour == Behaviour.WEBHOOK_CHAOS:
        # Each event twice and out of order: the final state first, the earlier one after it,
        # and every delivery repeated once more behind the other.
        (processing_at, processing, _), (final_at, final, final_code) = steps[0], steps[1]
        final_id, processing_id = _event_id(), _event_id()
        for copy in (1, 2):
            events.append((final_id, copy, final, final_code, final_at, final_at))
            events.append((processing_id, copy, processing, "", processing_at, final_at))
    else:
        for at, status, code in steps:
            events.append((_event_id(), 1, status, code, at, at))
    SandboxEvent.objects.bulk_create(
        SandboxEvent(
            transfer=transfer,
            event_id=event_id,
            copy=copy,
            status=status,
            code=code,
            occurred_at=occurred_at,
            due_at=due_at,
            next_attempt_at=due_at,
        )
        for event_id, copy, status, code, occurred_at, due_at in events
    )


def _event_id() -> str:
    return f"evt_{uuid.uuid4().hex[:24]}"


def _same_instruction(transfer: SandboxTransfer, data: dict, last4: str) -> bool:
    return (transfer.amount, transfer.currency, transfer.account_last4) == (data["amount"], data["currency"], last4)


def transfer_submit(*, channel: str, data: dict[str, Any]) -> BankAnswer:
    """Act on a transfer instruction exactly as the account suffix says (see module docstring)."""
    request_id = data["request_id"]
    number = data["account"]["number"]
    last4 = number[-4:]
    seen_before = SandboxSubmission.objects.filter(request_id=request_id).exclude(outcome="outage").exists()
    sleep = float(settings.SANDBOX_BANK_TIMEOUT_SLEEP)

    if last4 == Behaviour.NAME_MISMATCH:
        _record(request_id=request_id, channel=channel, last4=last4, outcome="rejected", code=NAME_MISMATCH)
        return _rejected(request_id=request_id, code=NAME_MISMATCH, message="Holder name does not match the account.")
    if last4 == Behaviour.LIMIT_FIRST and not seen_before:
        _record(request_id=request_id, channel=channel, last4=last4, outcome="rejected", code=LIMIT_REACHED)
        return _rejected(request_id=request_id, code=LIMIT_REACHED, message="Channel limit reached, try later.")
    if last4 == Behaviour.TIMEOUT_NOT_EXECUTED and not seen_before:
        _record(request_id=request_id, channel=channel, last4=last4, outcome="dropped")
        return BankAnswer(504, error_body("GATEWAY_TIMEOUT", "Upstream timed out."), sleep_seconds=sleep)

    with transaction.atomic():
        existing = SandboxTransfer.objects.select_for_update().filter(request_id=request_id).first()
        if existing is not None:
            answer = _repeat(existing, channel=channel, data=data, last4=last4)
        else:
            try:
                with transaction.atomic():
                    transfer = _transfer_create(channel=channel, data=data, last4=last4, number=number)
            except IntegrityError:
                # A concurrent submit of the same request id won the insert: this is a repeat.
                winner = SandboxTransfer.objects.select_for_update().get(request_id=request_id)
                answer = _repeat(winner, channel=channel, data=data, last4=last4)
            else:
                _record(request_id=request_id, channel=channel, last4=last4, outcome="executed")
                answer = BankAnswer(201, transfer_body(transfer))
    if last4 == Behaviour.TIMEOUT_EXECUTED:
        return BankAnswer(answer.http_status, answer.body, sleep_seconds=sleep)
    return answer


def _repeat(existing: SandboxTransfer, *, channel: str, data: dict, last4: str) -> BankAnswer:
    request_id = existing.request_id
    if not _same_instruction(existing, data, last4):
        _record(request_id=request_id, channel=channel, last4=last4, outcome="conflict", code=REQUEST_ID_CONFLICT)
        return BankAnswer(409, error_body(REQUEST_ID_CONFLICT, "This request id was used for a different instruction."))
    if last4 == Behaviour.TIMEOUT_EXECUTED:
        # This bank's quirk: no dedupe for this account, so a blind re-submit moves the money again.
        SandboxTransfer.objects.filter(pk=existing.pk).update(executions=F("executions") + 1)
        _record(request_id=request_id, channel=channel, last4=last4, outcome="executed")
        existing.refresh_from_db()
        return BankAnswer(201, transfer_body(existing))
    _record(request_id=request_id, channel=channel, last4=last4, outcome="deduplicated")
    return BankAnswer(200, transfer_body(existing))


def _transfer_create(*, channel: str, data: dict, last4: str, number: str) -> SandboxTransfer:
    now = timezone.now()
    settle = float(settings.SANDBOX_BANK_SETTLE_SECONDS)
    if last4 == Behaviour.SLOW:
        settle = float(settings.SANDBOX_BANK_DELAY_SECONDS)
    returns_at = None
    if last4 == Behaviour.RETURNED:
        returns_at = now + timedelta(seconds=settle + float(settings.SANDBOX_BANK_RETURN_SECONDS))
    # Money moves unless the transfer is going to fail or is stopped by the bank's risk control.
    moves = last4 not in (Behaviour.FROZEN, Behaviour.RISK_HOLD)
    transfer = SandboxTransfer.objects.create(
        transfer_id=f"sbx_{uuid.uuid4().hex[:24]}",
        request_id=data["request_id"],
        channel=channel,
        kind=data["kind"],
        amount=data["amount"],
        currency=data["currency"],
        account_last4=last4,
        account_fingerprint=fingerprint(number),
        executions=1 if moves else 0,
        submitted_at=now,
        settles_at=now + timedelta(seconds=settle),
        returns_at=returns_at,
    )
    _schedule_events(transfer)
    return transfer


def transfer_query(*, request_id: str) -> BankAnswer:
    transfer = SandboxTransfer.objects.filter(request_id=request_id).first()
    if transfer is None:
        return BankAnswer(404, error_body(NOT_FOUND, "No transfer with this request id."))
    return BankAnswer(200, transfer_body(transfer))


# A recall is honoured while the money is likely still at the receiving bank.
RECALL_WINDOW = timedelta(hours=24)


def transfer_recall(*, request_id: str) -> BankAnswer:
    """Pull back a settled transfer's money: "recalled" when it has succeeded and settled less than
    RECALL_WINDOW ago, "refused" otherwise (not settled, failed, held, already returned: NOT_RECALLABLE;
    too late: FUNDS_WITHDRAWN). Stateless — the bank's books keep the transfer as it was — so
    asking twice gives the same answer."""
    transfer = SandboxTransfer.objects.filter(request_id=request_id).first()
    if transfer is None:
        return BankAnswer(404, error_body(NOT_FOUND, "No transfer with this request id."))
    status, _, _ = transfer.state_at()
    if status != SandboxTransfer.Status.SUCCEEDED or not transfer.executions:
        answer = {"request_id": request_id, "status": "refused", "code": "NOT_RECALLABLE"}
    elif timezone.now() - transfer.settles_at > RECALL_WINDOW:
        answer = {"request_id": request_id, "status": "refused", "code": "FUNDS_WITHDRAWN"}
    else:
        answer = {"request_id": request_id, "status": "recalled", "code": ""}
    return BankAnswer(200, answer)


def parse_statement_date(raw: str | None) -> date:
    if not raw or not _DATE.fullmatch(raw):
        raise InvalidRequest("date must be YYYY-MM-DD.", {"date": "required, YYYY-MM-DD"})
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise InvalidRequest("date must be a real date.", {"date": "invalid"}) from None


def statement(*, channel: str, value_date: date) -> BankAnswer:
    """The statement of the platform's account at this bank for `channel` and one value date (UTC):
    a line "out" per execution of every transfer that settled that day (the 0005 account's blind
    re-submit shows as a second line: money really moved twice) and a line "in" for every return
    booked that day. Transfers that failed or are held moved nothing and are absent, and so is
    anything not yet settled by the bank's clock."""
    now = timezone.now()
    start = datetime.combine(value_date, time.min, tzinfo=UTC)
    end = start + timedelta(days=1)
    lines = []
    transfers = SandboxTransfer.objects.filter(channel=channel).filter(
        Q(settles_at__gte=start, settles_at__lt=end) | Q(returns_at__gte=start, returns_at__lt=end)
    )
    for transfer in transfers.order_by("settles_at", "id"):
        common = {
            "request_id": transfer.request_id,
            "transfer_id": transfer.transfer_id,
            "amount": transfer.amount,
            "currency": transfer.currency,
            "kind": transfer.kind,
        }
        if start <= transfer.settles_at < end and transfer.settles_at <= now:
            for execution in range(1, transfer.executions + 1):
                lines.append(
                    {
                        "line_id": f"{transfer.transfer_id}:out:{execution}",
                        "value_date": value_date.isoformat(),
                        "direction": "out",
                        "booked_at": transfer.settles_at.isoformat(),
                        **common,
                    }
                )
        returns_at = transfer.returns_at
        if returns_at is not None and start <= returns_at < end and returns_at <= now and transfer.executions:
            lines.append(
                {
                    "line_id": f"{transfer.transfer_id}:in",
                    "value_date": value_date.isoformat(),
                    "direction": "in",
                    "booked_at": returns_at.isoformat(),
                    **common,
                }
            )
    return BankAnswer(200, {"channel": channel, "date": value_date.isoformat(), "lines": lines})


def account_verify(*, account: dict[str, str]) -> BankAnswer:
    if account["number"][-4:] == Behaviour.NAME_MISMATCH:
        return BankAnswer(200, {"ok": False, "code": NAME_MISMATCH, "message": "Holder name does not match."})
    return BankAnswer(200, {"ok": True, "code": ""})


def invalid_answer(exc: InvalidRequest) -> BankAnswer:
    return BankAnswer(400, error_body(INVALID_REQUEST, str(exc), exc.fields))


# --- webhooks -----------------------------------------------------------------------------------


def event_body(event: SandboxEvent) -> bytes:
    """The exact bytes the bank signs and sends for one event (compact, keys sorted)."""
    transfer = event.transfer
    payload = {
        "id": event.event_id,
        "type": f"transfer.{event.status}",
        "created_at": event.occurred_at.isoformat(),
        "data": {
            "transfer_id": transfer.transfer_id,
            "request_id": transfer.request_id,
            "status": event.status,
            "code": event.code,
            "amount": transfer.amount,
            "currency": transfer.currency,
            "kind": transfer.kind,
            "occurred_at": event.occurred_at.isoformat(),
        },
    }
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


def webhook_secret_for(channel: str) -> str:
    # Embedded shortcut: the bank shares RefundGuard's channel table for the secret, so rotating
    # it in the admin rotates both ends; a bank run alone falls back to SANDBOX_WEBHOOK_SECRET.
    secret = Channel.objects.filter(code=channel).values_list("webhook_secret", flat=True).first()
    return secret or settings.SANDBOX_WEBHOOK_SECRET


def webhook_url_for(channel: str) -> str:
    return f"{settings.PUBLIC_BASE_URL.rstrip('/')}/webhooks/channels/{channel}/"


def _backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(2**attempts, MAX_BACKOFF_SECONDS))


def sandbox_bank_deliver_webhooks(*, limit: int = 200) -> int:
    """POST every due, undelivered event to its channel's webhook URL; returns how many were accepted.

    An event counts as delivered only on a 2xx answer; otherwise it is retried with exponential
    backoff (2 s … 10 min). Each delivery is claimed with a conditional UPDATE first, so two
    workers never send the same delivery at once; no transaction is held across the HTTP call.
    Channels in outage send nothing. Called by `sandbox_bank_deliver_webhooks_task` every 2 s.
    """
    now = timezone.now()
    down = list(SandboxOutage.objects.filter(is_enabled=True).values_list("channel", flat=True))
    due = (
        SandboxEvent.objects.filter(delivered_at__isnull=True, due_at__lte=now, next_attempt_at__lte=now)
        .exclude(transfer__channel__in=down)
        .order_by("due_at", "id")
        .values_list("pk", flat=True)[:limit]
    )
    delivered = 0
    secrets: dict[str, str] = {}
    for pk in list(due):
        claimed = SandboxEvent.objects.filter(pk=pk, delivered_at__isnull=True, next_attempt_at__lte=now).update(
            next_attempt_at=now + DELIVERY_LEASE
        )
        if not claimed:
            continue
        event = SandboxEvent.objects.select_related("transfer").get(pk=pk)
        channel = event.transfer.channel
        if channel not in secrets:
            secrets[channel] = webhook_secret_for(channel)
        if _deliver(event, secret=secrets[channel]):
            delivered += 1
    return delivered


def _deliver(event: SandboxEvent, *, secret: str) -> bool:
    body = event_body(event)
    timestamp = int(timezone.now().timestamp())
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: signature_header(secret=secret, timestamp=timestamp, body=body),
        "User-Agent": "RefundGuard-SandboxBank/1",
        "Connection": "close",  # one connection per delivery; do not hold the receiver's worker
    }
    http_status, error = None, ""
    try:
        response = requests.post(
            webhook_url_for(event.transfer.channel),
            data=body,
            headers=headers,
            timeout=float(settings.SANDBOX_BANK_WEBHOOK_TIMEOUT),
        )
        http_status = response.status_code
    except requests.RequestException as exc:
        error = type(exc).__name__
    attempts = event.attempts + 1
    now = timezone.now()
    if http_status is not None and 200 <= http_status < 300:
        SandboxEvent.objects.filter(pk=event.pk).update(
            attempts=attempts, delivered_at=now, last_http_status=http_status, last_error=""
        )
        return True
    logger.info("sandbox bank webhook %s#%s not accepted: %s", event.event_id, event.copy, http_status or error)
    SandboxEvent.objects.filter(pk=event.pk).update(
        attempts=attempts,
        next_attempt_at=now + _backoff(attempts),
        last_http_status=http_status,
        last_error=error or f"HTTP {http_status}",
    )
    return False
