"""Serializer fields shared by every API: strict money, currency, single-line text, ids that appear in
URLs, and phone."""

from __future__ import annotations

import re

import phonenumbers
from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.common.errors import RULE
from apps.common.money import currency_is_supported

# The characters each text field refuses, read by the fields and by the schema (`text_pattern`).
_SINGLE_LINE_REFUSED = r"\x00-\x1f\x7f\u2028\u2029"
_MULTI_LINE_REFUSED = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f"
_CONTROL = re.compile(f"[{_SINGLE_LINE_REFUSED}]")
_CONTROL_MULTILINE = re.compile(f"[{_MULTI_LINE_REFUSED}]")
# What str.strip() removes (str.isspace), written out: a schema regex's `\s` is ECMA's, which lacks
# \x1c-\x1f and \x85.
_TRIMMED = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"


def text_pattern(*, multi_line: bool = False, allow_blank: bool = True, max_length: int | None = None) -> str:
    r"""The schema pattern of a text field, its length included.

    DRF trims whitespace from both ends before the character and length checks, so the pattern
    lets any whitespace surround the text and counts only what is between: a `maxLength` would
    refuse what the server accepts. A text that may not be blank needs a character that is not
    whitespace."""
    refused = _MULTI_LINE_REFUSED if multi_line else _SINGLE_LINE_REFUSED
    repeat = "*" if max_length is None else f"{{0,{max_length - 1}}}"
    text = f"(?:[^{refused}]{repeat}[^{_TRIMMED}{refused}])"
    return f"^[{_TRIMMED}]*{text}{'?' if allow_blank else ''}[{_TRIMMED}]*$"


class StrictBooleanField(serializers.BooleanField):
    """JSON `true` or `false` only: DRF's own also takes 0, 1, "yes", "on"..., which the schema's
    `boolean` does not allow."""

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


@extend_schema_field(
    {"type": "integer", "format": "int64", "minimum": 1, "maximum": settings.MAX_AMOUNT_MINOR, "example": 19900}
)
class MinorUnitsField(serializers.Field):
    """A positive integer amount in minor units. Floats, strings, booleans and zero are refused."""

    default_error_messages = {
        "invalid": _("Must be an integer number of minor units (e.g. 12345 for 123.45)."),
        "min_value": _("Must be at least {min_value}."),
        "max_value": _("Must be at most {max_value}."),
    }

    def __init__(self, *, min_value: int = 1, **kwargs) -> None:
        self.min_value = min_value
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        if data < self.min_value:
            self.fail("min_value", min_value=self.min_value)
        if data > settings.MAX_AMOUNT_MINOR:
            self.fail("max_value", max_value=settings.MAX_AMOUNT_MINOR)
        return data

    def to_representation(self, value):
        return int(value)


@extend_schema_field(
    {"type": "string", "enum": list(settings.SUPPORTED_CURRENCIES), "example": settings.SUPPORTED_CURRENCIES[0]}
)
class CurrencyField(serializers.Field):
    """An upper-case ISO 4217 code the platform settles; `usd` and `XXX` are refused."""

    default_error_messages = {"invalid": _("Must be a supported ISO 4217 currency code in upper case.")}

    def to_internal_value(self, data):
        if not isinstance(data, str) or not currency_is_supported(data):
            self.fail("invalid")
        return data

    def to_representation(self, value):
        return value


class SingleLineCharField(serializers.CharField):
    """Text without control characters (no CR/LF log injection), trimmed, length-bounded."""

    default_error_messages = {"control": _("Must be a single line without control characters.")}

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("max_length", 200)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        value = super().to_internal_value(data)
        if _CONTROL.search(value):
            self.fail("control")
        return value


# The one rule for ids a merchant chooses that RefundGuard later puts in a URL path or query
# (customer external_id, product sku, order external_id): a '/' or '\\' would split the path, '.'
# and '..' are resolved away by clients and proxies, control characters never arrive intact. Such an
# object could be created and then never reached again. A RegexValidator, so model fields (the
# admin) and serializers share it and the OpenAPI schema shows it as the field's `pattern`.
_SEGMENT_CHAR = r"[^/\\\x00-\x1f\x7f\u2028\u2029]"
_SEGMENT_NOT_DOT = r"[^./\\\x00-\x1f\x7f\u2028\u2029]"
validate_path_segment = RegexValidator(
    # Leading dots, then one character that is not a dot: linear to match or refuse, however long.
    regex=rf"\A\.*{_SEGMENT_NOT_DOT}{_SEGMENT_CHAR}*\Z",
    message="Must be usable as one URL path segment: no '/', '\\' or control characters, and not only dots.",
    code="path_segment",
)


class PathSegmentField(SingleLineCharField):
    """A merchant-chosen id that appears in URLs; see `validate_path_segment`."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("max_length", 100)
        super().__init__(**kwargs)
        self.validators.append(validate_path_segment)


class MultiLineCharField(serializers.CharField):
    """Free text (reasons, notes): newlines allowed, other control characters refused."""

    default_error_messages = {"control": _("Must not contain control characters.")}

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("max_length", 2000)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        value = super().to_internal_value(data)
        if _CONTROL_MULTILINE.search(value):
            self.fail("control")
        return value


class PhoneField(serializers.CharField):
    """One phone number in international form, stored as E.164 (what Twilio dials)."""

    # A number of the right shape that does not exist is a rule the schema cannot state (422).
    default_error_messages = {RULE: _("Must be one valid phone number in international form, e.g. +8613800000000.")}

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("max_length", 32)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        value = super().to_internal_value(data)
        if not value.startswith("+") or "," in value:
            self.fail(RULE)
        try:
            number = phonenumbers.parse(value, None)
        except phonenumbers.NumberParseException:
            self.fail(RULE)
        if not phonenumbers.is_valid_number(number):
            self.fail(RULE)
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


class StrictSerializerMixin:
    """Refuses keys the serializer does not declare (mass assignment of `status`, `merchant`...);
    a ModelSerializer's boolean columns take JSON booleans only."""

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.BooleanField: StrictBooleanField,
    }

    def to_internal_value(self, data):
        if isinstance(data, dict):
            writable = {name for name, field in self.fields.items() if not field.read_only}
            unknown = sorted(set(data) - writable)
            if unknown:
                raise serializers.ValidationError({name: [_("Unknown or read-only field.")] for name in unknown})
        return super().to_internal_value(data)
