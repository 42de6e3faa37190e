"""The API answers in English unless Accept-Language asks for a language RefundGuard speaks; pages for
people keep the platform's default (zh-hans)."""

from __future__ import annotations

import pytest

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
