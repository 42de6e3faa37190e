"""Who owns a reference prefix. `refunds` registers "refund", `payouts` "payout"/"withdrawal".

Results from webhooks and pollers are dispatched here, so `gateways` never imports its callers.
"""

from __future__ import annotations

from collections.abc import Callable

from apps.gateways.base import ChannelResult

# handler(result, *, channel_code, source) -> outcome string ("applied", "ignored_stale", ...)
ResultHandler = Callable[..., str]

_handlers: dict[str, ResultHandler] = {}


def register(prefix: str, handler: ResultHandler) -> ResultHandler | None:
    """Make `handler` the owner of `prefix`; returns the handler it replaced (tests restore it)."""
    previous = _handlers.get(prefix)
    _handlers[prefix] = handler
    return previous


def unregister(prefix: str) -> None:
    _handlers.pop(prefix, None)


def handler_for(prefix: str) -> ResultHandler | None:
    return _handlers.get(prefix)


def dispatch(result: ChannelResult, *, channel_code: str, source: str) -> str:
    """Hand a channel result to the owner of its request id ("refund:42:submit" → "refund")."""
    prefix = result.request_id.split(":", 1)[0]
    handler = _handlers.get(prefix)
    if handler is None:
        return "unknown_reference"
    return handler(result, channel_code=channel_code, source=source)
