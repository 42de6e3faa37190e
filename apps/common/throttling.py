"""Rate limits: who the client is, how its requests are counted, and what a limited request gets.

Every limit is a fixed window counted in the `throttle` cache (settings.CACHES: Redis when
REDIS_URL is set, shared by every process; a folder under VAR_DIR in the embedded setup, which its
web, worker and beat processes share too). A window is one `incr` per request, atomic on Redis:
DRF's own SimpleRateThrottle reads, appends to and writes back a list of timestamps, so requests
sent in parallel (the attack a limit is for) read the same list and all pass. Rates are DRF rate
strings ("120/min") in settings.RATE_LIMITS (README, "Rate limits").

The API uses the DRF throttles at the bottom (DEFAULT_THROTTLE_CLASSES; the per-key one lives in
apps.accounts.throttling); plain views (progress links, webhooks) call `limit_hit`/`limit_wait`
and answer `throttled_json` or a page of their own with `Retry-After`.
"""

from __future__ import annotations

import ipaddress
import math
import time

from django.conf import settings
from django.core.cache import caches
from django.http import HttpRequest, JsonResponse
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

from apps.common.errors import error_body

CACHE_ALIAS = "throttle"
_KEY_PREFIX = "rl"


def client_ip(request: HttpRequest) -> str | None:
    """The client's address as the outermost trusted proxy saw it (None when the request has none,
    e.g. one built in a test or a management command).

    With NUM_PROXIES = 0 (no proxy) this is REMOTE_ADDR and X-Forwarded-For is ignored: anyone can
    send that header. Behind N proxies that each append the address they saw (nginx's
    $proxy_add_x_forwarded_for), the N-th entry from the right is the one our first proxy added;
    everything left of it came from the client. DRF's NUM_PROXIES rule, in one place for the API
    throttles, the progress links, the webhooks and the login lockout (django-axes)."""
    address = request.META.get("REMOTE_ADDR") or None
    proxies = settings.NUM_PROXIES
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    forwarded = [part for part in forwarded if part]
    if proxies > 0 and forwarded:
        address = forwarded[-min(proxies, len(forwarded))]
    try:
        return str(ipaddress.ip_address(address)) if address else None
    except ValueError:  # not an address: a proxy count set higher than there are proxies
        return None


def parse_rate(rate: str) -> tuple[int, int]:
    """(requests, seconds) of a DRF rate string such as "120/min"."""
    num, duration = SimpleRateThrottle.parse_rate(None, rate)
    return num, duration


def rate_for(scope: str) -> str:
    return settings.RATE_LIMITS[scope]


def _window(duration: int) -> tuple[int, float]:
    """The current window's number and the seconds left in it."""
    now = time.time()
    number = int(now // duration)
    return number, (number + 1) * duration - now


def _key(scope: str, ident: str, number: int) -> str:
    return f"{_KEY_PREFIX}:{scope}:{ident}:{number}"


def limit_hit(scope: str, ident: str, rate: str | None = None) -> int | None:
    """Count one request of `ident` against `scope`'s rate; the seconds to wait when it is over the
    limit (this request included), else None."""
    num, duration = parse_rate(rate or rate_for(scope))
    number, left = _window(duration)
    cache = caches[CACHE_ALIAS]
    key = _key(scope, ident, number)
    try:
        count = cache.incr(key)
    except ValueError:  # the window's first request (or the first two at once: add lets one win)
        # Kept a window longer than it counts, so it never expires under a request still in it.
        count = 1 if cache.add(key, 1, timeout=2 * duration) else cache.incr(key)
    return max(1, math.ceil(left)) if count > num else None


def limit_wait(scope: str, ident: str, rate: str | None = None) -> int | None:
    """The seconds to wait when `ident` has already used up `scope`'s rate in this window, else
    None; counts nothing (for limits on failures, counted with `limit_hit` once they happen)."""
    num, duration = parse_rate(rate or rate_for(scope))
    number, left = _window(duration)
    count = caches[CACHE_ALIAS].get(_key(scope, ident, number), 0)
    return max(1, math.ceil(left)) if count >= num else None


def limit_state_clear() -> None:
    """Forget every count (tests). Only this module's keys: on Redis the throttle cache shares its
    database with the default cache and, in CI, the Celery broker."""
    cache = caches[CACHE_ALIAS]
    client = getattr(cache, "_cache", None)
    if client is not None and hasattr(client, "get_client"):
        redis = client.get_client(write=True)
        pattern = cache.make_key(f"{_KEY_PREFIX}:*")
        keys = list(redis.scan_iter(match=pattern, count=1000))
        if keys:
            redis.delete(*keys)
    else:
        cache.clear()


def progress_link_missed(request: HttpRequest) -> int | None:
    """Count a customer-link lookup that found nothing (a tampered, expired or guessed token);
    the seconds to wait when this client is over RATE_LIMITS["progress_link_miss"], else None.
    Only misses count: a customer reloading a link that works is never limited, even from an
    address that is guessing (the tokens are signed, so a guess cannot find one)."""
    return limit_hit("progress_link_miss", client_ip(request) or "unknown")


def webhook_limit_wait(channel: str) -> int | None:
    """Count one webhook delivery for `channel` (its path under /webhooks/: "channels/<code>",
    "twilio/status"), signed or
    not: the seconds to wait when the channel is over RATE_LIMITS["webhook_channel"], else None.
    Counted before the signature is checked, which is the costly part a flood would aim at; the
    providers redeliver what was refused."""
    return limit_hit("webhook_channel", channel)


def throttled_json(wait: int, message: str = "Too many requests; retry later.") -> JsonResponse:
    """429 in the error shape with Retry-After (webhooks and other JSON views outside DRF)."""
    response = JsonResponse(error_body("throttled", message), status=429)
    response["Retry-After"] = str(wait)
    return response


class CountingThrottle(BaseThrottle):
    """A DRF throttle over `limit_hit`: subclasses name the scope and who is counted."""

    scope = ""

    def __init__(self) -> None:
        self._wait: int | None = None

    def ident_for(self, request) -> str | None:
        raise NotImplementedError

    def rate_for(self, request) -> str:
        return rate_for(self.scope)

    def allow_request(self, request, view) -> bool:
        ident = self.ident_for(request)
        if ident is None:
            return True
        self._wait = limit_hit(self.scope, ident, self.rate_for(request))
        return self._wait is None

    def wait(self) -> int | None:
        return self._wait


class ClientIpThrottle(CountingThrottle):
    """Every API request of one client address, whoever it authenticates as (those refused for
    lack of credentials are counted by apps.common.exception_handler, since DRF checks
    permissions before throttles)."""

    scope = "api_ip"

    def ident_for(self, request) -> str:
        return client_ip(request) or "unknown"
