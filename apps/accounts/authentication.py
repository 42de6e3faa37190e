"""`Authorization: Bearer <api key>` for merchant systems."""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions

from apps.accounts.models import ApiKey, Merchant
from apps.accounts.services import api_key_authenticate


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
        try:
            text = header.decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed(_("Malformed Authorization header.")) from None
        parts = text.split()
        if len(parts) != 2 or parts[0] != self.keyword:
            raise exceptions.AuthenticationFailed(_("Use 'Authorization: Bearer <api key>'."))
        key = api_key_authenticate(raw_key=parts[1])
        if key is None:
            raise exceptions.AuthenticationFailed(_("Invalid or revoked API key."))
        return MerchantPrincipal(merchant=key.merchant, api_key=key), key

    def authenticate_header(self, request):
        return self.keyword
