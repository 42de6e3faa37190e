"""Per-process caches of slowly changing configuration, invalidated by *generation* numbers.

Data read on (nearly) every request but written rarely — risk rules, allow/block lists, the active
model, baselines, API keys — is kept here per process for `TTL` seconds, under a generation number
per kind of data (`name`) kept in Django's cache (shared by every process when the cache is Redis):

- `changed(name)` after a write bumps the generation once the transaction commits (bumped earlier,
  another process could reload the old rows under the new generation and keep them); the writing
  process reloads on its next read, every other process within `GENERATION_CHECK_SECONDS` (each
  process reads the generations from the shared cache at most that often: apps.common.localcache);
- until then the writing thread itself bypasses the cache for that kind of data while it is still
  inside the transaction (it must see its own uncommitted change, and must not keep it in a
  process-wide cache if the transaction rolls back);
- `cache.clear()` (tests, a flushed Redis) drops the generation keys: a fresh random generation
  names entries no process has cached;
- `TTL` bounds staleness for writes that send no signal (QuerySet.update, raw SQL) and, with the
  per-process LocMem cache, for writes made by another process.

Cached values are shared by every request of the process: cache plain values (tuples, dicts of
field values, frozen dataclasses), never model instances a caller might change.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Hashable
from typing import TypeVar

from django.core.cache import cache
from django.db import connection, transaction

from apps.common import localcache

T = TypeVar("T")

TTL = 30.0
# How often a process asks the shared cache whether a kind of data changed: an edit reaches every
# process within this, and a read costs no cache round trip in between.
GENERATION_CHECK_SECONDS = 1.0

_entries: dict[tuple, tuple[float, object]] = {}
_pending = threading.local()  # names changed inside the current thread's open transaction


def _generation_key(name: str) -> str:
    return f"{name}:generation"


def _fresh_generation() -> int:
    # Random, never a clock: under a frozen test clock (or after the key is evicted) a repeated
    # number could name entries cached before a change.
    return secrets.randbits(62)


def _pending_names() -> set[str]:
    names = getattr(_pending, "names", None)
    if names is None:
        names = _pending.names = set()
    return names


def cached(name: str, key: Hashable, load: Callable[[], T]) -> T:
    """`load()`'s result for (name, key), reused for up to TTL seconds within this generation."""
    pending = _pending_names()
    if name in pending:
        if connection.in_atomic_block:
            return load()
        pending.discard(name)  # that transaction is over (committed: generation bumped; or rolled back)
    generation = localcache.get_or_set(
        _generation_key(name), _fresh_generation, local_seconds=GENERATION_CHECK_SECONDS, timeout=None
    )
    entry_key = (name, generation, key)
    now = time.monotonic()
    entry = _entries.get(entry_key)
    if entry is not None and entry[0] > now:
        return entry[1]  # type: ignore[return-value]
    value = load()
    _entries[entry_key] = (now + TTL, value)
    if len(_entries) > 10_000:  # expired or superseded generations: drop them all now and then
        _entries.clear()
    return value


def _bump(name: str) -> None:
    try:
        cache.incr(_generation_key(name))
    except ValueError:
        cache.set(_generation_key(name), _fresh_generation(), timeout=None)
    localcache.forget(_generation_key(name))


def changed(name: str) -> None:
    """Data of kind `name` was written: forget it here now, everywhere once committed."""
    for entry_key in [k for k in list(_entries) if k[0] == name]:  # list(): other threads may write
        _entries.pop(entry_key, None)
    if connection.in_atomic_block:
        _pending_names().add(name)
    transaction.on_commit(lambda: _bump(name), robust=True)


def changed_on_save(model, name: str) -> None:
    """Call `changed(name)` whenever an instance of `model` is saved or deleted (AppConfig.ready)."""
    from django.db.models.signals import post_delete, post_save

    def receiver(sender, **kwargs) -> None:
        changed(name)

    uid = f"caching-{name}-{model._meta.label_lower}"
    post_save.connect(receiver, sender=model, weak=False, dispatch_uid=f"{uid}-save")
    post_delete.connect(receiver, sender=model, weak=False, dispatch_uid=f"{uid}-delete")


def clear() -> None:
    """Forget everything this process and thread cached (tests: between tests)."""
    _entries.clear()
    _pending_names().clear()
    localcache.clear()
