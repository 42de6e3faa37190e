"""`Idempotency-Key` for POSTs that move money: one key, one side effect, one stored response.

A key is scoped to the caller (merchant) and remembered for `IDEMPOTENCY_TTL`. A repeat with the
same body gets the stored response again with `Idempotent-Replayed: true`; a repeat with a different
body or on another endpoint is a 422; a repeat while the first is still running is a 409.

The claim, the handler's effect and the stored answer commit in ONE transaction, so no fault can
leave an effect without its answer (a retry would repeat it) or an answer without its effect. A
request that dies before its commit leaves nothing behind: the client may retry at once. On
PostgreSQL the claim statement also takes a transaction-scoped advisory lock on the key, without
waiting: a duplicate that arrives while the first runs gets an immediate 409 instead of queueing
behind it; holding the lock, a key already in the table is a committed one (replay or 422). SQLite
runs one writer at a time, so it needs no lock.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiParameter
from rest_framework import status
from rest_framework.response import Response

from apps.common.errors import BadRequestError, ConflictError, ServiceError, UnprocessableError, error_body
from apps.common.models import IdempotencyRecord

logger = logging.getLogger(__name__)

HEADER = "HTTP_IDEMPOTENCY_KEY"
MAX_KEY_LENGTH = 255
# What `_validate_key` accepts, for the schema: printable ASCII, no space at either end.
KEY_PATTERN = r"^[!-~]([ -~]*[!-~])?$"


def idempotency_key_parameter(what: str) -> OpenApiParameter:
    """The `Idempotency-Key` header as the schema documents it, for the views that call `idempotent`."""
    return OpenApiParameter(
        "Idempotency-Key",
        {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH, "pattern": KEY_PATTERN},
        OpenApiParameter.HEADER,
        required=True,
        description=f"Unique per {what} you mean to create; repeating it replays the first response.",
    )


def _validate_key(raw: str | None) -> str:
    if raw is None:
        raise BadRequestError(
            _("This request needs an Idempotency-Key header."),
            code="idempotency_key_missing",
            fields={"Idempotency-Key": [_("Required.")]},
        )
    if not raw or len(raw) > MAX_KEY_LENGTH or not raw.isascii() or not raw.isprintable() or raw.strip() != raw:
        raise BadRequestError(
            _("Idempotency-Key must be 1–255 printable ASCII characters."),
            code="idempotency_key_invalid",
            fields={"Idempotency-Key": [_("1–255 printable ASCII characters.")]},
        )
    return raw


def request_fingerprint(*, endpoint: str, data) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)
    return hashlib.sha256(f"{endpoint}\n{canonical}".encode()).hexdigest()


def _lock_id(scope: str, key: str) -> int:
    """The key's advisory lock: 64 bits of its hash (two keys sharing one only make each other 409)."""
    digest = hashlib.blake2b(f"idempotency\n{scope}\n{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


# The claim and the answer are written out: the ORM's building and compiling of an INSERT and an
# UPDATE cost the request more than the statements themselves. ON CONFLICT DO NOTHING makes a taken
# key an empty result instead of an error, so no savepoint is needed around it.
_TABLE = IdempotencyRecord._meta.db_table
_INSERT = f'INSERT INTO {_TABLE} (scope, "key", endpoint, fingerprint, claimed_at)'
# One round trip on PostgreSQL: try the lock, insert only if it was granted, say which happened.
_PG_CLAIM_SQL = f"""
WITH lock AS (SELECT pg_try_advisory_xact_lock(%s) AS held),
claim AS (
    {_INSERT} SELECT %s, %s, %s, %s, %s FROM lock WHERE held
    ON CONFLICT (scope, "key") DO NOTHING RETURNING id
)
SELECT held, (SELECT id FROM claim) FROM lock
"""  # noqa: S608 - the model's own table name
_CLAIM_SQL = f'{_INSERT} VALUES (%s, %s, %s, %s, %s) ON CONFLICT (scope, "key") DO NOTHING RETURNING id'
_ANSWER_SQL = f"UPDATE {_TABLE} SET response_status = %s, response_body = %s, completed_at = %s WHERE id = %s"  # noqa: S608


def _in_progress() -> ConflictError:
    return ConflictError(
        _("A request with this Idempotency-Key is still being processed; retry shortly."),
        code="idempotency_in_progress",
    )


def _claim(*, scope: str, key: str, endpoint: str, fingerprint: str) -> int | None:
    """Insert the key's record in the current transaction: its id, or None when the key is taken by
    a committed request. Raises ConflictError while another transaction holds the key."""
    row = [scope, key, endpoint, fingerprint, timezone.now()]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(_PG_CLAIM_SQL, [_lock_id(scope, key), *row])
            held, record_id = cursor.fetchone()
            if not held:
                raise _in_progress()
            return record_id
        cursor.execute(_CLAIM_SQL, row)
        claimed = cursor.fetchone()
    return claimed[0] if claimed else None


def _stored(*, scope: str, key: str, endpoint: str, fingerprint: str) -> Response:
    """The answer of a committed request with this key, for a repeat of the same request."""
    record = IdempotencyRecord.objects.filter(scope=scope, key=key).first()
    if record is None:
        # Purged between the claim and this read: the client retries and claims it afresh.
        raise _in_progress()
    if record.endpoint != endpoint or record.fingerprint != fingerprint:
        raise UnprocessableError(
            _("This Idempotency-Key was used with a different request."), code="idempotency_key_reused"
        )
    if record.response_status is None:
        # Written by a version that committed the claim before its effect: whether the effect
        # happened is unknown, so the request is never run again under this key.
        raise _in_progress()
    response = Response(record.response_body, status=record.response_status)
    response["Idempotent-Replayed"] = "true"
    return response


def _answer(record_id: int, status_code: int, body) -> None:
    body = IdempotencyRecord._meta.get_field("response_body").get_db_prep_save(body, connection)
    with connection.cursor() as cursor:
        cursor.execute(_ANSWER_SQL, [status_code, body, timezone.now(), record_id])


def _run(handler: Callable[[], Response]) -> tuple[Response | None, ServiceError | None]:
    """The handler in a savepoint: its response, or the business refusal it raised (its writes undone)."""
    try:
        with transaction.atomic():
            return handler(), None
    except ServiceError as exc:
        if exc.status_code == status.HTTP_400_BAD_REQUEST or exc.code == ServiceError.code:
            # Invalid input (400, or 422 `validation_error`: an unknown order, another currency) is
            # refused like a serializer error: nothing is stored, so the client may fix the body and
            # retry with the same key. Refusals with a code of their own are answers, stored.
            raise
        return None, exc


def idempotent(*, request, scope: str, endpoint: str, handler: Callable[[], Response]) -> Response:
    """Run `handler` at most once per (scope, Idempotency-Key); replay its stored response after.

    One transaction holds the claim, the handler's writes and the stored answer (see the module
    docstring). A business refusal with a code of its own (amount_exceeds_refundable...) is an answer
    too: the handler's writes are rolled back to its savepoint and the refusal is stored and raised.
    Invalid input (400, or 422 `validation_error`) or any other exception rolls everything back,
    claim included. Once the transaction has committed, nothing
    that follows (a failing after-commit hook, a connection lost after COMMIT) changes the answer:
    it is logged and the stored answer is given. Callers: the money-moving POST views (refunds,
    payouts, withdrawals, incident returns).
    """
    key = _validate_key(request.META.get(HEADER))
    fingerprint = request_fingerprint(endpoint=endpoint, data=request.data)
    committed = False
    response: Response | None = None
    refusal: ServiceError | None = None

    def mark_committed() -> None:
        nonlocal committed
        committed = True

    try:
        with transaction.atomic():
            record_id = _claim(scope=scope, key=key, endpoint=endpoint, fingerprint=fingerprint)
            if record_id is None:
                return _stored(scope=scope, key=key, endpoint=endpoint, fingerprint=fingerprint)
            # Registered before the handler's own hooks, so it runs first after COMMIT.
            transaction.on_commit(mark_committed)
            response, refusal = _run(handler)
            if refusal is not None:
                _answer(record_id, refusal.status_code, error_body(refusal.code, refusal.message, refusal.fields))
            else:
                _answer(record_id, response.status_code, response.data)
    except Exception:
        if not committed:
            raise
        logger.exception("after the commit of %s key %r on %s; the stored answer stands", scope, key, endpoint)
    if refusal is not None:
        raise refusal
    return response


def idempotency_purge(*, older_than: timedelta | None = None) -> int:
    """Forget keys older than the retention period (at least 24 h, per the API contract)."""
    cutoff = timezone.now() - (older_than or settings.IDEMPOTENCY_TTL)
    deleted, _ = IdempotencyRecord.objects.filter(claimed_at__lt=cutoff).delete()
    return deleted
