"""One error shape for the whole API: {"error": {"code", "message", "fields"}} (DESIGN.md)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404
from django.utils.translation import gettext_lazy as _
from django_fsm import TransitionNotAllowed
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler

from apps.common.errors import (
    RULE,
    InvalidStateError,
    PayloadTooLargeError,
    ServiceError,
    error_body,
)
from apps.common.throttling import ClientIpThrottle

_CODES = {
    exceptions.ValidationError: "validation_error",
    exceptions.ParseError: "parse_error",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
    PayloadTooLargeError: "payload_too_large",
}


def _flatten(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """Turn DRF's nested error detail into {"a.b": ["message", ...]}."""
    out: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            out.update(_flatten(value, name))
    elif isinstance(detail, list):
        if all(not isinstance(item, (dict, list)) for item in detail):
            out[prefix or "non_field_errors"] = [str(item) for item in detail]
        else:
            for index, item in enumerate(detail):
                out.update(_flatten(item, f"{prefix}.{index}" if prefix else str(index)))
    else:
        out[prefix or "non_field_errors"] = [str(detail)]
    return out


def _codes(detail: Any) -> set[str]:
    if isinstance(detail, dict):
        return set().union(*map(_codes, detail.values())) if detail else set()
    if isinstance(detail, list):
        return set().union(*map(_codes, detail)) if detail else set()
    return {getattr(detail, "code", None) or ""}


def _only_rules(detail: Any) -> bool:
    """Every error is a rule the schema cannot state (errors.RULE): the request is well-formed."""
    return _codes(detail) == {RULE}


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, TransitionNotAllowed):
        # Services check states before moving; a transition refused below them (a race their
        # lock did not cover) is the same state conflict, not a server error.
        exc = InvalidStateError("This action is not allowed in the object's current state.")
    if isinstance(exc, ServiceError):
        return Response(error_body(exc.code, str(exc.message), exc.fields), status=exc.status_code)
    if isinstance(exc, RequestDataTooBig):
        # DRF reads `request.body` before any parser runs, so Django's own size check fires
        # first; without this it would escape DRF as an HTML 400 instead of our 413.
        exc = PayloadTooLargeError()
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, exceptions.NotAuthenticated) and context.get("request") is not None:
        # DRF checks permissions before throttles, so a request without credentials never reaches
        # the per-address throttle: count it here, so every API request from an address counts.
        throttle = ClientIpThrottle()
        if not throttle.allow_request(context["request"], context.get("view")):
            exc = exceptions.Throttled(throttle.wait())

    response = exception_handler(exc, context)
    if response is None:
        return None

    code = next((c for cls, c in _CODES.items() if isinstance(exc, cls)), "error")
    if isinstance(exc, exceptions.ValidationError) and _only_rules(exc.detail):
        response.status_code = ServiceError.status_code
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail)
        non_field = fields.pop("non_field_errors", None)
        message = non_field[0] if non_field and not fields else _("Some fields are invalid.")
        if non_field and fields:
            fields["non_field_errors"] = non_field
        response.data = error_body(code, message, fields)
    else:
        detail = getattr(exc, "detail", str(exc))
        response.data = error_body(code, str(detail))
    return response
