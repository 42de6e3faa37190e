"""`Authorization: Bearer <api key>` for merchant systems.

DRF authenticates before it throttles, so failed authentications are limited here: per client
address, at most RATE_LIMITS["api_auth_failure"] of them answer 401; past that every request from
the address that presents credentials answers 429 with Retry-After until the window ends (a right
key included: otherwise the 429 would tell a guesser which key was right)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NoReturn

from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions

from apps.accounts.models import ApiKey, Merchant
from apps.accounts.services import api_key_authenticate
from apps.common.throttling import client_ip, limit_hit, limit_wait

AUTH_FAILURES = "api_auth_failure"


@dataclass(frozen=True)
class MerchantPrincipal:
    """The caller of an API-key request: acts for exactly one merchant."""

    merchant: Merchant
    api_key: ApiKey
    is_authenticated: bool = True
    is_staff: bool = False

    @property
    def merchant_id(self) -> int:
        return self.merchant.pk

    def get_username(self) -> str:
        return f"api-key:{self.api_key.prefix}"


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request)
        if not header:
            return None
        address = client_ip(request) or "unknown"
        wait = limit_wait(AUTH_FAILURES, address)
        if wait is not None:
            raise exceptions.Throttled(wait, "Too many failed authentications from this address.")
        try:
            text = header.decode("ascii")
        except UnicodeDecodeError:
            self._failed(address, _("Malformed Authorization header."))
        parts = text.split()
        if len(parts) != 2 or parts[0] != self.keyword:
            self._failed(address, _("Use 'Authorization: Bearer <api key>'."))
        key = api_key_authenticate(raw_key=parts[1])
        if key is None:
            self._failed(address, _("Invalid or revoked API key."))
        return MerchantPrincipal(merchant=key.merchant, api_key=key), key

    @staticmethod
    def _failed(address: str, message: str) -> NoReturn:
        """Count the failure, then refuse: 401, or 429 once it is over the limit."""
        wait = limit_hit(AUTH_FAILURES, address)
        if wait is not None:
            raise exceptions.Throttled(wait, "Too many failed authentications from this address.")
        raise exceptions.AuthenticationFailed(message)

    def authenticate_header(self, request):
        return self.keyword
