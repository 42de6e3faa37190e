"""The API's per-key rate limit: each API key is counted on its own, at its merchant's rate
(`Merchant.api_rate_per_minute`, set in the admin) or RATE_LIMITS["api_key"] when that is empty.
Keys of one merchant do not share a budget: a merchant's batch job on one key leaves its
checkout's key alone."""

from __future__ import annotations

from apps.accounts.models import ApiKey
from apps.common.throttling import CountingThrottle, rate_for


class ApiKeyThrottle(CountingThrottle):
    scope = "api_key"

    def ident_for(self, request) -> str | None:
        key = request.auth
        return str(key.pk) if isinstance(key, ApiKey) else None

    def rate_for(self, request) -> str:
        per_minute = request.auth.merchant.api_rate_per_minute
        return f"{per_minute}/min" if per_minute else rate_for(self.scope)
