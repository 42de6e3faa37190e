"""Inbound channel webhooks: POST /webhooks/channels/<code>/.

400 {"error": ...} for anything that fails authentication or parsing (nothing written; the body is
bounded in size and nesting depth before it is parsed, apps/common/parsers.py), 413 for a body over
DATA_UPLOAD_MAX_MEMORY_SIZE, 404 for an unknown channel, 405 (with `Allow`) for other methods, 429
past the channel's rate (RATE_LIMITS; banks retry later), 200 {"status": "accepted" | "duplicate"}
otherwise.
Banks retry on anything but 2xx, so a handler failure answers 500 and the event comes again.
"""

from __future__ import annotations

import logging

from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse
from django.utils.translation import gettext_lazy as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from apps.common.errors import NotFoundError, error_body
from apps.common.throttling import throttled_json, webhook_limit_wait
from apps.gateways.base import ChannelError, WebhookRejected
from apps.gateways.services import webhook_receive

logger = logging.getLogger(__name__)


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse(error_body(code, message), status=status)


@csrf_exempt
@require_POST
def channel_webhook(request, code: str):
    wait = webhook_limit_wait(f"channels/{code}")
    if wait is not None:
        return throttled_json(wait)
    try:
        body = request.body
    except RequestDataTooBig:
        return _error(413, "payload_too_large", _("Request body is too large."))
    try:
        receipt = webhook_receive(channel_code=code, headers=request.headers, body=body)
    except NotFoundError as exc:
        return _error(404, exc.code, exc.message)
    except WebhookRejected as exc:
        logger.warning("webhook for channel %s rejected: %s", code, exc.code)
        return _error(413 if exc.code == "payload_too_large" else 400, exc.code, str(exc))
    except ChannelError as exc:
        logger.error("webhook for channel %s cannot be handled: %s", code, exc)
        return _error(503, "channel_misconfigured", _("This channel cannot receive webhooks now."))
    return JsonResponse({"status": receipt.status, "events": receipt.outcomes})
