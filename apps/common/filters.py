"""The query-string filters of the API's list endpoints: one home for parsing and validating them.

Each list endpoint declares a `QueryFilters` serializer naming its parameters and their types; the
same class is its OpenAPI declaration (`extend_schema(parameters=[RefundFilters])`) and its parser
(`RefundFilters.parse(request)`), so the schema and the server cannot disagree. A known parameter
with a bad value (an unknown enum value, a malformed date, integer or boolean, out of range, blank
where blank means nothing) is a 400 naming the parameter; parameters the endpoint does not know are
ignored, as most HTTP APIs do.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.common.fields import SingleLineCharField


class QueryFilters(serializers.Serializer):
    """Base for an endpoint's filters. Absent parameters are left out of the parsed result."""

    @classmethod
    def parse(cls, request) -> dict[str, Any]:
        """The validated filters of `request` (a ValidationError naming each bad parameter otherwise).

        The last value wins when a parameter repeats, as `request.query_params.get` reads it."""
        data = cls(data=request.query_params.dict())
        data.is_valid(raise_exception=True)
        return {name: value for name, value in data.validated_data.items() if value not in (None, "")}


def text(*, max_length: int = 100, help_text: str = "") -> SingleLineCharField:
    """A free-text filter (an exact id, a search term). Blank means no filter."""
    return SingleLineCharField(max_length=max_length, required=False, allow_blank=True, help_text=help_text or None)


def choice(choices, *, help_text: str = "") -> serializers.ChoiceField:
    """One of `choices` (a TextChoices' `.values` or a list of strings); blank is refused."""
    return serializers.ChoiceField(choices=list(choices), required=False, help_text=help_text or None)


def integer(*, min_value: int, max_value: int, help_text: str = "") -> serializers.IntegerField:
    return serializers.IntegerField(
        min_value=min_value, max_value=max_value, required=False, help_text=help_text or None
    )


def boolean(*, help_text: str = "") -> serializers.BooleanField:
    """`true` or `false`, as the schema's boolean is written; anything else is refused."""
    return _StrictBooleanField(required=False, help_text=help_text or None)


def date(*, help_text: str = "") -> serializers.DateField:
    """A calendar date, YYYY-MM-DD."""
    return _StrictDateField(required=False, help_text=help_text or None)


def datetime(*, help_text: str = "") -> serializers.DateTimeField:
    """An ISO 8601 date-time; without an offset it is read as UTC (TIME_ZONE)."""
    return serializers.DateTimeField(required=False, help_text=help_text or None)


class _StrictDateField(serializers.DateField):
    """YYYY-MM-DD only: Python also reads 20261127 and 2026-W48-5 as dates, the schema does not."""

    def to_internal_value(self, value):
        if not isinstance(value, str) or len(value) != 10:
            self.fail("invalid", format="YYYY-MM-DD")
        return super().to_internal_value(value)


class _StrictBooleanField(serializers.BooleanField):
    """DRF also reads yes/no, on/off, 1/0 and True; a query string says true or false."""

    TRUE_VALUES = frozenset({"true"})
    FALSE_VALUES = frozenset({"false"})
    NULL_VALUES = frozenset()
