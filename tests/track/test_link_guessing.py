"""Progress-link guessing: lookups that find nothing are counted per client address, and past the
limit they answer 429 with Retry-After; a link that works keeps working, from any address."""

from __future__ import annotations

import pytest

from tests.track.test_progress_pages import make_refund, url

pytestmark = pytest.mark.django_db

GUESSER = "198.51.100.23"


@pytest.fixture
def misses(settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "progress_link_miss": "5/hour"}


def test_guessing_is_locked_out_while_a_valid_link_keeps_working(misses, client):
    refund = make_refund(status="processing")
    guesses = ["/r/guess{}/", "/r/w/guess{}/", "/r/c/guess{}/", "/r/guess{}/inbox/"]
    statuses = [client.get(guesses[n % 4].format(n), REMOTE_ADDR=GUESSER).status_code for n in range(5)]
    assert statuses == [404] * 5

    page = client.get("/r/guess-more/", REMOTE_ADDR=GUESSER)
    assert page.status_code == 429
    assert int(page["Retry-After"]) >= 1
    assert page["Content-Type"].startswith("text/html")
    assert 'data-testid="throttled"' in page.content.decode()
    inbox = client.get("/r/guess-more/inbox/", REMOTE_ADDR=GUESSER)
    assert inbox.status_code == 429
    assert inbox.json()["error"]["code"] == "throttled"
    assert int(inbox["Retry-After"]) >= 1

    for _ in range(10):  # the customer reloading their own link, from the same network
        assert client.get(url(refund), REMOTE_ADDR=GUESSER).status_code == 200
    assert client.get(url(refund) + "inbox/", REMOTE_ADDR=GUESSER).status_code == 200

    assert client.get("/r/guess-again/", REMOTE_ADDR="198.51.100.24").status_code == 404
