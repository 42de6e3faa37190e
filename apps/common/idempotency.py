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
from datetime import timedelta

from django.conf import settings
from django.db import connection
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


# The claim and the answer are written out: the ORM's building and compiling of an INSERT and an
# UPDATE cost the request more than the statements themselves. ON CONFLICT DO NOTHING makes a taken
# key an empty result instead of an error, so no savepoint is needed inside a transaction either.
_TABLE = IdempotencyRecord._meta.db_table
_CLAIM_SQL = f"""
INSERT INTO {_TABLE} (scope, "key", endpoint, fingerprint, claimed_at) VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (scope, "key") DO NOTHING RETURNING id
"""  # noqa: S608 - the model's own table name
_ANSWER_SQL = f"UPDATE {_TABLE} SET response_status = %s, response_body = %s, completed_at = %s WHERE id = %s"  # noqa: S608


def _answer(record_id: int, status_code: int, body) -> None:
    body = IdempotencyRecord._meta.get_field("response_body").get_db_prep_save(body, connection)
    with connection.cursor() as cursor:
        cursor.execute(_ANSWER_SQL, [status_code, body, timezone.now(), record_id])


def idempotent(*, request, scope: str, endpoint: str, handler: Callable[[], Response]) -> Response:
    """Run `handler` at most once per (scope, Idempotency-Key); replay its stored response after."""
    key = _validate_key(request.META.get(HEADER))
    fingerprint = request_fingerprint(endpoint=endpoint, data=request.data)
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM_SQL, [scope, key, endpoint, fingerprint, now])
        claimed = cursor.fetchone()
    if claimed is not None:
        record_id = claimed[0]
    else:
        record = IdempotencyRecord.objects.filter(scope=scope, key=key).first()
        if record is None:
            # The holder released its claim between our insert and this read: ask for a retry.
            raise ConflictError(
                "A request with this Idempotency-Key was just being processed; retry.",
                code="idempotency_in_progress",
            )
        if record.endpoint != endpoint or record.fingerprint != fingerprint:
            raise UnprocessableError(
                "This Idempotency-Key was used with a different request.", code="idempotency_key_reused"
            )
        if record.response_status is not None:
            return _replay(record)
        if now - record.claimed_at < STALE_CLAIM:
            raise ConflictError(
                "A request with this Idempotency-Key is still being processed; retry shortly.",
                code="idempotency_in_progress",
            )
        # The first attempt died before answering: take the claim over atomically.
        taken = IdempotencyRecord.objects.filter(pk=record.pk, claimed_at=record.claimed_at).update(claimed_at=now)
        if not taken:
            raise ConflictError(
                "A request with this Idempotency-Key is being processed.", code="idempotency_in_progress"
            )
        record_id = record.pk

    try:
        response = handler()
    except ServiceError as exc:
        if exc.status_code == status.HTTP_400_BAD_REQUEST:
            # Invalid input (unknown order, wrong currency) is refused like a serializer error:
            # nothing is stored, so the client may fix the body and retry with the same key.
            IdempotencyRecord.objects.filter(pk=record_id, response_status__isnull=True).delete()
            raise
        # A business refusal is an answer too: the same request must get the same refusal.
        _answer(record_id, exc.status_code, error_body(exc.code, exc.message, exc.fields))
        raise
    except Exception:
        # Unknown outcome (validation handled above): release the claim so the client can retry.
        IdempotencyRecord.objects.filter(pk=record_id, response_status__isnull=True).delete()
        raise
    _answer(record_id, response.status_code, response.data)
    return response


def idempotency_purge(*, older_than: timedelta | None = None) -> int:
    """Forget keys older than the retention period (at least 24 h, per the API contract)."""
    cutoff = timezone.now() - (older_than or settings.IDEMPOTENCY_TTL)
    deleted, _ = IdempotencyRecord.objects.filter(claimed_at__lt=cutoff).delete()
    return deleted
