"""The sandbox bank's HTTP API (JSON), mounted at /sandbox/bank/ when SANDBOX_BANK_ENABLED.

    POST transfers                 {"request_id", "amount", "currency", "kind", "account": {holder_name, bank, number}}
                                   201 new / 200 existing / 422 rejected {"status": "rejected", "code"} / 409 / 400
    GET  transfers/<request_id>    200 transfer / 404 {"error": {"code": "NOT_FOUND"}}
    POST accounts/verify           {"account": {...}} → 200 {"ok": bool, "code"}
    POST outage                    {"channel": code, "enabled": bool} → 200 {"channel", "enabled"}
    POST transfers/<request_id>/recall  200 {"request_id", "status": "recalled"|"refused", "code"} / 404
    GET  statements?date=YYYY-MM-DD  200 {"channel", "date", "lines": [{"line_id", "value_date",
                                   "direction": "out"|"in", "request_id", "transfer_id", "amount",
                                   "currency", "kind", "booked_at"}]} / 400 bad date

The caller names its channel in the `X-Sandbox-Channel` header (default "sandbox"); while that
channel is in outage every call answers 503. The POST views are async so that the bank's deliberate
slowness (0005, 0006) sleeps on the event loop instead of holding a worker thread: under the
single-process ASGI server of `make run` a blocking sleep would stall every other page. The query
(GET), which never sleeps and is called by every poll, is a plain sync view.
"""

from __future__ import annotations

import asyncio
import json

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from apps.gateways.sandbox import bank

CHANNEL_HEADER = "X-Sandbox-Channel"


def _enabled() -> None:
    if not settings.SANDBOX_BANK_ENABLED:
        raise Http404("The sandbox bank is disabled.")


def _json(request) -> object:
    try:
        return json.loads(request.body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bank.InvalidRequest("Body must be JSON.") from exc


def _respond(answer: bank.BankAnswer) -> JsonResponse:
    return JsonResponse(answer.body, status=answer.http_status, json_dumps_params={"ensure_ascii": False})


def _submit(request) -> bank.BankAnswer:
    try:
        channel = bank.channel_from(request.headers.get(CHANNEL_HEADER))
        if bank.in_outage(channel):
            return bank.outage_answer()
        data = bank.parse_transfer(_json(request))
    except bank.InvalidRequest as exc:
        return bank.invalid_answer(exc)
    return bank.transfer_submit(channel=channel, data=data)


def _query(request, request_id: str) -> bank.BankAnswer:
    try:
        channel = bank.channel_from(request.headers.get(CHANNEL_HEADER))
    except bank.InvalidRequest as exc:
        return bank.invalid_answer(exc)
    if bank.in_outage(channel):
        return bank.outage_answer()
    return bank.transfer_query(request_id=request_id)


def _statement(request) -> bank.BankAnswer:
    try:
        channel = bank.channel_from(request.headers.get(CHANNEL_HEADER))
        if bank.in_outage(channel):
            return bank.outage_answer()
        value_date = bank.parse_statement_date(request.GET.get("date"))
    except bank.InvalidRequest as exc:
        return bank.invalid_answer(exc)
    return bank.statement(channel=channel, value_date=value_date)


def _verify(request) -> bank.BankAnswer:
    try:
        channel = bank.channel_from(request.headers.get(CHANNEL_HEADER))
        if bank.in_outage(channel):
            return bank.outage_answer()
        account = bank.parse_verify(_json(request))
    except bank.InvalidRequest as exc:
        return bank.invalid_answer(exc)
    return bank.account_verify(account=account)


def _outage(request) -> bank.BankAnswer:
    try:
        data = _json(request)
        if not isinstance(data, dict) or not isinstance(data.get("enabled"), bool):
            raise bank.InvalidRequest('Expected {"channel": code, "enabled": bool}.', {"enabled": "boolean"})
        channel = bank.channel_from(data.get("channel"))
    except bank.InvalidRequest as exc:
        return bank.invalid_answer(exc)
    outage = bank.outage_set(channel=channel, enabled=data["enabled"])
    return bank.BankAnswer(200, {"channel": outage.channel, "enabled": outage.is_enabled})


@csrf_exempt
@require_POST
async def transfers(request):
    _enabled()
    answer = await sync_to_async(_submit)(request)
    if answer.sleep_seconds:
        # The client has given up by now; 0005 has already executed, 0006 has not.
        await asyncio.sleep(answer.sleep_seconds)
    return _respond(answer)


@require_GET
def transfer_detail(request, request_id: str):
    # Sync on purpose: it never sleeps, and under WSGI (how the bank is served in production and in
    # the benchmarks) an async view costs an event loop and two thread hops per call.
    _enabled()
    return _respond(_query(request, request_id))


@csrf_exempt
@require_POST
async def accounts_verify(request):
    _enabled()
    return _respond(await sync_to_async(_verify)(request))


@csrf_exempt
@require_POST
async def outage(request):
    _enabled()
    return _respond(await sync_to_async(_outage)(request))


@require_GET
def statements(request):
    # Sync like the query: it never sleeps.
    _enabled()
    return _respond(_statement(request))


def _recall(request, request_id: str) -> bank.BankAnswer:
    try:
        channel = bank.channel_from(request.headers.get(CHANNEL_HEADER))
    except bank.InvalidRequest as exc:
        return bank.invalid_answer(exc)
    if bank.in_outage(channel):
        return bank.outage_answer()
    return bank.transfer_recall(request_id=request_id)


@csrf_exempt
@require_POST
def transfer_recall(request, request_id: str):
    # Sync: it never sleeps.
    _enabled()
    return _respond(_recall(request, request_id))
