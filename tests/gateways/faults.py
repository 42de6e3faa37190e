"""A seeded fault simulator for channels: one seed and a scenario number decide every fault, so a
failing scenario replays exactly.

Two parts:
- `FaultPlan`: the decisions. Up front (which movements, which bank behaviour by account suffix,
  when the primary channel is down, how far the bank's clock is off, how often answers are slow,
  lost or never reach the bank) and per call (what happens to the n-th call of kind k for
  movement i). Per-call decisions come from their own `random.Random` keyed by the movement's
  index and the call's number, never by database ids or by call order across movements, so a
  scenario replays the same whatever ids the database hands out.
- `FaultyBank`: the in-process sandbox bank (tests/gateways/inproc_bank.py) with the plan applied
  at the HTTP transport, between our adapter and the bank and between the bank's webhook sender
  and our receiver (`/webhooks/channels/<code>/`, through Django's full request handling).

Faults at the transport: the bank acts and its answer is lost (execute-then-timeout, k times per
movement), the call never reaches the bank (timeout or refused connection), a slow answer (the
clock moves on during the call, within the timeout), webhooks duplicated, held back and delivered
after later ones (reordering), dropped (the bank retries), and signed with a skewed clock (beyond
the receiver's tolerance they are refused, and only polls can settle the movement). Faults at the
bank come from its own behaviours (suffixes 0001–0009: slow settlement, frozen, late return after
success, name mismatch, execute-then-timeout without dedupe, drop-then-timeout, limit, duplicate
and reversed webhooks, risk hold) and its outage switch.

Test-only on purpose: every fault here is of the network between two parties, which is where
tests intercept (STYLE.md §7); the bank's own behaviours stay as DESIGN.md documents them, usable
by `make run` demos, and production code gains no test mode.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import requests
from django.test import Client

from apps.gateways.models import Channel
from apps.gateways.signing import SIGNATURE_HEADER, signature_header
from tests.gateways.inproc_bank import InprocBank, request_id_of

SUFFIXES = ("0000", "0000", "0001", "0002", "0003", "0004", "0005", "0006", "0007", "0008", "0009")
KINDS = ("refund", "refund", "payout", "withdrawal")
SKEWS = (0, 0, 0, -40, 25, 290, -299, 301, -900)  # seconds the bank's clock is off; tolerance is 300


@dataclass(frozen=True)
class MovementPlan:
    kind: str  # refund | payout | withdrawal
    suffix: str  # the destination account's last four digits: the bank's behaviour
    amount: int
    lost_answers: int  # 0–3: its submits and queries the bank acts on whose answer never reaches us
    submit_task_lost: bool  # the broker loses its after-commit submit task; the poller must find it
    at_tick: int  # when it is requested (0: before the first tick)


@dataclass
class FaultPlan:
    """Everything a scenario does, decided from (seed, scenario)."""

    seed: int
    scenario: int
    movements: list[MovementPlan] = field(init=False)
    outage: tuple[int, int] | None = field(init=False)  # ticks [start, end) the primary is down
    skew: int = field(init=False)
    tick_seconds: list[int] = field(init=False)
    p_unreached: float = field(init=False)
    p_refused: float = field(init=False)
    p_slow: float = field(init=False)
    p_duplicate: float = field(init=False)
    p_hold: float = field(init=False)
    p_drop: float = field(init=False)

    def __post_init__(self) -> None:
        rng = self.rng("plan")
        ticks = rng.randint(8, 16)
        self.tick_seconds = [rng.choice((1, 2, 3, 5, 8, 13, 20)) for _ in range(ticks)]
        self.movements = [
            MovementPlan(
                kind=rng.choice(KINDS),
                suffix=rng.choice(SUFFIXES),
                amount=rng.choice((100, 2500, 5000, 9999)),
                lost_answers=rng.randint(0, 3),
                submit_task_lost=rng.random() < 0.2,
                at_tick=0 if n == 0 else rng.choice((0, 0, rng.randint(1, ticks - 1))),
            )
            for n in range(rng.randint(1, 4))
        ]
        start = rng.randint(1, ticks - 1)
        self.outage = (start, start + rng.randint(1, 4)) if rng.random() < 0.3 else None
        self.skew = rng.choice(SKEWS)
        self.p_unreached = rng.choice((0.0, 0.1, 0.25))
        self.p_refused = rng.choice((0.0, 0.0, 0.1))
        self.p_slow = rng.choice((0.0, 0.2, 0.5))
        self.p_duplicate = rng.choice((0.0, 0.2, 0.5))
        self.p_hold = rng.choice((0.0, 0.2, 0.4))
        self.p_drop = rng.choice((0.0, 0.0, 0.2))

    def rng(self, *keys: object) -> random.Random:
        return random.Random(":".join(map(str, (self.seed, self.scenario, *keys))))

    def call(self, movement: int, action: str, n: int, lost_so_far: int) -> tuple[str, float]:
        """What happens to the n-th `action` call for `movement`: ("lost" | "unreached" | "refused" |
        "slow" | "answer", seconds the call takes)."""
        transfer_call = action in ("submit", "query")
        if transfer_call and movement >= 0 and lost_so_far < self.movements[movement].lost_answers:
            return "lost", 0.0
        rng = self.rng("call", movement, action, n)
        roll = rng.random()
        if roll < self.p_unreached:
            return "unreached", 0.0
        if roll < self.p_unreached + self.p_refused:
            return "refused", 0.0
        if rng.random() < self.p_slow:
            return "slow", rng.choice((0.2, 1.0, 2.5, 4.0))  # within the channel's 5 s timeout
        return "answer", 0.0

    def webhook(self, movement: int, n: int) -> tuple[str, int]:
        """What happens to the n-th webhook delivery for `movement`: ("deliver" | "duplicate" |
        "hold" | "drop", ticks a held one waits)."""
        rng = self.rng("webhook", movement, n)
        roll = rng.random()
        if roll < self.p_drop:
            return "drop", 0
        if roll < self.p_drop + self.p_hold:
            return "hold", rng.randint(1, 4)
        if rng.random() < self.p_duplicate:
            return "duplicate", rng.randint(0, 3)
        return "deliver", 0

    def describe(self) -> str:
        movements = ", ".join(
            f"{m.kind}/{m.suffix}/{m.amount}/lost{m.lost_answers}{'/task lost' * m.submit_task_lost}@{m.at_tick}"
            for m in self.movements
        )
        return (
            f"movements [{movements}] outage {self.outage} skew {self.skew}s ticks {self.tick_seconds} "
            f"p(unreached {self.p_unreached}, refused {self.p_refused}, slow {self.p_slow}, "
            f"dup {self.p_duplicate}, hold {self.p_hold}, drop {self.p_drop})"
        )


@dataclass
class _Held:
    path: str
    headers: dict[str, str]
    body: bytes
    release_at: int


class FaultyBank(InprocBank):
    """The in-process bank with a `FaultPlan` applied at the transport.

    `movement_of` maps a request id's reference ("refund:12") or an account number to the plan's
    movement index (the scenario registers each movement as it creates it); a call for anything
    else gets the plan's per-call faults under index -1. `trace` records every decision made, in
    order, without database ids: two runs of one scenario must produce the same trace.
    """

    def __init__(self, plan: FaultPlan, clock) -> None:
        self.plan = plan
        self.clock = clock
        self.tick = 0
        self.movement_of: dict[str, int] = {}
        self.trace: list[str] = []
        self._calls: dict[tuple[int, str], int] = defaultdict(int)
        self._lost: dict[int, int] = defaultdict(int)
        self._webhooks: dict[int, int] = defaultdict(int)
        self._held: list[_Held] = []
        self._client = Client()

    # --- calls from our adapter ------------------------------------------------------------------

    def _movement(self, key: str) -> int:
        return self.movement_of.get(":".join(key.split(":")[:2]), self.movement_of.get(key, -1))

    def _faulty(self, movement: int, action: str, act):
        n = self._calls[(movement, action)]
        self._calls[(movement, action)] += 1
        fault, seconds = self.plan.call(movement, action, n, self._lost[movement])
        self.trace.append(f"t{self.tick} m{movement} {action}#{n} {fault}")
        if fault == "unreached":
            return requests.ConnectTimeout("no answer: the request never reached the bank")
        if fault == "refused":
            return requests.ConnectionError("connection refused")
        if fault == "slow":
            self.clock.advance(seconds)
        result = act()
        if fault == "lost":
            self._lost[movement] += 1
            return requests.ReadTimeout("the bank acted, its answer was lost")
        return result

    def submit(self, request):
        data = json.loads(request.body)
        movement = self._movement(data.get("request_id", ""))
        return self._faulty(movement, "submit", lambda: super(FaultyBank, self).submit(request))

    def query(self, request):
        movement = self._movement(request_id_of(request))
        return self._faulty(movement, "query", lambda: super(FaultyBank, self).query(request))

    def verify(self, request):
        number = json.loads(request.body).get("account", {}).get("number", "")
        return self._faulty(self._movement(number), "verify", lambda: super(FaultyBank, self).verify(request))

    def recall(self, request):
        movement = self._movement(request_id_of(request, "/recall"))
        return self._faulty(movement, "recall", lambda: super(FaultyBank, self).recall(request))

    # --- webhooks from the bank ------------------------------------------------------------------

    def webhook(self, request):
        path = urlsplit(request.url).path
        body = request.body if isinstance(request.body, bytes) else request.body.encode()
        data = json.loads(body)["data"]
        movement = self._movement(data["request_id"])
        n = self._webhooks[movement]
        self._webhooks[movement] += 1
        fault, wait = self.plan.webhook(movement, n)
        self.trace.append(f"t{self.tick} m{movement} webhook#{n} {data['status']} {fault}")
        headers = self._skewed(path, dict(request.headers), body)
        if fault == "drop":
            return 503, {}, json.dumps({"error": "receiver unreachable"})  # the bank delivers it again
        if fault == "hold":
            # Accepted by a queue in between and handed on later, after newer ones: reordering.
            self._held.append(_Held(path, headers, body, self.tick + wait))
            return 200, {"Content-Type": "application/json"}, json.dumps({"status": "queued"})
        status, content = self._post(path, headers, body)
        if fault == "duplicate":
            self._held.append(_Held(path, headers, body, self.tick + wait))
        return status, {"Content-Type": "application/json"}, content

    def _skewed(self, path: str, headers: dict[str, str], body: bytes) -> dict[str, str]:
        """The bank signs with its own clock, `plan.skew` seconds off ours."""
        if not self.plan.skew:
            return headers
        code = path.rstrip("/").rsplit("/", 1)[1]
        secret = Channel.objects.get(code=code).webhook_secret
        timestamp = int(self.clock.now().timestamp()) + self.plan.skew
        return {**headers, SIGNATURE_HEADER: signature_header(secret=secret, timestamp=timestamp, body=body)}

    def _post(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        response = self._client.post(
            path, data=body, content_type="application/json", headers={SIGNATURE_HEADER: headers[SIGNATURE_HEADER]}
        )
        return response.status_code, response.content

    def release_held(self) -> int:
        """Hand on the held deliveries that are due, newest first (so older news comes last)."""
        due = [held for held in self._held if held.release_at <= self.tick]
        self._held = [held for held in self._held if held.release_at > self.tick]
        for held in reversed(due):
            status, _ = self._post(held.path, held.headers, held.body)
            self.trace.append(f"t{self.tick} released {status}")
        return len(due)

    def release_all(self) -> int:
        for held in self._held:
            held.release_at = self.tick
        return self.release_held()
