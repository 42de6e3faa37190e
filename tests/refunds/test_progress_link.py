"""G11: customer progress links are signed, expiring, single-object and read-only (/r/<token>/)."""

from __future__ import annotations

import random
import secrets
import string
from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.utils import timezone

from apps.refunds.models import Refund, RefundEvent
from apps.refunds.services import refund_get_by_progress_token, refund_progress_token
from tests.refunds.support import body, make_order, post_refund

pytestmark = pytest.mark.django_db

INVALID_MARK = "Link invalid or expired"


@pytest.fixture(autouse=True)
def _guesses_not_limited(settings):
    """These tests are about what a token finds, hundreds of times from one address; how many misses
    an address may make is tests/track/test_link_guessing.py's."""
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "progress_link_miss": "100000/hour"}


def _path(token: str) -> str:
    return f"/r/{token}/"


@pytest.fixture
def refund(api, merchant) -> Refund:
    order = make_order(merchant, amount=10000, last4="4321")
    response = post_refund(api, body(order, amount=3456))
    assert response.status_code == 201
    return Refund.objects.get(pk=response.json()["id"])


def _flip(char: str) -> str:
    return "B" if char != "B" else "C"


def test_progress_url_opens_the_page(client, refund):
    response = client.get(_path(refund_progress_token(refund)))

    assert response.status_code == 200
    page = response.content.decode()
    assert "34.56" in page  # amounts are shown formatted in the customer's currency
    assert "**** 4321" in page


def test_progress_url_in_api_response_works(client, api, merchant):
    order = make_order(merchant, amount=10000)
    data = post_refund(api, body(order, amount=777)).json()
    path = data["progress_url"].removeprefix(settings.PUBLIC_BASE_URL.rstrip("/"))

    response = client.get(path)

    assert response.status_code == 200
    assert "7.77" in response.content.decode()


@pytest.mark.parametrize("position", [0, 5, 10, -1, -5, -20])
def test_changing_one_character_gives_the_invalid_page(client, refund, position):
    token = refund_progress_token(refund)
    chars = list(token)
    index = position % len(chars)
    chars[index] = _flip(chars[index])
    tampered = "".join(chars)
    assert tampered != token

    response = client.get(_path(tampered))

    assert response.status_code == 404
    page = response.content.decode()
    assert INVALID_MARK in page
    assert "3456" not in page


def test_every_single_character_change_is_rejected(client, refund):
    token = refund_progress_token(refund)
    for index in range(len(token)):
        tampered = token[:index] + _flip(token[index]) + token[index + 1 :]
        assert client.get(_path(tampered)).status_code == 404, index


def test_link_expires_after_max_age(client, refund):
    token = refund_progress_token(refund)
    max_age = settings.REFUND_LINK_MAX_AGE

    with time_machine.travel(timezone.now() + max_age - timedelta(seconds=5)):
        assert client.get(_path(token)).status_code == 200
    with time_machine.travel(timezone.now() + max_age + timedelta(seconds=1)):
        response = client.get(_path(token))

    assert response.status_code == 404
    assert INVALID_MARK in response.content.decode()


def test_link_for_x_never_shows_y(client, api, merchant, refund):
    other = make_order(merchant, amount=10000, last4="8765")
    y = Refund.objects.get(pk=post_refund(api, body(other, amount=9871)).json()["id"])

    page_x = client.get(_path(refund_progress_token(refund))).content.decode()
    page_y = client.get(_path(refund_progress_token(y))).content.decode()

    assert "34.56" in page_x
    assert "98.71" not in page_x
    assert "8765" not in page_x
    assert "98.71" in page_y
    assert "34.56" not in page_y


def test_swapped_public_token_is_not_a_link(client, refund):
    # The raw public token (unsigned) and another refund's signature must not open anything.
    assert client.get(_path(refund.public_token)).status_code == 404


def test_random_tokens_never_hit(client, refund):
    alphabet = string.ascii_letters + string.digits + "-_:"
    hits = 0
    for _ in range(200):
        token = "".join(secrets.choice(alphabet) for _ in range(secrets.choice([20, 43, 60, 90])))
        if client.get(_path(token)).status_code != 404:
            hits += 1
    assert hits == 0


def test_ten_thousand_random_and_near_miss_tokens_resolve_to_nothing(refund):
    """G11 at full strength, at the lookup every link goes through: random strings of the link's
    own alphabet and lengths, and the real token with one character changed, never find a refund."""
    real = refund_progress_token(refund)
    alphabet = string.ascii_letters + string.digits + "-_:"
    rng = random.Random(20261207)
    tried: set[str] = set()
    while len(tried) < 10_000:
        if len(tried) % 2:
            tried.add("".join(rng.choice(alphabet) for _ in range(len(real))))
        else:
            position = rng.randrange(len(real))
            tried.add(real[:position] + rng.choice(alphabet.replace(real[position], "")) + real[position + 1 :])
    assert refund_get_by_progress_token(real) == refund
    assert [token for token in tried if refund_get_by_progress_token(token) is not None] == []


def test_page_shows_no_full_account_number(client, refund):
    number = refund.destination_account.reveal_number()

    page = client.get(_path(refund_progress_token(refund))).content.decode()

    assert number not in page
    assert number[:6] + number[6:-4] not in page
    assert "**** 4321" in page


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_page_is_read_only(client, refund, method):
    before = (Refund.objects.get(pk=refund.pk).status, RefundEvent.objects.count())

    response = getattr(client, method)(_path(refund_progress_token(refund)))

    # POST is the account-change form, accepted only while the refund needs the customer's action
    # (tests/track): for any other refund it is refused with 409 and writes nothing.
    assert response.status_code == (409 if method == "post" else 405)
    assert (Refund.objects.get(pk=refund.pk).status, RefundEvent.objects.count()) == before
