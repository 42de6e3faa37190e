"""JSON parsing that refuses what a lenient parser would quietly accept, for every body RefundGuard
reads from outside: the API (`StrictJSONParser`) and signed webhooks (`strict_json_loads`).

Refused: bodies over `DATA_UPLOAD_MAX_MEMORY_SIZE` (`JSONTooLarge`), then, before the parser runs,
nesting deeper than `MAX_DEPTH` (a 1 000-deep array would otherwise exhaust the parser's recursion);
then bodies that are not UTF-8, duplicate keys (which one would win is parser-dependent) and
NaN/Infinity (`JSONRefused`). Non-integer numbers parse as Decimal, so no float enters the app.
The API answers them 413 / 400, the webhook receivers 413 / 400, all in the error shape.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from apps.common.errors import PayloadTooLargeError

MAX_DEPTH = 16

# A JSON string, or an unterminated one running to the end; possessive, so scanning stays linear.
_STRING = re.compile(rb'"(?:[^"\\]++|\\[\s\S])*+(?:"|\\?\Z)')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


class JSONRefused(ValueError):
    """The body is not JSON RefundGuard accepts; the message says why (safe to show the sender)."""


class JSONTooLarge(JSONRefused):
    """The body is over DATA_UPLOAD_MAX_MEMORY_SIZE."""


def json_nesting_exceeds(raw: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether `raw` opens more than `limit` arrays/objects inside each other, counted on the bytes
    (brackets inside strings ignored) without parsing them."""
    depth = 0
    for bracket in _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS):
        if bracket in b"[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise JSONRefused(f"Duplicate JSON key {key!r}.")
        seen[key] = value
    return seen


def _no_constants(name: str) -> Any:
    raise JSONRefused(f"{name} is not a valid JSON number.")


def strict_json_loads(raw: bytes, *, parse_float: Callable[[str], Any] = Decimal) -> Any:
    """`raw` parsed, bounded in size and depth before parsing; raises JSONTooLarge / JSONRefused."""
    if len(raw) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
        raise JSONTooLarge("Request body is too large.")
    if json_nesting_exceeds(raw):
        raise JSONRefused(f"JSON is nested too deeply (more than {MAX_DEPTH} levels).")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JSONRefused("Request body is not valid UTF-8.") from exc
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants, parse_float=parse_float)
    except JSONRefused:
        raise
    except (ValueError, RecursionError) as exc:
        raise JSONRefused(f"JSON parse error: {exc}") from exc


class StrictJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        request = (parser_context or {}).get("request")
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        if declared and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLargeError()
        raw = stream.read(limit + 1) if stream is not None else b""
        try:
            return strict_json_loads(raw)
        except JSONTooLarge as exc:
            raise PayloadTooLargeError() from exc
        except JSONRefused as exc:
            raise ParseError(str(exc)) from exc
