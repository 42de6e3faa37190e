"""Webhook signatures: `X-RefundGuard-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>`.

The HMAC is computed with the channel's webhook secret over `"<t>." + raw body bytes`, so the
exact bytes that were signed must arrive: re-serialising the JSON breaks it. The timestamp bounds
replay: a signature older or newer than the tolerance (300 s) is refused. Parsing is strict:
exactly one `t` and one `v1`, nothing else, no empty parts (the lenient "skip unknown schemes"
reading of Stripe's format would let a header with two `v1` values try its luck twice).
"""

from __future__ import annotations

import hashlib
import hmac
import re

from django.utils.translation import gettext_lazy as _

from apps.gateways.base import WebhookRejected

SIGNATURE_HEADER = "X-RefundGuard-Signature"
DEFAULT_TOLERANCE_SECONDS = 300

_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")


def compute_signature(*, secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def signature_header(*, secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={compute_signature(secret=secret, timestamp=timestamp, body=body)}"


def verify_signature(
    *, header: str | None, body: bytes, secret: str, now: float, tolerance: int = DEFAULT_TOLERANCE_SECONDS
) -> int:
    """Check a signature header against the raw body; returns the signed timestamp.

    Raises WebhookRejected (with a `code` naming the failed check) on any doubt.
    """
    if not secret:
        raise WebhookRejected(_("Channel has no webhook secret configured."), code="signature_unverifiable")
    if header is None or not header.strip():
        raise WebhookRejected(_("Signature header missing or empty."), code="signature_missing")
    values: dict[str, list[str]] = {}
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep or not key or not value:
            raise WebhookRejected(_("Signature header is malformed."), code="signature_malformed")
        values.setdefault(key, []).append(value)
    if set(values) != {"t", "v1"}:
        raise WebhookRejected(_("Signature header must carry exactly t= and v1=."), code="signature_scheme")
    if len(values["t"]) != 1 or len(values["v1"]) != 1:
        raise WebhookRejected(_("Signature header carries several values."), code="signature_malformed")
    raw_timestamp, signature = values["t"][0], values["v1"][0]
    if not _TIMESTAMP.fullmatch(raw_timestamp):
        raise WebhookRejected(_("Signature timestamp is not a number."), code="timestamp_invalid")
    timestamp = int(raw_timestamp)
    if abs(int(now) - timestamp) > tolerance:
        raise WebhookRejected(_("Signature timestamp is outside the tolerance."), code="timestamp_out_of_tolerance")
    if not _HEX_SHA256.fullmatch(signature):
        raise WebhookRejected(_("Signature is not a hex SHA-256."), code="signature_mismatch")
    expected = compute_signature(secret=secret, timestamp=timestamp, body=body)
    if not hmac.compare_digest(expected, signature):
        raise WebhookRejected(_("Signature does not match the body."), code="signature_mismatch")
    return timestamp
