"""Normalised reasons: what a channel's failure means for us, whichever channel said it.

Adapters map their own raw codes onto these (see each adapter's `RAW_CODES`). `responsible_party`
is what the customer and staff are told ("your bank account is frozen" is the customer's to fix,
"the bank's daily limit was reached" is not); `retryable` says whether the same request may simply
be tried again later, after a query where the outcome is unknown.
"""

from __future__ import annotations

from apps.gateways.base import Party, Reason


def _reason(code: str, *, retryable: bool, party: Party) -> Reason:
    return Reason(code=code, retryable=retryable, responsible_party=party, message_key=f"transfer.reason.{code}")


ACCOUNT_FROZEN = _reason("account_frozen", retryable=False, party=Party.CUSTOMER)
HOLDER_NAME_MISMATCH = _reason("holder_name_mismatch", retryable=False, party=Party.CUSTOMER)
ACCOUNT_CLOSED = _reason("account_closed", retryable=False, party=Party.CUSTOMER)
CHANNEL_LIMIT = _reason("channel_limit", retryable=True, party=Party.BANK)
# Held for the bank's own review: nothing to retry, the bank releases or rejects it.
RISK_HOLD = _reason("risk_hold", retryable=False, party=Party.BANK)
# No answer in time. Retryable only after a query proved the request was not executed.
TIMEOUT = _reason("timeout", retryable=True, party=Party.BANK)
OUTAGE = _reason("outage", retryable=True, party=Party.BANK)
# The request itself was refused as malformed or conflicting: our bug, never retried blindly.
REQUEST_INVALID = _reason("request_invalid", retryable=False, party=Party.PLATFORM)
# A code no table knows yet: a person looks at it before anything is retried.
UNKNOWN = _reason("unknown", retryable=False, party=Party.BANK)

REASONS: dict[str, Reason] = {
    reason.code: reason
    for reason in (
        ACCOUNT_FROZEN,
        HOLDER_NAME_MISMATCH,
        ACCOUNT_CLOSED,
        CHANNEL_LIMIT,
        RISK_HOLD,
        TIMEOUT,
        OUTAGE,
        REQUEST_INVALID,
        UNKNOWN,
    )
}
