"""Errors services raise. They carry a status and code but no HTTP machinery;
`apps.common.exception_handler` turns them, and every DRF/Django error, into the API's shape.
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions, status


class ServiceError(Exception):
    """A business rule refused the action. Nothing was written.

    422: the request was well-formed (serializers answer 400 for what breaks the published schema:
    a missing field, a wrong type, a malformed value), and a rule the schema cannot state refused
    it — an unknown reference, a cross-field rule, a limit. Subclasses narrow it (404, 403, 409)."""

    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    code = "validation_error"

    def __init__(self, message: str, *, code: str | None = None, fields: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.fields = fields or {}


class BadRequestError(ServiceError):
    """The request breaks what the published schema says of it (a header the schema describes, checked
    outside a serializer): 400, like a serializer's refusal."""

    status_code = status.HTTP_400_BAD_REQUEST


class NotFoundError(ServiceError):
    status_code = status.HTTP_404_NOT_FOUND
    code = "not_found"


class ForbiddenError(ServiceError):
    """The caller may not take this action at all (whatever the object's state)."""

    status_code = status.HTTP_403_FORBIDDEN
    code = "forbidden"


class ConflictError(ServiceError):
    status_code = status.HTTP_409_CONFLICT
    code = "conflict"


class InvalidStateError(ConflictError):
    """The object's state does not allow the action (approving a refund not in review, cancelling a
    paid payout, acking a resolved alert): always a 409 `invalid_state`, whichever app refuses."""

    code = "invalid_state"


class UnprocessableError(ServiceError):
    """A refusal with a code of its own (creator_cannot_approve, amount_exceeds_refundable...)."""

    code = "unprocessable"


# The code of a serializer error for a rule the schema cannot state (`rule_violation`): the API
# answers it like a service's refusal, 422 `validation_error`, when every error of a request has
# it; 400 otherwise.
RULE = "rule"


def rule_violation(detail) -> exceptions.ValidationError:
    """A serializer's refusal by a rule the schema cannot state (see ServiceError): 422."""
    return exceptions.ValidationError(detail, code=RULE)


class PayloadTooLargeError(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = _("Request body is too large.")
    default_code = "payload_too_large"


def error_body(code: str, message: str, fields: dict | None = None) -> dict:
    """The API's error shape (DESIGN.md): {"error": {"code", "message", "fields"}}.

    Messages may be lazy translations: they are rendered here, in the request's language, so the
    body is plain JSON wherever it goes (a response, a stored idempotent answer)."""
    rendered = {
        name: [str(m) for m in value] if isinstance(value, (list, tuple)) else str(value)
        for name, value in (fields or {}).items()
    }
    return {"error": {"code": code, "message": str(message), "fields": rendered}}
