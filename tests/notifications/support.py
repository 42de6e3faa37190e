"""Helpers for the notifications tests: a fake Twilio API for `responses`, request form parsing,
signatures as Twilio computes them."""

from __future__ import annotations

import itertools
import json
from email.utils import format_datetime
from urllib.parse import parse_qs

import requests
import responses
from django.utils import timezone
from twilio.request_validator import RequestValidator

from apps.notifications import services
from apps.notifications.models import Notification

ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "test-auth-token-0123456789abcdef"
FROM_NUMBER = "+15005550006"
PUBLIC_BASE_URL = "https://rg.example.com"
STATUS_PATH = "/webhooks/twilio/status/"
STATUS_URL = PUBLIC_BASE_URL + STATUS_PATH

TWILIO_API = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}"
MESSAGES_URL = f"{TWILIO_API}/Messages.json"
CALLS_URL = f"{TWILIO_API}/Calls.json"

_sids = itertools.count(1)


def new_sid(prefix: str) -> str:
    return f"{prefix}{next(_sids):032x}"


def form(call) -> dict[str, list[str]]:
    """The form fields of a recorded request to Twilio."""
    body = call.request.body
    if isinstance(body, bytes):
        body = body.decode()
    return parse_qs(body or "", keep_blank_values=True)


def posts_to(mocked: responses.RequestsMock, url: str) -> list:
    return [c for c in mocked.calls if c.request.method == "POST" and c.request.url.split("?")[0] == url]


def message_json(sid: str, *, to: str = "+8613800000000", body: str = "", status: str = "queued") -> dict:
    return {
        "sid": sid,
        "account_sid": ACCOUNT_SID,
        "to": to,
        "from": FROM_NUMBER,
        "body": body,
        "status": status,
        "num_segments": "1",
        "direction": "outbound-api",
        "date_created": format_datetime(timezone.now(), usegmt=True),
        "date_updated": format_datetime(timezone.now(), usegmt=True),
        "date_sent": None,
        "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json",
    }


def call_json(sid: str, *, to: str = "+8613800000000") -> dict:
    return {
        "sid": sid,
        "account_sid": ACCOUNT_SID,
        "to": to,
        "from": FROM_NUMBER,
        "status": "queued",
        "direction": "outbound-api",
        "date_created": format_datetime(timezone.now(), usegmt=True),
        "date_updated": format_datetime(timezone.now(), usegmt=True),
        "start_time": None,
        "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{sid}.json",
    }


def twilio_created(kind: str):
    """A `responses` callback answering 201 with a fresh sid, like Twilio does for a create."""

    def callback(request):
        if kind == "call":
            return 201, {}, json.dumps(call_json(new_sid("CA")))
        params = parse_qs(request.body if isinstance(request.body, str) else request.body.decode())
        return 201, {}, json.dumps(message_json(new_sid("SM"), body=params.get("Body", [""])[0]))

    return callback


def twilio_error(status: int, code: int, message: str) -> dict:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


CONTEXT = {"amount": "CNY 99.00", "eta": "2024-01-05", "party": "bank", "bank": "ICBC", "support_phone": "400-800-1234"}


def write_message(recipient, *, event_key: str = "refund:1:delayed", priority: str = "high") -> int:
    """One cause's messages through `services.notify` (a refund delay), in the caller's transaction."""
    return services.notify(
        recipient=recipient,
        template_key="refund_delayed",
        priority=priority,
        event_key=event_key,
        context=CONTEXT,
        reference="o-1",
        link="https://rg.example.com/r/x/",
    )


def by_channel(event_key: str) -> dict[str, Notification]:
    rows = list(Notification.objects.filter(event_key=event_key))
    channels = [n.channel for n in rows]
    assert len(channels) == len(set(channels)), f"duplicate channels for {event_key}: {channels}"
    return {n.channel: n for n in rows}


def sign(params: dict, url: str = STATUS_URL, token: str = AUTH_TOKEN) -> str:
    return RequestValidator(token).compute_signature(url, params)


class WorkerKilled(BaseException):
    """Stands for a worker process dying mid-send (kill -9): nothing in our code catches it."""


class FakeTwilio:
    """Twilio's Messages and Calls endpoints as `responses` callbacks: what Twilio accepted is kept in
    `messages`/`calls`; the list query returns the stored messages. `kill` makes the next create die
    before ("before") or after ("after") Twilio accepted it, or time out ("timeout-before",
    "timeout-after")."""

    def __init__(self) -> None:
        self.messages: list[dict] = []
        self.calls: list[dict] = []
        self.kill = ""

    def install(self, mocked: responses.RequestsMock) -> None:
        mocked.add_callback(responses.POST, MESSAGES_URL, callback=self._create_message)
        mocked.add_callback(responses.POST, CALLS_URL, callback=self._create_call)
        mocked.add_callback(responses.GET, MESSAGES_URL, callback=self._list_messages)
        mocked.add_callback(responses.GET, CALLS_URL, callback=self._list_calls)

    def _maybe_kill(self, stage: str) -> None:
        if self.kill == stage:
            self.kill = ""
            raise WorkerKilled(stage)
        if self.kill == f"timeout-{stage}":
            self.kill = ""
            raise requests.exceptions.ReadTimeout("read timed out")

    def _create_message(self, request):
        self._maybe_kill("before")
        params = parse_qs(request.body if isinstance(request.body, str) else request.body.decode())
        message = message_json(new_sid("SM"), to=params["To"][0], body=params["Body"][0])
        self.messages.append(message)
        self._maybe_kill("after")
        return 201, {}, json.dumps(message)

    def _create_call(self, request):
        self._maybe_kill("before")
        params = parse_qs(request.body if isinstance(request.body, str) else request.body.decode())
        call = call_json(new_sid("CA"), to=params["To"][0])
        self.calls.append(call)
        self._maybe_kill("after")
        return 201, {}, json.dumps(call)

    def _list_messages(self, request):
        return 200, {}, json.dumps(message_page(self.messages))

    def _list_calls(self, request):
        return 200, {}, json.dumps(list_page("calls", list(reversed(self.calls))))  # newest first, as Twilio


def list_page(key: str, items: list[dict]) -> dict:
    """One page of a Twilio list resource (`messages`, `calls`), the last one."""
    uri = f"/2010-04-01/Accounts/x/{key.capitalize()}.json?PageSize=50&Page=0"
    return {
        key: items,
        "first_page_uri": uri,
        "next_page_uri": None,
        "previous_page_uri": None,
        "page": 0,
        "page_size": 50,
        "start": 0,
        "end": max(len(items) - 1, 0),
        "uri": uri,
    }


def message_page(messages: list[dict]) -> dict:
    """One page of Twilio's message list, the last one."""
    return list_page("messages", messages)
