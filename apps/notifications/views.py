"""Twilio delivery reports (POST /webhooks/twilio/status/) and the customer's inbox reached from a
progress link (/r/<token>/inbox/, read-only).

Twilio delivery reports:

Every request is authenticated with Twilio's `X-Twilio-Signature` (HMAC-SHA1 of the public URL and
the form parameters, keyed with the account's auth token) before anything is read or written.
403 for a missing or wrong signature (or no token configured), 413 for a body over
DATA_UPLOAD_MAX_MEMORY_SIZE, 400 for a form over DATA_UPLOAD_MAX_NUMBER_FIELDS or without a sid or status, 404
for a sid RefundGuard never sent, 204 otherwise — a replayed report too, so Twilio stops retrying.
The callback URL names the message (`?n=<id>`), so a report that overtakes the dispatch's own
record of the sid still finds its row.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.http import HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.utils.translation import gettext_lazy as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from twilio.request_validator import RequestValidator

from apps.common.errors import NotFoundError, error_body
from apps.common.throttling import progress_link_missed, throttled_json, webhook_limit_wait
from apps.notifications import selectors, services
from apps.notifications.api import InboxItemSerializer
from apps.refunds.services import refund_get_by_progress_token

logger = logging.getLogger(__name__)

# SMS reports carry MessageSid + MessageStatus, voice reports CallSid + CallStatus.
_SID_AND_STATUS = (("MessageSid", "MessageStatus"), ("CallSid", "CallStatus"))


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse(error_body(code, message), status=status)


def _signature_valid(request) -> bool:
    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature:
        return False
    # Twilio signs the URL it called — ours as the public sees it, not as the proxy forwards it — and
    # every form parameter; the QueryDict is passed whole so a repeated parameter is signed as sent.
    url = settings.PUBLIC_BASE_URL.rstrip("/") + request.get_full_path()
    return RequestValidator(settings.TWILIO_AUTH_TOKEN).validate(url, request.POST, signature)


@csrf_exempt
@require_POST
def twilio_status(request):
    """Authenticate a Twilio status callback, then hand it to
    `services.notification_apply_provider_status` (deduplicated on sid + status there)."""
    wait = webhook_limit_wait("twilio/status")
    if wait is not None:
        return throttled_json(wait)
    if not settings.TWILIO_AUTH_TOKEN:
        logger.warning("twilio status callback refused: TWILIO_AUTH_TOKEN is not configured")
        return _error(403, "signature_unverifiable", _("Twilio callbacks cannot be verified here."))
    try:
        valid = _signature_valid(request)  # reads the form: bounded by Django's DATA_UPLOAD_MAX_* settings
    except RequestDataTooBig:
        return _error(413, "payload_too_large", _("Request body is too large."))
    except (TooManyFieldsSent, MultiPartParserError):
        return _error(400, "payload_invalid", _("The report's form body could not be parsed within its bounds."))
    if not valid:
        # Never the body: it holds phone numbers, and a forged one is not worth keeping.
        logger.warning(
            "twilio status callback refused: %s signature from %s",
            "wrong" if request.headers.get("X-Twilio-Signature") else "missing",
            request.META.get("REMOTE_ADDR", "?"),
        )
        return _error(403, "signature_mismatch", _("The X-Twilio-Signature does not match this request."))

    params = request.POST.dict()
    for sid_name, status_name in _SID_AND_STATUS:
        sid, status = params.get(sid_name, ""), params.get(status_name, "")
        if sid or status:
            break
    if not sid or not status:
        return _error(
            400, "validation_error", _("MessageSid and MessageStatus (or CallSid and CallStatus) are required.")
        )
    named = request.GET.get("n", "")
    try:
        services.notification_apply_provider_status(
            provider="twilio",
            provider_id=sid,
            status=status,
            payload=params,
            notification_id=int(named) if named.isdigit() and len(named) < 19 else None,
        )
    except NotFoundError as exc:
        return _error(404, exc.code, exc.message)
    return HttpResponse(status=204)


# --- one refund's messages, reached from its progress link (routed in apps/track/urls.py) ---

# The page shows the latest messages; older ones stay reachable through the merchant's API.
INBOX_PAGE_SIZE = 100


@require_GET
def customer_inbox(request, token: str):
    """GET /r/<token>/inbox/: the inbox messages about this refund, newest first. Like the page, the
    link is single-object and read-only (RELIABILITY.md G11): the customer's other refunds and
    withdrawals never show here, and nothing is written; a tampered or expired token is a 404."""
    refund = refund_get_by_progress_token(token)
    if refund is None:
        wait = progress_link_missed(request)
        if wait is not None:
            return throttled_json(wait, "Too many links that do not work; retry later.")
        return _error(404, "not_found", "This link is not valid or has expired.")
    scope = {"customer": refund.customer, "subject_type": "refund", "subject_id": refund.pk}
    rows = selectors.inbox_list_for_customer(**scope)[:INBOX_PAGE_SIZE]
    return JsonResponse(
        {"unread_count": selectors.inbox_unread_count(**scope), "results": InboxItemSerializer(rows, many=True).data},
        json_dumps_params={"ensure_ascii": False},
    )
