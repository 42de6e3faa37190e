"""Every error the server gives under /api/ and /webhooks/ is JSON in the error shape, DEBUG on or off.

DRF views answer their own errors (apps/common/exception_handler.py). Everything else reaches the
client as Django builds it: an unresolved URL (technical 404 page with DEBUG), a wrong method on a
plain view (an empty text/html 405), a CSRF refusal, an uncaught exception anywhere in the view or
the middleware (technical or plain HTML 500). This middleware sits outermost, so it sees every one
of them, and rewrites any error response that is not JSON. The exception behind a 5xx is
remembered on the request (`got_request_exception` fires for exceptions raised anywhere below,
`process_exception` for a view's): an unreachable database, broker or cache is a 503 with
`Retry-After`, anything else a 500. The body never carries the exception's text; Django's
`django.request` logger has already logged it with its traceback.

`ChunkedBodyMiddleware` (below) gives bodies sent chunked their real length, or a 411/413.
"""

from __future__ import annotations

import io
import sys
from http import HTTPStatus

import redis.exceptions
from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.handlers.asgi import ASGIRequest
from django.core.signals import got_request_exception
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import translation
from django.utils.translation import gettext_lazy as _
from kombu.exceptions import OperationalError as BrokerError

from apps.common.errors import error_body

# Paths machines call (the API, channel and Twilio webhooks): JSON errors, English by default.
MACHINE_PREFIXES = ("/api/", "/webhooks/")
# A database failover or a broker restart is usually over within seconds; clients back off from here.
RETRY_AFTER_SECONDS = 5
# Failures of what the request depends on, not of the request: a retry later may well succeed.
OUTAGES = (DatabaseError, BrokerError, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
_KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate")
_ATTRIBUTE = "_refundguard_exception"

_ANSWERS = {
    400: ("bad_request", _("The request could not be understood.")),
    401: ("not_authenticated", _("Authentication credentials were not provided.")),
    403: ("permission_denied", _("You do not have permission to perform this action.")),
    404: ("not_found", _("Not found.")),
    411: ("length_required", _("Send the request body with a Content-Length header.")),
    413: ("payload_too_large", _("Request body is too large.")),
    429: ("throttled", _("Request was throttled.")),
    500: ("server_error", _("Something went wrong on our side; it has been logged.")),
    503: ("service_unavailable", _("The service is briefly unavailable; retry shortly.")),
}


def _remember(request: HttpRequest | None, exc: BaseException | None) -> None:
    if request is not None and exc is not None:
        setattr(request, _ATTRIBUTE, exc)


def _on_request_exception(sender, request: HttpRequest | None = None, **kwargs) -> None:
    _remember(request, sys.exc_info()[1])


def _is_json(response: HttpResponse) -> bool:
    content_type = response.get("Content-Type", "").split(";", 1)[0].strip().lower()
    return content_type == "application/json" or content_type.endswith("+json")


def _answer(request: HttpRequest, status: int) -> tuple[int, str, str]:
    exc = getattr(request, _ATTRIBUTE, None)
    if status >= 500:
        status = 503 if isinstance(exc, OUTAGES) or status == 503 else 500
    elif isinstance(exc, RequestDataTooBig):
        status = 413  # Django answers it as any suspicious request: a bare 400
    if status == 405:
        return status, "method_not_allowed", _('Method "{method}" not allowed.').format(method=request.method)
    if status in _ANSWERS:
        return status, *_ANSWERS[status]
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return status, phrase.lower().replace(" ", "_").replace("-", "_"), f"{phrase}."


def json_error(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """`response`, rewritten into the error shape if it is an error that is not JSON; a 503 always
    carries `Retry-After`."""
    if response.status_code < 400 or not request.path.startswith(MACHINE_PREFIXES):
        return response
    if not _is_json(response):
        from apps.common.language import machine_language  # it imports MACHINE_PREFIXES from here

        # Outermost: an error raised before MachineLanguageMiddleware ran still answers in the
        # language the client asked for.
        with translation.override(machine_language(request.META.get("HTTP_ACCEPT_LANGUAGE", ""))):
            status, code, message = _answer(request, response.status_code)
            answer = JsonResponse(error_body(code, message), status=status)
        for header in _KEPT_HEADERS:
            if header in response:
                answer[header] = response[header]
        response = answer
    if response.status_code == 503 and "Retry-After" not in response:
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


class JSONErrorMiddleware:
    """Outermost middleware (settings.MIDDLEWARE[0]); see the module docstring."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        got_request_exception.connect(_on_request_exception, dispatch_uid="common.json_errors")
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest):
        if iscoroutinefunction(self):
            return self._acall(request)
        return json_error(request, self.get_response(request))

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        return json_error(request, await self.get_response(request))

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        _remember(request, exception)


# --- bodies sent chunked -------------------------------------------------------------------------


def _sent_chunked(request: HttpRequest) -> bool:
    return (
        not request.META.get("CONTENT_LENGTH") and "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()
    )


def take_chunked_body(request: HttpRequest) -> HttpResponse | None:
    """Make a body sent chunked (Transfer-Encoding: chunked, no Content-Length) readable, or answer
    why not. Django, and DRF after it, read a body without Content-Length as empty; here it gets
    its real length, within DATA_UPLOAD_MAX_MEMORY_SIZE (413 above it).

    daphne (ASGI) has already de-chunked the whole body into the request's file. gunicorn (WSGI)
    de-chunks on read and says so with `wsgi.input_terminated`; the body is read here, bounded. A
    WSGI server without that promise (wsgiref, `runserver`) cannot say where the body ends: 411."""
    if not _sent_chunked(request):
        return None
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if isinstance(request, ASGIRequest):
        stream = request._stream
        size = stream.seek(0, io.SEEK_END)
        stream.seek(0)
    elif request.META.get("wsgi.input_terminated"):
        data = request.META["wsgi.input"].read(limit + 1)
        size = len(data)
        request._stream = io.BytesIO(data)
    else:
        return HttpResponse(status=411)
    if size > limit:
        return HttpResponse(status=413)
    request.META["CONTENT_LENGTH"] = str(size)
    return None


class ChunkedBodyMiddleware:
    """Right after JSONErrorMiddleware (which shapes its 411/413), before anything reads the body;
    see `take_chunked_body`."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest):
        if iscoroutinefunction(self):
            return self._acall(request)
        return take_chunked_body(request) or self.get_response(request)

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        return take_chunked_body(request) or await self.get_response(request)
