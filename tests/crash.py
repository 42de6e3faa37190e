"""Crash injection at the seams of a service: the process dies right before or right after a named
function runs, the first few times it is reached.

A crash is `Killed`, a BaseException: like kill -9 it is caught by no `except Exception` in our
code, and it unwinds every open `transaction.atomic()` (rolled back, as the database does for a
dead connection). What was committed before it stays.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from unittest import mock


class Killed(BaseException):
    """The worker process died here."""


@dataclass
class CrashPoint:
    """`target` (a dotted path, patched where the service looks it up) dies `when` ("before" or
    "after" the real call) its first `times` calls; `fired` counts the crashes so far. An "after"
    crash happens whether the real call returned or raised: the call is over, the process is gone."""

    target: str
    when: str
    times: int = 3
    fired: int = 0
    reached: list[str] = field(default_factory=list)

    def wrap(self, real: Callable) -> Callable:
        @functools.wraps(real)
        def wrapper(*args, **kwargs):
            self.reached.append(self.target)
            if self.when == "before" and self._fire():
                raise Killed(f"killed before {self.target}")
            try:
                return real(*args, **kwargs)
            finally:
                if self.when == "after" and self._fire():
                    raise Killed(f"killed after {self.target}")

        return wrapper

    def _fire(self) -> bool:
        if self.fired >= self.times:
            return False
        self.fired += 1
        return True


@contextmanager
def crash_at(target: str, *, when: str, times: int = 3) -> Iterator[CrashPoint]:
    assert when in ("before", "after")
    point = CrashPoint(target=target, when=when, times=times)
    module_path, name = target.rsplit(".", 1)
    module = __import__(module_path, fromlist=[name])
    with mock.patch.object(module, name, point.wrap(getattr(module, name))):
        yield point


# Seconds of bank and platform time between two beat ticks (the poll interval is 5 s), and how many
# ticks recovery may take before a test calls it stuck.
TICK = 6
MAX_TICKS = 40


def beat_until(poll_task, row, *, status: str, clock) -> int:
    """Beat ticks of `poll_task` (each maybe killed) until `row` reaches `status`; returns how many
    ran (MAX_TICKS + 1 if it never did)."""
    for tick in range(1, MAX_TICKS + 1):
        clock.advance(TICK)
        with suppress(Killed):
            poll_task.delay()
        row.refresh_from_db()
        if row.status == status:
            return tick
    return MAX_TICKS + 1
