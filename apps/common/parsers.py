"""A JSON parser that refuses what a lenient one would quietly accept.

Refused with 400: duplicate keys (which one would win is parser-dependent), NaN/Infinity, bodies
that are not UTF-8, nesting deeper than `MAX_DEPTH`. Refused with 413: bodies over
`DATA_UPLOAD_MAX_MEMORY_SIZE`. Non-integer numbers parse as Decimal so no float enters the app.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from apps.common.errors import PayloadTooLargeError

MAX_DEPTH = 16


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ParseError(f"Duplicate JSON key {key!r}.")
        seen[key] = value
    return seen


def _no_constants(name: str) -> Any:
    raise ParseError(f"{name} is not a valid JSON number.")


def _depth(value: Any, level: int = 1) -> int:
    if level > MAX_DEPTH:
        return level
    if isinstance(value, dict):
        return max([_depth(v, level + 1) for v in value.values()] or [level])
    if isinstance(value, list):
        return max([_depth(v, level + 1) for v in value] or [level])
    return level


class StrictJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        request = (parser_context or {}).get("request")
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        if declared and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLargeError()
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise PayloadTooLargeError()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ParseError("Request body is not valid UTF-8.") from exc
        try:
            data = json.loads(
                text,
                object_pairs_hook=_no_duplicates,
                parse_constant=_no_constants,
                parse_float=Decimal,
            )
        except RecursionError as exc:
            raise ParseError("JSON is nested too deeply.") from exc
        except ValueError as exc:
            raise ParseError(f"JSON parse error: {exc}") from exc
        if _depth(data) > MAX_DEPTH:
            raise ParseError("JSON is nested too deeply.")
        return data
