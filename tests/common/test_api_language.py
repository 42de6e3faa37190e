"""The API answers in English unless Accept-Language asks for a language RefundGuard speaks; pages for
people keep the platform's default (zh-hans)."""

from __future__ import annotations

import re

import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

REQUIRED_EN = "This field is required."
REQUIRED_ZH = "该字段是必填项。"


def _field_errors(api, **headers) -> list[str]:
    response = api.post("/api/v1/orders", {"external_id": "o-lang"}, format="json", **headers)
    assert response.status_code == 400
    return response.json()["error"]["fields"]["customer"]


def test_field_errors_are_english_without_accept_language_even_after_a_chinese_customer(api):
    created = api.post(
        "/api/v1/customers",
        {"external_id": "c-lang", "name": "王小明", "phone": "+8613800000000", "locale": "zh-hans"},
        format="json",
    )
    assert created.status_code == 201
    assert _field_errors(api) == [REQUIRED_EN]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("zh-hans", REQUIRED_ZH),
        ("zh-CN,zh;q=0.9,en;q=0.8", REQUIRED_ZH),
        ("en-US,en;q=0.9,zh;q=0.8", REQUIRED_EN),
        ("fr-FR, de;q=0.5", REQUIRED_EN),
        ("*", REQUIRED_EN),
        ("", REQUIRED_EN),
    ],
)
def test_accept_language_chooses_the_language_of_api_errors(api, header, expected):
    assert _field_errors(api, HTTP_ACCEPT_LANGUAGE=header) == [expected]


def test_pages_for_people_keep_the_platform_default(client):
    page = client.get("/accounts/login/")
    assert page.status_code == 200
    assert page["Content-Language"] == "zh-hans"


# --- one language per response ---------------------------------------------------------------------

CJK = re.compile(r"[\u3400-\u9fff\uff00-\uffef]")


def _messages(payload: dict) -> list[str]:
    """The error's message and every field message."""
    error = payload["error"]
    return [error["message"], *(m for messages in error["fields"].values() for m in messages)]


def _common_errors(api, headers: dict) -> dict[str, object]:
    """One response of each common kind: validation (a serializer's and a service's), bad filter,
    not found (DRF's and the JSON middleware's), authentication, state conflict."""
    anonymous = APIClient()
    bad_key = APIClient()
    bad_key.credentials(HTTP_AUTHORIZATION="Bearer rg_not_a_key")
    assert api.post("/api/v1/customers", {"external_id": "c-l", "name": "Wang"}, format="json").status_code == 201
    freeze = api.post("/api/v1/freezes", {"customer": "c-l", "reason": "x"}, format="json", **headers).json()
    assert api.post(f"/api/v1/freezes/{freeze['id']}/lift", {"reason": "ok"}, format="json").status_code == 200
    return {
        "validation": api.post("/api/v1/orders", {"external_id": "o-l", "amount": "x"}, format="json", **headers),
        "filter": api.get("/api/v1/refunds", {"status": "bogus", "limit": "0"}, **headers),
        "not_found": api.get("/api/v1/refunds/999999", **headers),
        "no_route": api.get("/api/v1/no-such-thing", **headers),
        "no_credentials": anonymous.get("/api/v1/refunds", **headers),
        "bad_key": bad_key.get("/api/v1/refunds", **headers),
        "conflict": api.post(f"/api/v1/freezes/{freeze['id']}/lift", {"reason": "again"}, format="json", **headers),
        "webhook": anonymous.post(
            "/webhooks/channels/no-such-channel/", b"{}", content_type="application/json", **headers
        ),
        # A service's refusal, stored as the key's answer on the way out.
        "service": api.post(
            "/api/v1/refunds",
            {"order": "no-such-order", "amount": 100, "reason": "mistake"},
            format="json",
            HTTP_IDEMPOTENCY_KEY=f"lang-{sorted(headers.values())}",
            **headers,
        ),
    }


def test_english_errors_contain_no_chinese(api):
    for kind, response in _common_errors(api, {}).items():
        assert response.status_code >= 400, kind
        body = response.content.decode()
        assert not CJK.search(body), (kind, body)


def test_chinese_errors_contain_no_untranslated_english_message(api):
    for kind, response in _common_errors(api, {"HTTP_ACCEPT_LANGUAGE": "zh-hans"}).items():
        assert response.status_code >= 400, kind
        for message in _messages(response.json()):
            assert CJK.search(message), (kind, message)
