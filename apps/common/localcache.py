"""A per-process memo in front of Django's shared cache, for values read on every request.

With Redis as the cache every `cache.get` is a network round trip plus a client object built by
Django's backend — a refund decision read seven such keys (configuration generations, the phrase
table version, slowly moving aggregates), about a fifth of its CPU time. Values that may be a
little stale are kept here per process for a few seconds:

- `get_or_set` answers from this process while its copy is younger than `local_seconds`, then
  asks the shared cache (and fills it from `default` on a miss);
- `forget` drops this process's copy (a writer in this process sees its own change at once;
  other processes see it within `local_seconds`: the bound callers accept and document);
- `clear` drops everything (tests, between tests).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from django.core.cache import cache

T = TypeVar("T")

_entries: dict[str, tuple[float, object]] = {}
_lock = threading.Lock()
# Keys expire on their own; the dict is emptied now and then so it stays small.
_MAX_ENTRIES = 10_000


def _memo(key: str, compute: Callable[[], T], local_seconds: float) -> T:
    now = time.monotonic()
    entry = _entries.get(key)
    if entry is not None and entry[0] > now:
        return entry[1]  # type: ignore[return-value]
    value = compute()
    with _lock:
        if len(_entries) >= _MAX_ENTRIES:
            _entries.clear()
        _entries[key] = (now + local_seconds, value)
    return value


def get_or_set(key: str, default: Callable[[], T], *, local_seconds: float, timeout: float | None) -> T:
    """The value under `key`: this process's copy if younger than `local_seconds`, else the shared
    cache's (set from `default()` with `timeout` when missing there)."""
    return _memo(key, lambda: cache.get_or_set(key, default, timeout), local_seconds)


def get_or_compute(key: str, default: Callable[[], T], *, local_seconds: float) -> T:
    """Like `get_or_set` for values cheaper to recompute than to fetch from the shared cache (a
    small table read in one query): kept in this process only."""
    return _memo(key, default, local_seconds)


def forget(key: str) -> None:
    _entries.pop(key, None)


def clear() -> None:
    _entries.clear()
