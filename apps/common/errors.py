"""Errors services raise. They carry a status and code but no HTTP machinery;
`apps.common.exception_handler` turns them, and every DRF/Django error, into the API's shape.
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions, status


class ServiceError(Exception):
    """A business rule refused the action. Nothing was written."""

    status_code = status.HTTP_400_BAD_REQUEST
    code = "validation_error"

    def __init__(self, message: str, *, code: str | None = None, fields: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.fields = fields or {}


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
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    code = "unprocessable"


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
