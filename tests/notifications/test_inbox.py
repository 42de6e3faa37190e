"""The customer's inbox: through the merchant API (`/api/v1/customers/{external_id}/inbox`), which
lists that customer's inbox messages newest first and marks them read (counting exactly the rows it
changed; a bad body is refused and writes nothing), and through a refund's progress link
(`/r/<token>/inbox/`), which shows only the messages about that refund and writes nothing."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
import time_machine
from django.conf import settings
from django.utils import timezone

from apps.notifications import services
from apps.notifications.models import Notification
from apps.refunds.models import Refund
from apps.refunds.services import refund_progress_token
from tests.factories import CustomerFactory, OrderFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

CONTEXT = {"amount": "¥199.00", "party": "bank", "bank": "工商银行"}
INBOX, READ = "/api/v1/customers/{}/inbox", "/api/v1/customers/{}/inbox/read"


def notify(recipient, event_key: str, *, priority: str = "medium", reference: str = "o-1", now=None) -> int:
    return services.notify(
        recipient=recipient,
        template_key="refund_delayed",
        priority=priority,
        event_key=event_key,
        context=CONTEXT,
        reference=reference,
        link="http://x/r/t/",
        now=now,
    )


def make_refund(customer) -> Refund:
    order = OrderFactory(
        merchant=customer.merchant, customer=customer, amount=19900, external_id=f"ord-{customer.external_id}"
    )
    return Refund.objects.create(
        merchant=customer.merchant,
        order=order,
        customer=customer,
        amount=19900,
        currency="CNY",
        reason="mistake",
        status="submitted",
    )


@pytest.fixture
def carol(merchant):
    return CustomerFactory(merchant=merchant, external_id="carol", phone="+8613800000001", locale="zh-hans")


@pytest.fixture
def dave(merchant):
    return CustomerFactory(merchant=merchant, external_id="dave", phone="+8613800000002", locale="en")


@pytest.fixture
def inbox(carol, dave):
    """Carol: three causes an hour apart (o-1 oldest, o-3 newest), each with an inbox row; Dave: one."""
    start = timezone.now() - dt.timedelta(hours=3)
    for n in (1, 2, 3):
        notify(carol, f"refund:{n}:delayed", reference=f"o-{n}", now=start + dt.timedelta(hours=n))
    notify(dave, "refund:9:delayed", reference="o-9", priority="high")
    carols = list(
        Notification.objects.filter(customer=carol, channel="inbox")
        .order_by("-created_at")
        .values_list("pk", flat=True)
    )
    return {
        "carol": carols,
        "dave": list(Notification.objects.filter(customer=dave, channel="inbox").values_list("pk", flat=True)),
    }


def read_at_of(**filters) -> list:
    return sorted(Notification.objects.filter(**filters).values_list("pk", "read_at"))


def unread(customer) -> int:
    return Notification.objects.filter(customer=customer, channel="inbox", read_at__isnull=True).count()


# --- merchant API ----------------------------------------------------------------------------


def test_inbox_lists_only_that_customers_inbox_rows_newest_first(api, inbox, carol):
    response = api.get(INBOX.format("carol"))

    assert response.status_code == 200, response.content
    body = response.json()
    assert [row["id"] for row in body["results"]] == inbox["carol"]
    assert [row["reference"] for row in body["results"]] == ["o-3", "o-2", "o-1"]
    assert body["count"] == 3
    assert body["unread_count"] == 3
    assert Notification.objects.filter(customer=carol).count() == 6  # push rows are not in the inbox
    first = body["results"][0]
    assert set(first) == {
        "id",
        "priority",
        "template_key",
        "title",
        "body",
        "link",
        "reference",
        "read_at",
        "created_at",
    }
    assert first["title"] == "退款延迟到账"
    assert "工商银行" in first["body"]


def test_inbox_is_paginated_and_unread_count_covers_all_pages(api, inbox):
    body = api.get(INBOX.format("carol"), {"limit": 1}).json()

    assert len(body["results"]) == 1
    assert body["count"] == 3
    assert body["unread_count"] == 3
    assert body["next"]


def test_mark_read_by_ids_counts_exactly_the_rows_it_changed(api, inbox, carol, dave):
    newest, middle, oldest = inbox["carol"]

    first = api.post(READ.format("carol"), {"ids": [newest, middle]}, format="json")
    again = api.post(READ.format("carol"), {"ids": [newest]}, format="json")

    assert first.status_code == 200
    assert first.json() == {"marked": 2}
    assert again.json() == {"marked": 0}
    assert Notification.objects.get(pk=oldest).read_at is None
    assert Notification.objects.filter(pk__in=[newest, middle], read_at__isnull=False).count() == 2
    listing = api.get(INBOX.format("carol")).json()
    assert listing["unread_count"] == 1
    assert [row["read_at"] is not None for row in listing["results"]] == [True, True, False]
    assert unread(dave) == 1


def test_mark_read_ignores_other_customers_and_non_inbox_ids(api, inbox, carol, dave):
    push = Notification.objects.filter(customer=carol, channel="push").values_list("pk", flat=True)
    before = read_at_of()

    response = api.post(READ.format("carol"), {"ids": [*inbox["dave"], *push, 10**9]}, format="json")

    assert response.json() == {"marked": 0}
    assert read_at_of() == before


def test_mark_all_read(api, inbox, carol, dave):
    api.post(READ.format("carol"), {"ids": [inbox["carol"][0]]}, format="json")

    response = api.post(READ.format("carol"), {"all": True}, format="json")

    assert response.json() == {"marked": 2}
    assert unread(carol) == 0
    assert unread(dave) == 1
    assert api.post(READ.format("carol"), {"all": True}, format="json").json() == {"marked": 0}


# {}, {"all": false} and both keys at once are well-formed but break a rule the schema cannot state (422).
RULE_BODIES = ({}, {"all": False}, {"ids": [1], "all": True})
BAD_BODIES = [
    ({}, "non_field_errors"),
    ({"ids": []}, "ids"),
    ({"ids": "1"}, "ids"),
    ({"ids": [0]}, "ids.0"),
    ({"ids": [-1]}, "ids.0"),
    ({"ids": [2**64]}, "ids.0"),
    ({"ids": ["x"]}, "ids.0"),
    ({"ids": list(range(1, 502))}, "ids"),
    ({"all": False}, "all"),
    ({"all": "true"}, "all"),
    ({"all": 1}, "all"),
    ({"ids": [1], "all": True}, "non_field_errors"),
    ({"everything": True}, "everything"),
]


@pytest.mark.parametrize(("body", "field"), BAD_BODIES)
def test_bad_mark_read_body_is_400_and_nothing_written(api, inbox, body, field):
    before = read_at_of()

    response = api.post(READ.format("carol"), body, format="json")

    assert response.status_code == (422 if body in RULE_BODIES else 400), response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    if field == "non_field_errors":
        assert error["fields"] == {}
    else:
        assert field in error["fields"], error
    assert read_at_of() == before


@pytest.mark.parametrize("raw", ["[1, 2]", '"all"', "null", "{not json"])
def test_mark_read_body_that_is_not_an_object_is_400(api, inbox, raw):
    before = read_at_of()

    response = api.generic("POST", READ.format("carol"), data=raw, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] in {"validation_error", "parse_error"}
    assert read_at_of() == before


def test_other_merchants_customer_inbox_is_404_and_nothing_marked(other_api, inbox):
    before = read_at_of()

    listing = other_api.get(INBOX.format("carol"))
    marking = other_api.post(READ.format("carol"), {"all": True}, format="json")

    assert listing.status_code == marking.status_code == 404
    assert marking.json()["error"]["code"] == "not_found"
    assert "o-1" not in listing.content.decode()
    assert read_at_of() == before


# --- the customer's own inbox, from the progress link -----------------------------------------


@pytest.fixture
def carols_refund(carol) -> Refund:
    return make_refund(carol)


@pytest.fixture
def carols_link(carols_refund) -> str:
    return refund_progress_token(carols_refund)


@pytest.fixture
def about_the_refund(carol, carols_refund, inbox) -> list[int]:
    """Two messages about Carol's refund (besides her three others in `inbox`), newest first."""
    start = timezone.now() - dt.timedelta(minutes=30)
    for n, code in enumerate(("manual_review", "approved")):
        services.notify(
            recipient=carol,
            template_key="refund_delayed",
            priority="medium",
            event_key=f"refund:{carols_refund.pk}:{code}",
            context=CONTEXT,
            subject_type="refund",
            subject_id=carols_refund.pk,
            reference=carols_refund.order.external_id,
            link="http://x/r/t/",
            now=start + dt.timedelta(minutes=n),
        )
    return list(
        Notification.objects.filter(channel="inbox", subject_type="refund", subject_id=carols_refund.pk)
        .order_by("-created_at")
        .values_list("pk", flat=True)
    )


def test_progress_link_inbox_lists_only_that_refunds_messages(
    client, inbox, about_the_refund, carols_link, carols_refund
):
    response = client.get(f"/r/{carols_link}/inbox/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert [row["id"] for row in body["results"]] == about_the_refund
    assert body["unread_count"] == 2
    # Carol's other orders (o-1…o-3) and Dave's (o-9) are nowhere in the answer.
    assert {row["reference"] for row in body["results"]} == {carols_refund.order.external_id}
    others = re.compile(r"\bo-[1239]\b")
    assert not others.search(response.content.decode())


@pytest.mark.parametrize("token", ["nonsense", "eyJhIjoxfQ:1abc:forged"])
def test_tampered_link_shows_nothing(client, inbox, token):
    listing = client.get(f"/r/{token}/inbox/")

    assert listing.status_code == 404
    assert listing.json()["error"]["code"] == "not_found"


def test_expired_link_shows_nothing(client, inbox, about_the_refund, carols_link):
    with time_machine.travel(timezone.now() + settings.REFUND_LINK_MAX_AGE + dt.timedelta(minutes=1)):
        listing = client.get(f"/r/{carols_link}/inbox/")

    assert listing.status_code == 404
    assert "results" not in listing.json()


def test_progress_link_inbox_is_read_only(client, inbox, about_the_refund, carols_link):
    before = read_at_of()

    assert client.post(f"/r/{carols_link}/inbox/").status_code == 405
    assert (
        client.post(
            f"/r/{carols_link}/inbox/read", data=json.dumps({"all": True}), content_type="application/json"
        ).status_code
        == 404
    )
    assert read_at_of() == before
