"""G10: one merchant never reads or changes another's data.

Another merchant's objects do not exist for the caller: every lookup is a 404 with the error
shape (never a 403, which would confirm the id exists), identical to the answer for an id that
exists nowhere, and no row is written.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.models import BankAccount, Customer
from apps.common.models import IdempotencyRecord
from apps.orders.models import Order, Product, UsageEvent
from apps.orders.services import order_create, usage_record
from apps.payouts.incidents import incident_open
from apps.payouts.models import Approval, Disbursement, DisbursementEvent, Incident, IncidentStep, PrecheckResult
from apps.payouts.services import payout_create, withdrawal_create
from tests.factories import CustomerFactory, ProductFactory, StaffFactory
from tests.support import FOUNDATION_TABLES, count_rows

pytestmark = pytest.mark.django_db

COUNTED = FOUNDATION_TABLES
MISSING_ID = 10**9
HUGE_IDS = [2**63 - 1, 2**63, 2**64, 10**30]


def row_counts() -> dict[str, int]:
    return count_rows(COUNTED)


def assert_not_found(response) -> None:
    assert response.status_code == 404, (response.status_code, response.content)
    body = response.json()
    assert body["error"]["code"] == "not_found"
    assert body["error"]["fields"] == {}
    assert set(body["error"]) == {"code", "message", "fields"}


def _world(merchant, tag: str) -> dict:
    customer = CustomerFactory(merchant=merchant, external_id=f"{tag}-cust", name=f"{tag} customer")
    referrer = CustomerFactory(merchant=merchant, external_id=f"{tag}-ref")
    product = ProductFactory(merchant=merchant, sku=f"{tag}-sku", name=f"{tag} product")
    order = order_create(
        merchant=merchant,
        external_id=f"{tag}-order",
        customer_external_id=customer.external_id,
        product_sku=product.sku,
        amount=19900,
        currency="CNY",
        paid_at=timezone.now() - dt.timedelta(minutes=10),
        payment_method="card",
        payer_account={"holder_name": "Holder", "bank": "ICBC", "account_number": "6222020000001234"},
    )
    event = usage_record(order=order, kind="progress", value=5)
    return {"customer": customer, "referrer": referrer, "product": product, "order": order, "event": event}


@pytest.fixture
def a_world(merchant) -> dict:
    return _world(merchant, "a")


@pytest.fixture
def b_world(other_merchant) -> dict:
    return _world(other_merchant, "b")


# (method, URL template, body, object kind) for every detail endpoint and method it serves.
DETAIL_CALLS = [
    ("GET", "/api/v1/customers/{id}", None, "customer"),
    ("PATCH", "/api/v1/customers/{id}", {"name": "taken over", "phone": "+8613800000009"}, "customer"),
    ("GET", "/api/v1/products/{id}", None, "product"),
    (
        "PATCH",
        "/api/v1/products/{id}",
        {"name": "taken over", "price": 1, "is_active": False, "refund_policy": {"max_progress_pct": 100}},
        "product",
    ),
    ("GET", "/api/v1/orders/{id}", None, "order"),
    ("GET", "/api/v1/orders/{id}/usage", None, "order"),
    ("POST", "/api/v1/orders/{id}/usage", {"kind": "download"}, "order"),
]
DETAIL_IDS = [f"{method} {url}" for method, url, _, _ in DETAIL_CALLS]


def call(client: APIClient, method: str, url: str, body: dict | None):
    if body is None:
        return client.generic(method, url)
    return client.generic(method, url, data=json.dumps(body), content_type="application/json")


def _snapshot_of(world: dict) -> dict:
    customer = Customer.objects.get(pk=world["customer"].pk)
    product = Product.objects.select_related("refund_policy").get(pk=world["product"].pk)
    return {
        "customer": (customer.name, customer.phone, customer.email, customer.locale),
        "product": (product.name, product.price, product.is_active, product.refund_policy.max_progress_pct),
        "usage": list(UsageEvent.objects.filter(order=world["order"]).values_list("kind", "value")),
    }


@pytest.mark.parametrize(("method", "url", "body", "kind"), DETAIL_CALLS, ids=DETAIL_IDS)
def test_own_objects_are_reachable(api, a_world, method, url, body, kind):
    """Control: the same calls succeed for the owner, so the 404s below mean isolation."""
    response = call(api, method, url.format(id=a_world[kind].pk), body)

    assert response.status_code in {200, 201}, response.content


@pytest.mark.parametrize(("method", "url", "body", "kind"), DETAIL_CALLS, ids=DETAIL_IDS)
def test_other_merchants_object_is_404_and_nothing_written(other_api, a_world, b_world, method, url, body, kind):
    before_rows, before_a = row_counts(), _snapshot_of(a_world)

    response = call(other_api, method, url.format(id=a_world[kind].pk), body)

    assert_not_found(response)
    assert row_counts() == before_rows
    assert _snapshot_of(a_world) == before_a


@pytest.mark.parametrize(("method", "url", "body", "kind"), DETAIL_CALLS, ids=DETAIL_IDS)
def test_other_merchants_object_answers_exactly_like_a_missing_one(other_api, a_world, method, url, body, kind):
    foreign = call(other_api, method, url.format(id=a_world[kind].pk), body)
    missing = call(other_api, method, url.format(id=MISSING_ID), body)

    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == missing.json()


@pytest.mark.parametrize(
    ("method", "url", "body", "kind"),
    [
        ("PATCH", "/api/v1/customers/{id}", {"referrer": "x", "trust_level": "trusted"}, "customer"),
        ("PATCH", "/api/v1/products/{id}", {"sku": "x", "price": -1}, "product"),
        ("POST", "/api/v1/orders/{id}/usage", {"kind": "bogus", "value": 1000}, "order"),
    ],
    ids=["customer", "product", "usage"],
)
def test_invalid_body_on_foreign_object_is_404_not_400(other_api, a_world, method, url, body, kind):
    """A 400 would show the object exists (the lookup passed); the lookup must come first."""
    before = row_counts()

    response = call(other_api, method, url.format(id=a_world[kind].pk), body)

    assert_not_found(response)
    assert row_counts() == before


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("PUT", "/api/v1/customers/{customer}"),
        ("DELETE", "/api/v1/customers/{customer}"),
        ("PUT", "/api/v1/products/{product}"),
        ("DELETE", "/api/v1/products/{product}"),
        ("PUT", "/api/v1/orders/{order}"),
        ("PATCH", "/api/v1/orders/{order}"),
        ("DELETE", "/api/v1/orders/{order}"),
        ("DELETE", "/api/v1/orders/{order}/usage"),
    ],
)
def test_unsupported_methods_do_not_reveal_or_write(api, other_api, a_world, method, url):
    before, before_a = row_counts(), _snapshot_of(a_world)
    ids = {k: a_world[k].pk for k in ("customer", "product", "order")}
    body = json.dumps({"name": "x"})

    foreign = other_api.generic(method, url.format(**ids), data=body, content_type="application/json")
    missing = other_api.generic(
        method, url.format(**dict.fromkeys(ids, MISSING_ID)), data=body, content_type="application/json"
    )
    own = api.generic(method, url.format(**ids), data=body, content_type="application/json")

    assert foreign.status_code == missing.status_code == own.status_code == 405
    assert foreign.json()["error"]["code"] == "method_not_allowed"
    assert foreign.json() == missing.json()
    assert row_counts() == before
    assert _snapshot_of(a_world) == before_a


# --- list endpoints --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "kind"),
    [("/api/v1/customers", "customer"), ("/api/v1/products", "product"), ("/api/v1/orders", "order")],
)
def test_lists_show_only_own_rows(api, other_api, a_world, b_world, url, kind):
    model = type(a_world[kind])
    a_ids = set(model.objects.filter(merchant=a_world[kind].merchant).values_list("pk", flat=True))
    b_ids = set(model.objects.filter(merchant=b_world[kind].merchant).values_list("pk", flat=True))
    assert a_ids
    assert b_ids

    seen_by_b = {row["id"] for row in other_api.get(url, {"limit": 200}).json()["results"]}
    seen_by_a = {row["id"] for row in api.get(url, {"limit": 200}).json()["results"]}

    assert seen_by_b == b_ids
    assert seen_by_a == a_ids
    assert other_api.get(url).json()["count"] == len(b_ids)


@pytest.mark.parametrize(
    ("url", "param", "value"),
    [
        ("/api/v1/customers", "external_id", "a-cust"),
        ("/api/v1/products", "sku", "a-sku"),
        ("/api/v1/orders", "external_id", "a-order"),
    ],
)
def test_list_filters_never_find_other_merchants_rows(api, other_api, a_world, b_world, url, param, value):
    assert api.get(url, {param: value}).json()["count"] == 1

    response = other_api.get(url, {param: value})

    assert response.status_code == 200
    assert response.json()["count"] == 0
    assert response.json()["results"] == []


def test_usage_list_shows_only_that_orders_events(other_api, a_world, b_world):
    response = other_api.get(f"/api/v1/orders/{b_world['order'].pk}/usage")

    assert response.status_code == 200
    assert [row["id"] for row in response.json()["results"]] == [b_world["event"].pk]


def test_list_responses_carry_no_other_merchants_text(other_api, a_world, b_world):
    for url in ("/api/v1/customers", "/api/v1/products", "/api/v1/orders"):
        text = other_api.get(url).content.decode()
        for marker in ("a-cust", "a-ref", "a-sku", "a-order", "a customer", "a product"):
            assert marker not in text, (url, marker)


# --- references inside bodies ----------------------------------------------------------------


def _order_body(**overrides) -> dict:
    body = {
        "external_id": "b-new-order",
        "customer": "b-cust",
        "product": "b-sku",
        "amount": 19900,
        "currency": "CNY",
        "paid_at": "2026-01-01T10:00:00Z",
        "payment_method": "card",
    }
    body.update(overrides)
    return body


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"customer": "a-cust"}, "customer"),
        ({"product": "a-sku"}, "product"),
        ({"referrer": "a-ref"}, "referrer"),
    ],
    ids=["customer", "product", "referrer"],
)
def test_order_referencing_other_merchants_objects_is_422(other_api, a_world, b_world, overrides, field):
    before = row_counts()

    response = other_api.post("/api/v1/orders", _order_body(**overrides), format="json")

    assert response.status_code == 422, response.content
    assert response.json()["error"]["code"] == "validation_error"
    assert field in response.json()["error"]["fields"]
    assert row_counts() == before


def test_order_referencing_only_foreign_objects_names_every_field(other_api, a_world, b_world):
    before = row_counts()

    response = other_api.post(
        "/api/v1/orders",
        _order_body(customer="a-cust", product="a-sku", referrer="a-ref"),
        format="json",
    )

    assert response.status_code == 422
    assert {"customer", "product", "referrer"} <= set(response.json()["error"]["fields"])
    assert row_counts() == before


def test_customer_with_other_merchants_referrer_is_422(other_api, a_world, b_world):
    before = row_counts()

    response = other_api.post(
        "/api/v1/customers", {"external_id": "b-new", "name": "n", "referrer": "a-ref"}, format="json"
    )

    assert response.status_code == 422, response.content
    assert response.json()["error"]["code"] == "validation_error"
    assert "referrer" in response.json()["error"]["fields"]
    assert row_counts() == before


@pytest.mark.parametrize(
    ("url", "body"),
    [
        ("/api/v1/customers", {"external_id": "a-cust", "name": "B's own"}),
        ("/api/v1/products", {"sku": "a-sku", "name": "B's own", "kind": "course", "price": 100, "currency": "CNY"}),
        ("/api/v1/orders", _order_body(external_id="a-order")),
    ],
    ids=["customer", "product", "order"],
)
def test_same_merchant_ids_in_two_merchants_do_not_collide(other_api, a_world, b_world, url, body):
    """A 409 here would tell B that A uses this external_id or sku."""
    response = other_api.post(url, body, format="json")

    assert response.status_code == 201, response.content


def test_same_account_number_gives_each_merchant_its_own_bank_account(other_api, a_world, b_world, other_merchant):
    a_account = a_world["order"].payer_account
    before = BankAccount.objects.count()

    response = other_api.post(
        "/api/v1/orders",
        _order_body(
            customer="b-ref",
            payer_account={"holder_name": "Someone", "bank": "ICBC", "account_number": a_account.reveal_number()},
        ),
        format="json",
    )

    assert response.status_code == 201, response.content
    order = Order.objects.select_related("payer_account").get(pk=response.json()["id"])
    assert order.payer_account.merchant_id == other_merchant.pk
    assert order.payer_account_id not in {a_account.pk, b_world["order"].payer_account_id}
    assert order.payer_account.holder_name == "Someone"
    assert BankAccount.objects.count() == before + 1
    a_account.refresh_from_db()
    assert a_account.holder_name == "Holder"


# --- walking ids -----------------------------------------------------------------------------

WALKED = [
    ("GET", "/api/v1/customers/{id}", None, Customer),
    ("PATCH", "/api/v1/customers/{id}", {"name": "walker"}, Customer),
    ("GET", "/api/v1/products/{id}", None, Product),
    ("PATCH", "/api/v1/products/{id}", {"name": "walker"}, Product),
    ("GET", "/api/v1/orders/{id}", None, Order),
    ("GET", "/api/v1/orders/{id}/usage", None, Order),
    ("POST", "/api/v1/orders/{id}/usage", {"kind": "download"}, Order),
]


@pytest.fixture
def a_many(merchant) -> dict:
    """Enough of A's objects that walked ids 1..300 land on many of them."""
    customers = CustomerFactory.create_batch(20, merchant=merchant)
    products = ProductFactory.create_batch(20, merchant=merchant)
    for n, (customer, product) in enumerate(zip(customers, products, strict=True)):
        order_create(
            merchant=merchant,
            external_id=f"walk-{n}",
            customer_external_id=customer.external_id,
            product_sku=product.sku,
            amount=100 + n,
            currency="CNY",
            paid_at=timezone.now() - dt.timedelta(hours=1),
            payment_method="card",
        )
    return {
        model: set(model.objects.filter(merchant=merchant).values_list("pk", flat=True))
        for model in (Customer, Product, Order)
    }


def _a_state(merchant) -> dict:
    return {
        "customers": sorted(Customer.objects.filter(merchant=merchant).values_list("pk", "name", "phone")),
        "products": sorted(Product.objects.filter(merchant=merchant).values_list("pk", "name", "price")),
        "usage": UsageEvent.objects.filter(order__merchant=merchant).count(),
    }


@pytest.mark.parametrize(("method", "url", "body", "model"), WALKED, ids=[f"{m} {u}" for m, u, _, _ in WALKED])
def test_walking_ids_finds_none_of_other_merchants_objects(
    merchant, other_api, a_many, b_world, method, url, body, model
):
    own = set(model.objects.filter(merchant=other_api.merchant).values_list("pk", flat=True))
    # On PostgreSQL sequences are not rolled back between tests, so A's ids may lie beyond 300:
    # walk them too, so the walk always crosses every one of A's objects.
    walked = set(range(1, 301)) | a_many[model]
    assert a_many[model] - own
    before_rows, before_a = row_counts(), _a_state(merchant)

    leaks, own_answers = [], 0
    for pk in sorted(walked):
        response = call(other_api, method, url.format(id=pk), body)
        if pk in own:
            assert response.status_code in {200, 201}, (pk, response.content)
            own_answers += 1
        elif response.status_code != 404 or response.json()["error"]["code"] != "not_found":
            leaks.append((pk, response.status_code))

    assert leaks == []
    assert own_answers == len(own & walked)
    assert _a_state(merchant) == before_a
    expected = dict(before_rows)
    if method == "POST":
        expected["UsageEvent"] += own_answers
    assert row_counts() == expected


def test_session_staff_of_other_merchant_gets_404(merchant, other_merchant, a_world):
    staff = StaffFactory(merchant=other_merchant)
    client = APIClient()
    client.force_login(staff)
    before = row_counts()

    for method, url, body, kind in DETAIL_CALLS:
        assert_not_found(call(client, method, url.format(id=a_world[kind].pk), body))
    assert row_counts() == before


# --- ids beyond the column's range -----------------------------------------------------------


@pytest.mark.parametrize("pk", HUGE_IDS, ids=["2**63-1", "2**63", "2**64", "10**30"])
@pytest.mark.parametrize(("method", "url", "body", "kind"), DETAIL_CALLS, ids=DETAIL_IDS)
def test_huge_ids_are_404_not_500(api, a_world, pk, method, url, body, kind):
    before = row_counts()

    response = call(api, method, url.format(id=pk), body)

    assert_not_found(response)
    assert row_counts() == before


@pytest.mark.postgres
@pytest.mark.parametrize("pk", HUGE_IDS, ids=["2**63-1", "2**63", "2**64", "10**30"])
def test_huge_ids_leave_the_postgres_transaction_usable(api, a_world, pk):
    """On PostgreSQL a failed statement aborts the transaction; the 404 must not come from one."""
    for method, url, body, _ in DETAIL_CALLS:
        assert_not_found(call(api, method, url.format(id=pk), body))

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
    response = api.post(f"/api/v1/orders/{a_world['order'].pk}/usage", {"kind": "download"}, format="json")
    assert response.status_code == 201, response.content


# --- payouts, withdrawals, incidents ---------------------------------------------------------

MONEY_OUT_TABLES = (*COUNTED, Disbursement, DisbursementEvent, PrecheckResult, Approval, Incident, IncidentStep)


def money_out_rows() -> dict[str, int]:
    return count_rows(MONEY_OUT_TABLES)


def _money_out_world(merchant, tag: str) -> dict:
    customer = CustomerFactory(merchant=merchant, external_id=f"{tag}-wallet")
    account = {"holder_name": "Holder", "bank": "ICBC", "account_number": "6222020000004321"}
    payout = payout_create(
        merchant=merchant,
        reference=f"{tag}-settle",
        amount=1000,
        currency="CNY",
        destination_account=account,
        actor="maker",
    )
    withdrawal = withdrawal_create(
        merchant=merchant,
        customer_external_id=customer.external_id,
        amount=500,
        currency="CNY",
        destination_account=account,
        actor="maker",
    )
    incident = incident_open(disbursement_id=payout.pk, summary=f"{tag} incident", actor="ops")
    StaffFactory(merchant=merchant, username=f"{tag}-checker", role="finance")
    return {"payout": payout, "withdrawal": withdrawal, "incident": incident}


@pytest.fixture
def a_money(merchant) -> dict:
    return _money_out_world(merchant, "a")


@pytest.fixture
def b_money(other_merchant) -> dict:
    return _money_out_world(other_merchant, "b")


MONEY_OUT_CALLS = [
    ("GET", "/api/v1/payouts/{id}", None, "payout"),
    ("POST", "/api/v1/payouts/{id}/approve", {}, "payout"),
    ("POST", "/api/v1/payouts/{id}/cancel", {}, "payout"),
    ("POST", "/api/v1/payouts/{id}/release", {}, "payout"),
    ("GET", "/api/v1/withdrawals/{id}", None, "withdrawal"),
    ("POST", "/api/v1/withdrawals/{id}/approve", {}, "withdrawal"),
    ("POST", "/api/v1/withdrawals/{id}/cancel", {}, "withdrawal"),
    ("POST", "/api/v1/withdrawals/{id}/release", {}, "withdrawal"),
    ("GET", "/api/v1/incidents/{id}", None, "incident"),
    ("POST", "/api/v1/incidents/{id}/freeze", {}, "incident"),
    ("POST", "/api/v1/incidents/{id}/recall", {}, "incident"),
    ("POST", "/api/v1/incidents/{id}/negotiation", {"notes": "x"}, "incident"),
    ("POST", "/api/v1/incidents/{id}/escalate", {}, "incident"),
    ("POST", "/api/v1/incidents/{id}/resolve", {"root_cause": "x", "category": "other"}, "incident"),
]


def _money_out_snapshot(world: dict) -> dict:
    payout = Disbursement.objects.get(pk=world["payout"].pk)
    withdrawal = Disbursement.objects.get(pk=world["withdrawal"].pk)
    incident = Incident.objects.get(pk=world["incident"].pk)
    return {
        "payout": payout.status,
        "withdrawal": withdrawal.status,
        "incident": (incident.status, incident.steps.count()),
    }


def test_other_merchants_payouts_and_incidents_are_404_and_nothing_written(other_api, a_money, b_money):
    """Every detail and action endpoint (one world for all: building it runs the pre-checks)."""
    before_rows, before_a = money_out_rows(), _money_out_snapshot(a_money)
    leaks = []

    for method, url, body, kind in MONEY_OUT_CALLS:
        foreign = call(other_api, method, url.format(id=a_money[kind].pk), body)
        missing = call(other_api, method, url.format(id=MISSING_ID), body)
        if foreign.status_code != 404 or foreign.json() != missing.json():
            leaks.append((method, url, foreign.status_code))
        assert_not_found(foreign)

    assert leaks == []
    assert money_out_rows() == before_rows
    assert _money_out_snapshot(a_money) == before_a


def test_other_merchants_return_is_404_before_the_idempotency_key_is_claimed(other_api, a_money, b_money):
    before = money_out_rows()

    response = other_api.post(
        f"/api/v1/incidents/{a_money['incident'].pk}/returns",
        {"amount": 1},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k-1",
    )

    assert_not_found(response)
    assert money_out_rows() == before
    assert IdempotencyRecord.objects.count() == 0


@pytest.mark.parametrize(
    ("url", "kind"),
    [("/api/v1/payouts", "payout"), ("/api/v1/withdrawals", "withdrawal"), ("/api/v1/incidents", "incident")],
)
def test_money_out_lists_show_only_own_rows(api, other_api, a_money, b_money, url, kind):
    assert [row["id"] for row in api.get(url).json()["results"]] == [a_money[kind].pk]
    assert [row["id"] for row in other_api.get(url).json()["results"]] == [b_money[kind].pk]
    if kind == "incident":
        assert other_api.get(url, {"q": "a incident"}).json()["results"] == []


@pytest.mark.parametrize("kind", ["payout", "withdrawal"])
def test_incident_on_another_merchants_movement_is_refused(other_api, a_money, b_money, kind):
    before = money_out_rows()

    response = other_api.post("/api/v1/incidents", {kind: a_money[kind].pk, "summary": "x"}, format="json")

    assert response.status_code == 422
    assert kind in response.json()["error"]["fields"]
    assert money_out_rows() == before


# --- alerts and silences --------------------------------------------------------------------------

ALERT_TABLES = ("Alert", "AlertEvent", "AlertDelivery", "Silence")


def alert_rows() -> dict[str, int]:
    from apps.alerts.models import Alert, AlertDelivery, AlertEvent, Silence

    return count_rows((Alert, AlertEvent, AlertDelivery, Silence))


def _alert_world(merchant, tag: str) -> dict:
    from apps.alerts.services import alert_raise, silence_create

    alert = alert_raise(
        tier="P1",
        kind="refund_not_arrived",
        dedup_key=f"{tag}:refund:1:not_arrived",
        subject_type="refund",
        subject_id=1,
        merchant=merchant,
        summary=f"{tag} late",
    )
    silence = silence_create(
        matchers={"kind": "refund_cancelled"},
        ends_at=timezone.now() + dt.timedelta(hours=1),
        actor=tag,
        merchant=merchant,
    )
    return {"alert": alert, "silence": silence}


ALERT_CALLS = [
    ("GET", "/api/v1/alerts/{id}", None, "alert"),
    ("POST", "/api/v1/alerts/{id}/ack", {}, "alert"),
    ("POST", "/api/v1/alerts/{id}/resolve", {"note": "x"}, "alert"),
    ("POST", "/api/v1/silences/{id}/expire", None, "silence"),
]


def test_other_merchants_alerts_and_silences_are_404_and_nothing_written(other_api, merchant, other_merchant):
    from apps.alerts.models import Alert, Silence
    from apps.alerts.services import alert_raise

    a, _ = _alert_world(merchant, "a"), _alert_world(other_merchant, "b")
    platform = alert_raise(
        tier="P0", kind="channel_down", dedup_key="channel:x:down", subject_type="channel", subject_id="x", summary="x"
    )
    before = alert_rows()
    leaks = []

    for method, url, body, kind in [*ALERT_CALLS, ("GET", "/api/v1/alerts/{id}", None, "platform")]:
        target = platform.pk if kind == "platform" else a[kind].pk
        foreign = call(other_api, method, url.format(id=target), body)
        missing = call(other_api, method, url.format(id=MISSING_ID), body)
        if foreign.status_code != 404 or foreign.json() != missing.json():
            leaks.append((method, url, foreign.status_code))
        assert_not_found(foreign)
    for huge in HUGE_IDS:
        assert call(other_api, "GET", f"/api/v1/alerts/{huge}", None).status_code == 404

    assert leaks == []
    assert alert_rows() == before
    assert Alert.objects.get(pk=a["alert"].pk).status == "open"
    assert Silence.objects.get(pk=a["silence"].pk).ends_at > timezone.now()


def test_alert_and_silence_lists_show_only_own_rows(api, other_api, merchant, other_merchant):
    from apps.alerts.services import alert_raise

    a, b = _alert_world(merchant, "a"), _alert_world(other_merchant, "b")
    alert_raise(
        tier="P0",
        kind="channel_down",
        dedup_key="channel:y:down",
        subject_type="channel",
        subject_id="y",
        summary="platform-wide",
    )

    assert [row["id"] for row in api.get("/api/v1/alerts").json()["results"]] == [a["alert"].pk]
    assert [row["id"] for row in other_api.get("/api/v1/alerts").json()["results"]] == [b["alert"].pk]
    assert [row["id"] for row in api.get("/api/v1/silences").json()["results"]] == [a["silence"].pk]
    assert [row["id"] for row in other_api.get("/api/v1/silences").json()["results"]] == [b["silence"].pk]
