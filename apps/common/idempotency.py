"""`Idempotency-Key` for POSTs that move money: one key, one side effect, one stored response.

A key is scoped to the caller (merchant) and remembered for `IDEMPOTENCY_TTL`. The first request
claims the key by inserting a row (unique constraint), runs, and stores its response; a repeat with
the same body gets that response again with `Idempotent-Replayed: true`; a repeat with a different
body or on another endpoint is a 422; a repeat while the first is still running is a 409.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from contextlib import nullcontext
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from rest_framework import status
from rest_framework.response import Response

from apps.common.errors import ConflictError, ServiceError, UnprocessableError, error_body
from apps.common.models import IdempotencyRecord

HEADER = "HTTP_IDEMPOTENCY_KEY"
MAX_KEY_LENGTH = 255
# A claim older than this whose request never finished (crashed process) may be taken over.
STALE_CLAIM = timedelta(minutes=2)


def _validate_key(raw: str | None) -> str:
    if raw is None:
        raise ServiceError(
            "This request needs an Idempotency-Key header.",
            code="idempotency_key_missing",
            fields={"Idempotency-Key": ["Required."]},
        )
    if not raw or len(raw) > MAX_KEY_LENGTH or not raw.isascii() or not raw.isprintable() or raw.strip() != raw:
        raise ServiceError(
            "Idempotency-Key must be 1–255 printable ASCII characters.",
            code="idempotency_key_invalid",
            fields={"Idempotency-Key": ["1–255 printable ASCII characters."]},
        )
    return raw


def request_fingerprint(*, endpoint: str, data) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)
    return hashlib.sha256(f"{endpoint}\n{canonical}".encode()).hexdigest()


def _replay(record: IdempotencyRecord) -> Response:
    response = Response(record.response_body, status=record.response_status)
    response["Idempotent-Replayed"] = "true"
    return response


def idempotent(*, request, scope: str, endpoint: str, handler: Callable[[], Response]) -> Response:
    """Run `handler` at most once per (scope, Idempotency-Key); replay its stored response after."""
    key = _validate_key(request.META.get(HEADER))
    fingerprint = request_fingerprint(endpoint=endpoint, data=request.data)
    now = timezone.now()
    try:
        # Outside a transaction the INSERT commits on its own; a savepoint (or BEGIN … COMMIT) would
        # only add round trips. Inside one, the savepoint keeps a duplicate key from breaking it.
        with transaction.atomic() if connection.in_atomic_block else nullcontext():
            record = IdempotencyRecord.objects.create(
                scope=scope, key=key, endpoint=endpoint, fingerprint=fingerprint, claimed_at=now
            )
    except IntegrityError:
        record = IdempotencyRecord.objects.filter(scope=scope, key=key).first()
        if record is None:
            # The holder released its claim between our insert and this read: ask for a retry.
            raise ConflictError(
                "A request with this Idempotency-Key was just being processed; retry.",
                code="idempotency_in_progress",
            ) from None
        if record.endpoint != endpoint or record.fingerprint != fingerprint:
            raise UnprocessableError(
                "This Idempotency-Key was used with a different request.", code="idempotency_key_reused"
            ) from None
        if record.response_status is not None:
            return _replay(record)
        if now - record.claimed_at < STALE_CLAIM:
            raise ConflictError(
                "A request with this Idempotency-Key is still being processed; retry shortly.",
                code="idempotency_in_progress",
            ) from None
        # The first attempt died before answering: take the claim over atomically.
        taken = IdempotencyRecord.objects.filter(pk=record.pk, claimed_at=record.claimed_at).update(claimed_at=now)
        if not taken:
            raise ConflictError(
                "A request with this Idempotency-Key is being processed.", code="idempotency_in_progress"
            ) from None

    try:
        response = handler()
    except ServiceError as exc:
        if exc.status_code == status.HTTP_400_BAD_REQUEST:
            # Invalid input (unknown order, wrong currency) is refused like a serializer error:
            # nothing is stored, so the client may fix the body and retry with the same key.
            IdempotencyRecord.objects.filter(pk=record.pk, response_status__isnull=True).delete()
            raise
        # A business refusal is an answer too: the same request must get the same refusal.
        IdempotencyRecord.objects.filter(pk=record.pk).update(
            response_status=exc.status_code,
            response_body=error_body(exc.code, exc.message, exc.fields),
            completed_at=timezone.now(),
        )
        raise
    except Exception:
        # Unknown outcome (validation handled above): release the claim so the client can retry.
        IdempotencyRecord.objects.filter(pk=record.pk, response_status__isnull=True).delete()
        raise
    IdempotencyRecord.objects.filter(pk=record.pk).update(
        response_status=response.status_code, response_body=response.data, completed_at=timezone.now()
    )
    return response


def idempotency_purge(*, older_than: timedelta | None = None) -> int:
    """Forget keys older than the retention period (at least 24 h, per the API contract)."""
    cutoff = timezone.now() - (older_than or settings.IDEMPOTENCY_TTL)
    deleted, _ = IdempotencyRecord.objects.filter(claimed_at__lt=cutoff).delete()
    return deleted
