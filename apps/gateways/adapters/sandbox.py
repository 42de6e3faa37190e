"""Adapter for the sandbox bank, over real HTTP (`requests`), exactly as for a real bank.

Error mapping, chosen so that nothing is ever paid twice:
- no answer in time (requests Timeout), 502/504, or a 5xx / unreadable answer to a *submit*:
  `ChannelTimeout` — the bank may have executed it; the caller queries before any retry;
- refused connection, 503 (outage), any other 5xx: `ChannelError` — the bank was not reached;
- 400/409 (malformed request, request id reused for a different instruction): `ChannelError` with
  the non-retryable `request_invalid` reason — our bug, a person looks;
- 422 (the bank rejected the instruction without executing it): a FAILED result with its reason.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import date
from typing import Any
from urllib.parse import quote

import requests
from django.conf import settings
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext_lazy as _

from apps.common.parsers import JSONRefused, JSONTooLarge, strict_json_loads
from apps.gateways import reasons
from apps.gateways.base import (
    Account,
    ChannelAdapter,
    ChannelError,
    ChannelResult,
    ChannelTimeout,
    InboundEvent,
    Reason,
    RecallResult,
    StatementDirection,
    StatementLine,
    TransferRequest,
    TransferStatus,
    VerifyResult,
    WebhookRejected,
)
from apps.gateways.signing import SIGNATURE_HEADER, verify_signature

CHANNEL_HEADER = "X-Sandbox-Channel"

# The sandbox bank's raw codes → what they mean for us. Normalised codes map to themselves so that
# `reason_for("timeout")` works for outcomes the adapter itself observes.
RAW_CODES: dict[str, Reason] = {
    "ACCOUNT_FROZEN": reasons.ACCOUNT_FROZEN,
    "NAME_MISMATCH": reasons.HOLDER_NAME_MISMATCH,
    "ACCOUNT_CLOSED": reasons.ACCOUNT_CLOSED,
    "LIMIT_REACHED": reasons.CHANNEL_LIMIT,
    "RISK_REVIEW": reasons.RISK_HOLD,
    "GATEWAY_TIMEOUT": reasons.TIMEOUT,
    "SERVICE_UNAVAILABLE": reasons.OUTAGE,
    "INVALID_REQUEST": reasons.REQUEST_INVALID,
    "REQUEST_ID_CONFLICT": reasons.REQUEST_INVALID,
    **reasons.REASONS,
}

STATUSES: dict[str, TransferStatus] = {
    "processing": TransferStatus.PROCESSING,
    "succeeded": TransferStatus.SUCCEEDED,
    "failed": TransferStatus.FAILED,
    "returned": TransferStatus.RETURNED,
    "held": TransferStatus.HELD,
}
# Statuses whose meaning needs a reason (why it failed, why the money came back, why it is held).
_EXPLAINED = {TransferStatus.FAILED, TransferStatus.RETURNED, TransferStatus.HELD}


class _BadAnswer(ValueError):
    """The bank's answer did not have the documented shape."""


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(keys) != len(set(keys)):
        raise _BadAnswer("duplicate JSON key")
    return dict(pairs)


def _header(headers: Any, name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


_local = threading.local()


def _forget_sessions() -> None:
    # A forked child (Celery prefork, gunicorn) must not share its parent's sockets.
    global _local
    _local = threading.local()


os.register_at_fork(after_in_child=_forget_sessions)


def _session() -> requests.Session:
    """This thread's HTTP session: building one per call cost a new pool and TCP connection each
    time. Per thread because a `requests.Session` is not documented as thread-safe."""
    session = getattr(_local, "session", None)
    if session is None:
        session = _local.session = requests.Session()
    return session


class SandboxAdapter(ChannelAdapter):
    @property
    def base_url(self) -> str:
        base = self.channel.base_url or settings.SANDBOX_BANK_URL or f"{settings.PUBLIC_BASE_URL}/sandbox/bank"
        return base.rstrip("/")

    # --- the interface ------------------------------------------------------------------------

    def reason_for(self, raw_code: str) -> Reason:
        return RAW_CODES.get(raw_code, reasons.UNKNOWN)

    def verify_account(self, account: Account) -> VerifyResult:
        response = self._call("POST", "accounts/verify", {"account": self._account(account)})
        if response.status_code != 200:
            raise self._error(response)
        try:
            body = self._body(response)
            ok, code = body["ok"], body.get("code") or ""
            if not isinstance(ok, bool) or not isinstance(code, str):
                raise _BadAnswer("ok/code")
        except (ValueError, KeyError) as exc:
            raise ChannelError("Unreadable verification answer.", http_status=response.status_code) from exc
        reason = None if ok else self.reason_for(code)
        return VerifyResult(ok=ok, reason=reason, raw_code=code, http_status=response.status_code)

    def submit(self, request: TransferRequest) -> ChannelResult:
        payload = {
            "request_id": request.request_id,
            "amount": request.amount,
            "currency": request.currency,
            "kind": request.kind,
            "memo": request.memo,
            "account": self._account(request.account),
        }
        response = self._call("POST", "transfers", payload)
        status = response.status_code
        if status in (200, 201):
            try:
                return self._result(self._body(response), request_id=request.request_id, http_status=status)
            except (ValueError, KeyError, TypeError) as exc:
                raise ChannelTimeout(
                    "Unreadable answer to a submit: outcome unknown.", reason=reasons.TIMEOUT, http_status=status
                ) from exc
        if status == 422:
            code = self._code(response)
            return ChannelResult(
                status=TransferStatus.FAILED,
                request_id=request.request_id,
                reason=self.reason_for(code),
                raw_code=code,
                amount=request.amount,
                currency=request.currency,
                occurred_at=timezone.now(),
                http_status=status,
            )
        raise self._error(response, unknown_outcome=True)

    def query(self, request_id: str) -> ChannelResult:
        response = self._call("GET", f"transfers/{quote(request_id, safe='')}")
        if response.status_code == 404:
            return ChannelResult(
                status=TransferStatus.NOT_FOUND,
                request_id=request_id,
                raw_code=self._code(response) or "NOT_FOUND",
                http_status=404,
            )
        if response.status_code != 200:
            raise self._error(response)
        try:
            return self._result(self._body(response), request_id=request_id, http_status=200)
        except (ValueError, KeyError, TypeError) as exc:
            raise ChannelError("Unreadable answer to a query.", http_status=200) from exc

    def statement(self, value_date: date) -> list[StatementLine]:
        response = self._call("GET", f"statements?date={value_date.isoformat()}")
        if response.status_code != 200:
            raise self._error(response)
        try:
            body = self._body(response)
            if body.get("date") != value_date.isoformat() or not isinstance(body.get("lines"), list):
                raise _BadAnswer("statement shape")
            return [self._statement_line(raw) for raw in body["lines"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise ChannelError("Unreadable statement.", http_status=200) from exc

    def recall(self, request_id: str) -> RecallResult:
        response = self._call("POST", f"transfers/{quote(request_id, safe='')}/recall", {})
        if response.status_code == 404:
            return RecallResult(ok=False, request_id=request_id, raw_code="NOT_FOUND", http_status=404)
        if response.status_code != 200:
            raise self._error(response)
        try:
            body = self._body(response)
            status, code = body["status"], body.get("code") or ""
            if status not in ("recalled", "refused") or not isinstance(code, str):
                raise _BadAnswer("recall status")
        except (ValueError, KeyError) as exc:
            raise ChannelError("Unreadable recall answer.", http_status=200) from exc
        return RecallResult(ok=status == "recalled", request_id=request_id, raw_code=code, http_status=200)

    def parse_webhook(self, *, headers: dict[str, str], body: bytes) -> list[InboundEvent]:
        verify_signature(
            header=_header(headers, SIGNATURE_HEADER),
            body=body,
            secret=self.channel.webhook_secret,
            now=timezone.now().timestamp(),
            tolerance=settings.CHANNEL_WEBHOOK_TOLERANCE_SECONDS,
        )
        try:
            # Bounded in size and depth before parsing; floats as the bank sends them (never amounts).
            event = strict_json_loads(body, parse_float=float)
        except JSONTooLarge as exc:
            raise WebhookRejected(str(exc), code="payload_too_large") from exc
        except JSONRefused as exc:
            raise WebhookRejected(f"Webhook body is not a valid event: {exc}", code="payload_invalid") from exc
        try:
            if not isinstance(event, dict) or not isinstance(event.get("data"), dict):
                raise _BadAnswer("event shape")
            event_id = event["id"]
            if not isinstance(event_id, str) or not 0 < len(event_id) <= 128:
                raise _BadAnswer("event id")
            data = event["data"]
            if not isinstance(data.get("request_id"), str) or not data["request_id"]:
                raise _BadAnswer("request id")
            result = self._result(data, request_id=data["request_id"], http_status=None)
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            raise WebhookRejected(_("Webhook body is not a valid event."), code="payload_invalid") from exc
        return [InboundEvent(event_id=event_id, result=result, raw=event)]

    # --- HTTP ---------------------------------------------------------------------------------

    def _call(self, method: str, path: str, payload: dict | None = None):
        headers = {CHANNEL_HEADER: self.channel.code, "Accept": "application/json"}
        if settings.CHANNEL_HTTP_KEEPALIVE:
            send = _session().request
        else:
            # One connection per call, and say so: a server that keeps the socket open would
            # otherwise hold a worker, and its database connection, for it.
            send = requests.request
            headers["Connection"] = "close"
        try:
            return send(
                method, f"{self.base_url}/{path}", json=payload, headers=headers, timeout=self.channel.timeout_seconds
            )
        except requests.Timeout as exc:
            # Includes connect timeouts: whether or not the bank saw it, only a query can tell.
            raise ChannelTimeout(
                f"No answer from {self.channel.code} within {self.channel.timeout_seconds}s.",
                reason=reasons.TIMEOUT,
                raw_code="timeout",
            ) from exc
        except requests.RequestException as exc:
            raise ChannelError(
                f"Could not reach {self.channel.code}: {type(exc).__name__}.",
                reason=reasons.OUTAGE,
                raw_code="connection_error",
            ) from exc

    def _error(self, response, *, unknown_outcome: bool = False) -> ChannelError:
        status = response.status_code
        code = self._code(response) or f"http_{status}"
        if status in (502, 504) or (unknown_outcome and status >= 500 and status != 503):
            return ChannelTimeout(
                f"{self.channel.code} answered {status}: outcome unknown.",
                reason=reasons.TIMEOUT,
                raw_code=code,
                http_status=status,
            )
        if status >= 500:
            return ChannelError(
                f"{self.channel.code} unavailable ({status}).", reason=reasons.OUTAGE, raw_code=code, http_status=status
            )
        return ChannelError(
            f"{self.channel.code} refused the request ({status} {code}).",
            reason=reasons.REQUEST_INVALID,
            raw_code=code,
            http_status=status,
        )

    @staticmethod
    def _body(response) -> dict:
        try:
            body = json.loads(response.content, object_pairs_hook=_no_duplicate_keys)
        except (ValueError, UnicodeDecodeError) as exc:
            raise _BadAnswer("not JSON") from exc
        if not isinstance(body, dict):
            raise _BadAnswer("not an object")
        return body

    @classmethod
    def _code(cls, response) -> str:
        try:
            body = cls._body(response)
        except _BadAnswer:
            return ""
        code = body.get("code")
        if code is None and isinstance(body.get("error"), dict):
            code = body["error"].get("code")
        return code if isinstance(code, str) else ""

    @staticmethod
    def _account(account: Account) -> dict[str, str]:
        return {"holder_name": account.holder_name, "bank": account.bank, "number": account.number}

    @staticmethod
    def _statement_line(raw: dict) -> StatementLine:
        if not isinstance(raw, dict):
            raise _BadAnswer("line")
        line_id, request_id, currency = raw["line_id"], raw["request_id"], raw["currency"]
        amount, transfer_id = raw["amount"], raw.get("transfer_id") or ""
        if not all(isinstance(value, str) for value in (line_id, request_id, currency, transfer_id)):
            raise _BadAnswer("line text")
        if type(amount) is not int or amount <= 0:
            raise _BadAnswer("line amount")
        parts = request_id.split(":")
        return StatementLine(
            line_id=line_id,
            value_date=date.fromisoformat(raw["value_date"]),
            request_id=request_id,
            reference=":".join(parts[:2]) if len(parts) >= 2 else request_id,
            amount=amount,
            currency=currency,
            direction=StatementDirection(raw["direction"]),
            channel_reference=transfer_id,
        )

    def _result(self, data: dict, *, request_id: str, http_status: int | None) -> ChannelResult:
        status = STATUSES.get(data["status"])
        if status is None:
            raise _BadAnswer(f"unknown status {data['status']!r}")
        if data["request_id"] != request_id:
            raise _BadAnswer("answer for another request id")
        amount = data.get("amount")
        if amount is not None and type(amount) is not int:
            raise _BadAnswer("amount")
        code = data.get("code") or ""
        if not isinstance(code, str):
            raise _BadAnswer("code")
        occurred = data.get("occurred_at") or data.get("updated_at")
        return ChannelResult(
            status=status,
            request_id=request_id,
            channel_reference=str(data.get("transfer_id") or ""),
            reason=self.reason_for(code) if status in _EXPLAINED else None,
            raw_code=code,
            amount=amount,
            currency=str(data.get("currency") or ""),
            occurred_at=parse_datetime(occurred) if isinstance(occurred, str) else None,
            http_status=http_status,
        )
