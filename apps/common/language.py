"""The API speaks English unless the client asks otherwise (DESIGN.md, API contract).

Pages for people default to the platform's language (LANGUAGE_CODE, zh-hans) through Django's
LocaleMiddleware. Machines calling `/api/` and `/webhooks/` get English messages — field errors
included — unless their `Accept-Language` names a language RefundGuard speaks; a merchant's
integration must not start reading Chinese because the platform's default is Chinese.
"""

from __future__ import annotations

from django.utils import translation
from django.utils.translation.trans_real import parse_accept_lang_header

from apps.common.middleware import MACHINE_PREFIXES

MACHINE_DEFAULT = "en"


def machine_language(accept_language: str) -> str:
    """The first supported language the header asks for (by its q-values), else English."""
    for code, _quality in parse_accept_lang_header(accept_language):
        if code == "*":
            break
        try:
            return translation.get_supported_language_variant(code)
        except LookupError:
            continue
    return MACHINE_DEFAULT


class MachineLanguageMiddleware:
    """After LocaleMiddleware: `/api/` and `/webhooks/` answer in English unless asked otherwise."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        if request.path_info.startswith(MACHINE_PREFIXES):
            language = machine_language(request.META.get("HTTP_ACCEPT_LANGUAGE", ""))
            translation.activate(language)
            request.LANGUAGE_CODE = language
        return self.get_response(request)
