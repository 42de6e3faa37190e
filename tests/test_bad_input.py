"""RELIABILITY.md "Bad inputs": every refusal is a 4xx with the error shape and writes nothing.

Each refusal asserts the status, `error.code`, the offending field where it is a field error,
and unchanged row counts for every table an accepted request would touch.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
import time_machine
from django.conf import settings
from django.utils import timezone

from apps.accounts.models import Customer
from apps.common.models import IdempotencyRecord
from apps.ledger.models import LedgerEntry, LedgerTransaction
from apps.orders.models import Order, Product, RefundPolicy, UsageEvent
from apps.orders.services import order_create
from apps.payouts.models import Approval, Disbursement, DisbursementEvent, PrecheckResult
from tests.factories import CustomerFactory, ProductFactory
from tests.support import FOUNDATION_TABLES, count_rows

pytestmark = pytest.mark.django_db

CUSTOMERS, PRODUCTS, ORDERS = "/api/v1/customers", "/api/v1/products", "/api/v1/orders"
COUNTED = FOUNDATION_TABLES
HOLE = "__LITERAL__"


def row_counts() -> dict[str, int]:
    return count_rows(COUNTED)


def with_literal(body: dict, path: str, literal: str) -> str:
    """`body` as JSON with the value at dotted `path` replaced by raw JSON text `literal`."""
    body = json.loads(json.dumps(body))
    *parents, leaf = path.split(".")
    target = body
    for name in parents:
        target = target.setdefault(name, {})
    target[leaf] = HOLE
    return json.dumps(body).replace(json.dumps(HOLE), literal)


def send(api, method: str, url: str, data: str | bytes | dict | None, content_type: str = "application/json"):
    if isinstance(data, dict):
        data = json.dumps(data)
    if data is None:
        return api.generic(method, url)
    return api.generic(method, url, data=data, content_type=content_type)


def assert_refused(response, before: dict, *, status: int, code: str, field: str | None = None) -> dict:
    """The response is an error of the API's shape and no counted row was written."""
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"code", "message", "fields"}
    assert error["code"] == code, error
    assert isinstance(error["message"], str)
    assert error["message"]
    if field is None:
        assert error["fields"] == {}, error
    else:
        assert any(name == field or name.startswith(f"{field}.") for name in error["fields"]), error["fields"]
    assert row_counts() == before
    return error


def refused(
    api, method, url, data, *, status=400, code="validation_error", field=None, content_type="application/json"
):
    before = row_counts()
    response = send(api, method, url, data, content_type)
    return assert_refused(response, before, status=status, code=code, field=field)


# --- valid bodies ---------------------------------------------------------------------------

PAID_AT = "2026-01-01T10:00:00Z"


@pytest.fixture
def catalogue(merchant) -> dict:
    customer = CustomerFactory(merchant=merchant, external_id="c-1", name="王小明")
    referrer = CustomerFactory(merchant=merchant, external_id="c-0900")
    product = ProductFactory(merchant=merchant, sku="ppt", currency="CNY", price=19900)
    return {"customer": customer, "referrer": referrer, "product": product}


def order_body(**overrides) -> dict:
    body = {
        "external_id": "o-1",
        "customer": "c-1",
        "product": "ppt",
        "amount": 19900,
        "currency": "CNY",
        "paid_at": PAID_AT,
        "payment_method": "card",
        "device_id": "d-1",
        "ip": "203.0.113.5",
        "payer_account": {"holder_name": "王小明", "bank": "ICBC", "account_number": "6222020000001234"},
    }
    body.update(overrides)
    return body


def product_body(**overrides) -> dict:
    body = {
        "sku": "new-sku",
        "name": "PPT大师进阶课",
        "kind": "course",
        "price": 19900,
        "currency": "CNY",
        "refund_policy": {"unconditional_minutes": 15, "conditional_hours": 24, "max_progress_pct": 10},
    }
    body.update(overrides)
    return body


def customer_body(**overrides) -> dict:
    body = {
        "external_id": "c-1001",
        "name": "王小明",
        "phone": "+8613800000000",
        "email": "wang@example.com",
        "locale": "zh-hans",
    }
    body.update(overrides)
    return body


BODIES = {ORDERS: order_body, PRODUCTS: product_body, CUSTOMERS: customer_body}


@pytest.mark.parametrize("url", [ORDERS, PRODUCTS, CUSTOMERS])
def test_the_valid_bodies_are_accepted(api, catalogue, url):
    """Control: each refusal below differs from an accepted body in one place only."""
    before = row_counts()

    response = send(api, "POST", url, BODIES[url]())

    assert response.status_code == 201, response.content
    assert row_counts() != before


# --- amounts ---------------------------------------------------------------------------------

AMOUNT_FIELD_ERRORS = {
    "zero": "0",
    "minus-one": "-1",
    "minus-zero": "-0",
    "string": '"100"',
    "empty-string": '""',
    "float": "10.5",
    "float-integral": "100.0",
    "exponent": "1e2",
    "overflow-float": "1e309",
    "negative-overflow-float": "-1e309",
    "true": "true",
    "false": "false",
    "null": "null",
    "huge": str(10**16),
    "two-pow-63": str(2**63),
    "two-pow-64": str(2**64),
    "list": "[100]",
    "object": '{"value": 100}',
}
AMOUNT_PARSE_ERRORS = {
    "NaN": "NaN",
    "Infinity": "Infinity",
    "minus-Infinity": "-Infinity",
    "5000-digits": "1" * 5000,
}


@pytest.mark.parametrize(("url", "field"), [(ORDERS, "amount"), (PRODUCTS, "price")])
@pytest.mark.parametrize("literal", AMOUNT_FIELD_ERRORS.values(), ids=AMOUNT_FIELD_ERRORS.keys())
def test_bad_amount_is_a_field_error(api, catalogue, url, field, literal):
    refused(api, "POST", url, with_literal(BODIES[url](), field, literal), field=field)


@pytest.mark.parametrize(("url", "field"), [(ORDERS, "amount"), (PRODUCTS, "price")])
@pytest.mark.parametrize("literal", AMOUNT_PARSE_ERRORS.values(), ids=AMOUNT_PARSE_ERRORS.keys())
def test_non_json_number_is_a_parse_error(api, catalogue, url, field, literal):
    refused(api, "POST", url, with_literal(BODIES[url](), field, literal), code="parse_error")


@pytest.mark.parametrize(("url", "field"), [(ORDERS, "amount"), (PRODUCTS, "price")])
def test_amount_one_over_the_maximum_is_refused(api, catalogue, url, field):
    refused(api, "POST", url, BODIES[url](**{field: settings.MAX_AMOUNT_MINOR + 1}), field=field)


@pytest.mark.parametrize(("url", "field"), [(ORDERS, "amount"), (PRODUCTS, "price")])
def test_missing_amount_is_refused(api, catalogue, url, field):
    body = BODIES[url]()
    del body[field]
    refused(api, "POST", url, body, field=field)


@pytest.mark.parametrize(("url", "field"), [(ORDERS, "amount"), (PRODUCTS, "price")])
@pytest.mark.parametrize("amount", [1, settings.MAX_AMOUNT_MINOR], ids=["one", "max"])
def test_amount_boundaries_are_accepted_exactly(api, catalogue, url, field, amount):
    response = send(api, "POST", url, BODIES[url](**{field: amount}))

    assert response.status_code == 201, response.content
    assert response.json()[field] == amount
    if url == ORDERS:
        order = Order.objects.get(pk=response.json()["id"])
        assert order.amount == amount
        assert sorted(
            LedgerEntry.objects.filter(transaction__reference=f"order:{order.pk}:capture").values_list(
                "amount", flat=True
            )
        ) == [-amount, amount]


# --- currencies ------------------------------------------------------------------------------

CURRENCIES = {
    "lower-case": '"usd"',
    "mixed-case": '"Cny"',
    "XXX": '"XXX"',
    "four-letters": '"CNYY"',
    "two-letters": '"CN"',
    "number": "123",
    "empty": '""',
    "null": "null",
    "padded": '" CNY"',
    "symbol": '"¥"',
}


@pytest.mark.parametrize("url", [ORDERS, PRODUCTS])
@pytest.mark.parametrize("literal", CURRENCIES.values(), ids=CURRENCIES.keys())
def test_bad_currency_is_a_field_error(api, catalogue, url, literal):
    refused(api, "POST", url, with_literal(BODIES[url](), "currency", literal), field="currency")


def test_order_currency_different_from_products_is_refused(api, catalogue):
    refused(api, "POST", ORDERS, order_body(currency="USD"), status=422, field="currency")


# --- dates -----------------------------------------------------------------------------------

PAID_AT_BAD = {
    "not-a-date": '"not a date"',
    "month-13": '"2026-13-01T10:00:00Z"',
    "number": "1767261600",
    "null": "null",
    "empty": '""',
    "before-year-1-utc": '"0001-01-01T00:00:00+01:00"',
    "after-year-9999-utc": '"9999-12-31T23:59:59-01:00"',
    "far-future": '"9999-12-31T23:59:59Z"',
}


@pytest.mark.parametrize("literal", PAID_AT_BAD.values(), ids=PAID_AT_BAD.keys())
def test_bad_paid_at_is_a_field_error(api, catalogue, literal):
    # A date-time the schema admits that lies in the future breaks a rule (422); the others, the schema (400).
    status = 422 if literal == PAID_AT_BAD["far-future"] else 400
    refused(api, "POST", ORDERS, with_literal(order_body(), "paid_at", literal), status=status, field="paid_at")


def test_paid_at_tomorrow_is_refused(api, catalogue):
    tomorrow = (timezone.now() + dt.timedelta(days=1)).isoformat()

    refused(api, "POST", ORDERS, order_body(paid_at=tomorrow), status=422, field="paid_at")


def test_paid_at_within_clock_skew_is_accepted(api, catalogue):
    now = dt.datetime(2026, 11, 27, 10, 0, tzinfo=dt.UTC)
    with time_machine.travel(now, tick=False):
        accepted = send(api, "POST", ORDERS, order_body(paid_at="2026-11-27T10:01:00Z"))
        too_far = send(api, "POST", ORDERS, order_body(external_id="o-2", paid_at="2026-11-27T10:03:00Z"))

    assert accepted.status_code == 201, accepted.content
    assert too_far.status_code == 422
    assert "paid_at" in too_far.json()["error"]["fields"]


def test_order_paid_at_the_first_representable_instant_takes_usage_without_error(api, catalogue):
    created = send(api, "POST", ORDERS, order_body(paid_at="0001-01-01T00:00:00Z"))
    assert created.status_code == 201, created.content

    response = send(api, "POST", f"{ORDERS}/{created.json()['id']}/usage", {"kind": "download"})

    assert response.status_code == 201, response.content


# --- strings ---------------------------------------------------------------------------------

OVERSIZED = [
    (ORDERS, "external_id", "o" * 101),
    (ORDERS, "customer", "c" * 101),
    (ORDERS, "product", "p" * 101),
    (ORDERS, "device_id", "d" * 101),
    (ORDERS, "referrer", "r" * 101),
    (ORDERS, "payer_account.holder_name", "h" * 201),
    (ORDERS, "payer_account.bank", "b" * 101),
    (ORDERS, "payer_account.account_number", "6" * 31),
    (PRODUCTS, "sku", "s" * 101),
    (PRODUCTS, "name", "n" * 100_000),
    (CUSTOMERS, "external_id", "c" * 101),
    (CUSTOMERS, "name", "n" * 100_000),
    (CUSTOMERS, "email", "e" * 250 + "@x.io"),
]


@pytest.mark.parametrize(("url", "field", "value"), OVERSIZED, ids=[f"{u[8:]}-{f}" for u, f, _ in OVERSIZED])
def test_oversized_string_is_a_field_error(api, catalogue, url, field, value):
    refused(api, "POST", url, with_literal(BODIES[url](), field, json.dumps(value)), field=field)


@pytest.mark.parametrize(
    ("url", "field", "value"),
    [
        (ORDERS, "external_id", "o" * 100),
        (CUSTOMERS, "external_id", "c" * 100),
        (PRODUCTS, "sku", "s" * 100),
        (PRODUCTS, "name", "n" * 200),
        (CUSTOMERS, "name", "n" * 200),
    ],
    ids=[
        "order-external_id-100",
        "customer-external_id-100",
        "product-sku-100",
        "product-name-200",
        "customer-name-200",
    ],
)
def test_longest_allowed_string_is_accepted(api, catalogue, url, field, value):
    response = send(api, "POST", url, BODIES[url](**{field: value}))

    assert response.status_code == 201, response.content
    assert response.json()[field] == value


CONTROL_CHARACTERS = {
    "crlf": "line\r\nINFO forged log line",
    "lf": "line\nsecond",
    "cr": "line\rsecond",
    "nul": "nul\x00byte",
    "tab": "tab\there",
    "escape": "\x1b[31mred",
    "line-separator": "line\u2028second",
    "paragraph-separator": "line\u2029second",
    "del": "del\x7f",
}
SINGLE_LINE_FIELDS = [
    (ORDERS, "external_id"),
    (ORDERS, "device_id"),
    (ORDERS, "payer_account.holder_name"),
    (PRODUCTS, "sku"),
    (PRODUCTS, "name"),
    (CUSTOMERS, "external_id"),
    (CUSTOMERS, "name"),
]


@pytest.mark.parametrize(("url", "field"), SINGLE_LINE_FIELDS, ids=[f"{u[8:]}-{f}" for u, f in SINGLE_LINE_FIELDS])
@pytest.mark.parametrize("value", CONTROL_CHARACTERS.values(), ids=CONTROL_CHARACTERS.keys())
def test_control_characters_in_single_line_fields_are_refused(api, catalogue, url, field, value):
    refused(api, "POST", url, with_literal(BODIES[url](), field, json.dumps(value)), field=field)


# Ids that later appear in a URL (/api/v1/customers/{external_id}/inbox, ?sku=...): a value a URL
# cannot carry as one path segment would create an object that is then unreachable.
PATH_UNSAFE_IDS = {
    "slash": "a/b",
    "leading-slash": "/c-1",
    "backslash": "a\\b",
    "dot": ".",
    "dot-dot": "..",
    "dots": "...",
    "tab": "a\tb",
    "nul": "a\x00b",
}
ID_FIELDS = [(ORDERS, "external_id"), (PRODUCTS, "sku"), (CUSTOMERS, "external_id")]


@pytest.mark.parametrize(("url", "field"), ID_FIELDS, ids=[f"{u[8:]}-{f}" for u, f in ID_FIELDS])
@pytest.mark.parametrize("value", PATH_UNSAFE_IDS.values(), ids=PATH_UNSAFE_IDS.keys())
def test_ids_that_cannot_be_one_path_segment_are_refused(api, catalogue, url, field, value):
    refused(api, "POST", url, with_literal(BODIES[url](), field, json.dumps(value)), field=field)


def test_customer_with_a_slash_in_its_id_is_refused_and_a_dotted_one_is_reachable(api, catalogue):
    refused(api, "POST", CUSTOMERS, customer_body(external_id="shop/42"), field="external_id")
    assert not Customer.objects.filter(external_id="shop/42").exists()

    created = send(api, "POST", CUSTOMERS, customer_body(external_id="c.v2..x"))
    assert created.status_code == 201, created.content
    assert api.get("/api/v1/customers/c.v2..x/inbox").status_code == 200
    assert api.get("/api/v1/customers/c.v2..x/notification-preferences").status_code == 200


@pytest.mark.parametrize("value", ["\\ud800", "\\udfff"], ids=["high-surrogate", "low-surrogate"])
@pytest.mark.parametrize("url", [CUSTOMERS, PRODUCTS])
def test_lone_surrogates_are_refused(api, catalogue, url, value):
    refused(api, "POST", url, with_literal(BODIES[url](), "name", f'"x{value}"'), field="name")


@pytest.mark.parametrize("url", [CUSTOMERS, PRODUCTS])
def test_markup_in_a_name_round_trips_as_plain_text(api, catalogue, url):
    name = '<script>alert("x")</script><img src=x onerror=alert(1)>&amp;'

    created = send(api, "POST", url, BODIES[url](name=name))

    assert created.status_code == 201, created.content
    assert created["Content-Type"].startswith("application/json")
    assert created.json()["name"] == name
    fetched = api.get(f"{url}/{created.json()['id']}")
    assert fetched["Content-Type"].startswith("application/json")
    assert fetched.json()["name"] == name
    model = Customer if url == CUSTOMERS else Product
    assert model.objects.get(pk=created.json()["id"]).name == name


# --- wrong types and mass assignment --------------------------------------------------------

WRONG_TYPES = [
    (ORDERS, "customer", "1001"),
    (ORDERS, "product", '["ppt"]'),
    (ORDERS, "external_id", '{"id": "o-1"}'),
    (ORDERS, "payer_account", '"6222020000001234"'),
    (ORDERS, "payer_account", '["王小明", "ICBC", "6222020000001234"]'),
    (ORDERS, "payer_account.account_number", "6222020000001234"),
    (ORDERS, "payment_method", "1"),
    (ORDERS, "payment_method", '"bitcoin"'),
    (ORDERS, "ip", "203"),
    (ORDERS, "ip", '"not-an-ip"'),
    (ORDERS, "device_id", "5"),
    (ORDERS, "referrer", "false"),
    (PRODUCTS, "kind", '"weapon"'),
    (PRODUCTS, "name", "null"),
    (PRODUCTS, "refund_policy", '"lenient"'),
    (PRODUCTS, "refund_policy", "null"),
    (PRODUCTS, "refund_policy.max_progress_pct", "101"),
    (PRODUCTS, "refund_policy.max_progress_pct", "-1"),
    (PRODUCTS, "refund_policy.max_progress_pct", '"10"'),
    (PRODUCTS, "refund_policy.max_progress_pct", "10.0"),
    (PRODUCTS, "refund_policy.max_progress_pct", "true"),
    (PRODUCTS, "refund_policy.conditional_hours", str(365 * 24 + 1)),
    (PRODUCTS, "refund_policy.unconditional_minutes", str(7 * 24 * 60 + 1)),
    (PRODUCTS, "refund_policy.lock_on_download", '"yes"'),
    (PRODUCTS, "refund_policy.lock_on_download", "1"),
    (CUSTOMERS, "name", "42"),
    (CUSTOMERS, "email", '"not-an-email"'),
    (CUSTOMERS, "email", '"a@b.co\\r\\nBcc: x@y.z"'),
    (CUSTOMERS, "locale", '"fr"'),
    (CUSTOMERS, "registered_at", '"yesterday"'),
    (CUSTOMERS, "referrer", "7"),
]


@pytest.mark.parametrize(
    ("url", "field", "literal"), WRONG_TYPES, ids=[f"{u[8:]}-{f}-{v[:12]}" for u, f, v in WRONG_TYPES]
)
def test_wrong_type_is_a_field_error(api, catalogue, url, field, literal):
    refused(api, "POST", url, with_literal(BODIES[url](), field, literal), field=field)


def test_refund_policy_windows_out_of_order_are_refused(api, catalogue):
    body = product_body(refund_policy={"unconditional_minutes": 24 * 60 + 1, "conditional_hours": 24})

    refused(
        api, "POST", PRODUCTS, body, status=422, code="validation_error", field="refund_policy.unconditional_minutes"
    )


@pytest.mark.parametrize(
    ("url", "field"),
    [
        (ORDERS, "customer"),
        (ORDERS, "product"),
        (ORDERS, "referrer"),
        (CUSTOMERS, "referrer"),
    ],
)
def test_unknown_references_are_refused(api, catalogue, url, field):
    code = "validation_error"
    refused(api, "POST", url, BODIES[url](**{field: "nobody"}), status=422, code=code, field=field)


def test_customer_cannot_refer_their_own_order(api, catalogue):
    refused(api, "POST", ORDERS, order_body(referrer="c-1"), status=422, field="referrer")


MASS_ASSIGNED = {
    "status": "succeeded",
    "merchant": 1,
    "merchant_id": 1,
    "id": 1,
    "pk": 1,
    "refunded_amount": 0,
    "created_at": "2020-01-01T00:00:00Z",
}
EXTRA_PER_ENDPOINT = {
    ORDERS: {"payer_account.last4": "0000", "payer_account.number_encrypted": "x", "payer_account.merchant": 1},
    PRODUCTS: {"is_active": False, "refund_policy.product": 1, "refund_policy.id": 1},
    CUSTOMERS: {"trust_level": "trusted", "chargeback_count": 0},
}
MASS_CASES = [
    (url, key, value) for url in BODIES for key, value in {**MASS_ASSIGNED, **EXTRA_PER_ENDPOINT[url]}.items()
]


@pytest.mark.parametrize(("url", "key", "value"), MASS_CASES, ids=[f"{u[8:]}-{k}" for u, k, _ in MASS_CASES])
def test_mass_assignment_is_refused(api, catalogue, url, key, value):
    refused(api, "POST", url, with_literal(BODIES[url](), key, json.dumps(value)), field=key)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"trust_level": "trusted"}, "trust_level"),
        ({"chargeback_count": 0}, "chargeback_count"),
        ({"external_id": "c-other"}, "external_id"),
        ({"referrer": "c-0900"}, "referrer"),
        ({"merchant": 2}, "merchant"),
        ({"name": "a\r\nb"}, "name"),
        ({"name": ""}, "name"),
        ({"phone": "+1"}, "phone"),
        ({"email": "nope"}, "email"),
    ],
)
def test_customer_patch_refusals_change_nothing(api, catalogue, changes, field):
    customer = catalogue["customer"]
    before = Customer.objects.filter(pk=customer.pk).values().get()

    status = 422 if field == "phone" else 400  # a number that does not exist breaks a rule, not the schema
    refused(api, "PATCH", f"{CUSTOMERS}/{customer.pk}", changes, status=status, field=field)

    assert Customer.objects.filter(pk=customer.pk).values().get() == before


@pytest.mark.parametrize(
    ("changes", "field", "code"),
    [
        ({"sku": "other"}, "sku", "validation_error"),
        ({"currency": "USD"}, "currency", "validation_error"),
        ({"merchant": 2}, "merchant", "validation_error"),
        ({"price": 0}, "price", "validation_error"),
        ({"price": 10.5}, "price", "validation_error"),
        ({"name": "x\r\ny"}, "name", "validation_error"),
        ({"is_active": "no"}, "is_active", "validation_error"),
        ({"refund_policy": {"max_progress_pct": 101}}, "refund_policy.max_progress_pct", "validation_error"),
        ({"refund_policy": {"product": 5}}, "refund_policy.product", "validation_error"),
        (
            {"name": "renamed", "price": 1, "refund_policy": {"unconditional_minutes": 24 * 60 + 1}},
            "refund_policy.unconditional_minutes",
            "validation_error",
        ),
    ],
)
def test_product_patch_refusals_change_nothing(api, catalogue, changes, field, code):
    product = catalogue["product"]
    before = (
        Product.objects.filter(pk=product.pk).values().get(),
        RefundPolicy.objects.filter(product=product).values().get(),
    )

    # Windows out of order (unconditional longer than conditional) break a rule, not the schema.
    status = 422 if field == "refund_policy.unconditional_minutes" else 400
    refused(api, "PATCH", f"{PRODUCTS}/{product.pk}", changes, status=status, code=code, field=field)

    assert (
        Product.objects.filter(pk=product.pk).values().get(),
        RefundPolicy.objects.filter(product=product).values().get(),
    ) == before


# --- body framing ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "raw"),
    [
        (ORDERS, '{"external_id": "o-2", ' + json.dumps(order_body())[1:]),
        (ORDERS, json.dumps(order_body())[:-1] + ', "amount": 1}'),
        (ORDERS, json.dumps(order_body())[:-1] + ', "payer_account": {"holder_name": "a", "holder_name": "b"}}'),
        (PRODUCTS, json.dumps(product_body())[:-1] + ', "price": 1}'),
        (PRODUCTS, with_literal(product_body(), "refund_policy", '{"max_progress_pct": 10, "max_progress_pct": 100}')),
        (CUSTOMERS, json.dumps(customer_body())[:-1] + ', "name": "someone else"}'),
    ],
    ids=["order-external_id", "order-amount", "order-nested", "product-price", "product-nested", "customer-name"],
)
def test_duplicate_json_keys_are_refused(api, catalogue, url, raw):
    refused(api, "POST", url, raw, code="parse_error")


def _nested(depth: int) -> str:
    return '{"a": ' * (depth - 1) + "1" + "}" * (depth - 1)


@pytest.mark.parametrize("url", [ORDERS, PRODUCTS, CUSTOMERS])
@pytest.mark.parametrize(
    "raw_for",
    [
        lambda url: with_literal(BODIES[url](), "deep", _nested(50)),
        lambda url: "[" * 50 + "]" * 50,
        lambda url: "[" * 100_000 + "]" * 100_000,
        lambda url: with_literal(BODIES[url](), "deep", '{"a": ' * 100_000 + "1" + "}" * 100_000),
    ],
    ids=["object-depth-50", "list-depth-50", "list-depth-100000", "object-depth-100000"],
)
def test_deeply_nested_json_is_refused(api, catalogue, url, raw_for):
    refused(api, "POST", url, raw_for(url), code="parse_error")


@pytest.mark.parametrize("url", [ORDERS, PRODUCTS, CUSTOMERS])
@pytest.mark.parametrize(
    "size", [10 * 1024 * 1024, settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1], ids=["10MB", "limit-plus-one"]
)
def test_oversized_body_is_413(api, catalogue, url, size):
    padding = "x" * (size - len(json.dumps(BODIES[url]())))
    raw = with_literal(BODIES[url](), "padding", json.dumps(padding))
    assert len(raw.encode()) >= size

    refused(api, "POST", url, raw, status=413, code="payload_too_large")


@pytest.mark.parametrize("url", [ORDERS, PRODUCTS, CUSTOMERS])
@pytest.mark.parametrize(
    ("content_type", "data"),
    [
        ("text/plain", None),
        ("application/x-www-form-urlencoded", "external_id=o-1&amount=19900"),
        (
            "multipart/form-data; boundary=xyz",
            '--xyz\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--xyz--\r\n',
        ),
        ("application/xml", "<order/>"),
        ("application/octet-stream", None),
    ],
    ids=["text-plain", "form-urlencoded", "multipart", "xml", "octet-stream"],
)
def test_wrong_content_type_is_415(api, catalogue, url, content_type, data):
    refused(
        api,
        "POST",
        url,
        data if data is not None else json.dumps(BODIES[url]()),
        status=415,
        code="unsupported_media_type",
        content_type=content_type,
    )


def test_json_with_charset_parameter_is_accepted(api, catalogue):
    response = send(api, "POST", CUSTOMERS, customer_body(), content_type="application/json; charset=utf-8")

    assert response.status_code == 201, response.content


@pytest.mark.parametrize("url", [ORDERS, PRODUCTS, CUSTOMERS])
@pytest.mark.parametrize(
    "encode",
    [
        lambda text: text.replace('"name"', '"name\udcff"').encode("utf-8", "surrogateescape"),
        lambda text: text.encode("latin-1", "replace"),
        lambda text: text.encode("utf-16"),
        lambda text: text.encode("gb18030"),
        lambda text: text.encode() + b"\xc3",
    ],
    ids=["invalid-byte", "latin-1", "utf-16", "gb18030", "truncated-sequence"],
)
def test_non_utf8_body_is_refused(api, catalogue, url, encode):
    body = BODIES[url]()
    body["name"] = "王小明 Zoë"
    raw = encode(json.dumps(body, ensure_ascii=False))
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")

    refused(api, "POST", url, raw, code="parse_error")


@pytest.mark.parametrize("url", [ORDERS, PRODUCTS, CUSTOMERS])
@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("[]", "validation_error"),
        ('"order"', "validation_error"),
        ("1", "validation_error"),
        ("null", "validation_error"),
        ("{}", "validation_error"),
        ("{", "parse_error"),
        ('{"a": 1,}', "parse_error"),
        ("{'a': 1}", "parse_error"),
        ("\ufeff{}", "parse_error"),
    ],
    ids=["list", "string", "number", "null", "empty-object", "truncated", "trailing-comma", "single-quotes", "bom"],
)
def test_body_that_is_not_an_object_is_refused(api, catalogue, url, raw, code):
    before = row_counts()

    response = send(api, "POST", url, raw)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert row_counts() == before


@pytest.mark.parametrize("url", [ORDERS, PRODUCTS, CUSTOMERS])
def test_empty_body_names_the_required_fields(api, catalogue, url):
    required = {ORDERS: "external_id", PRODUCTS: "sku", CUSTOMERS: "external_id"}[url]

    refused(api, "POST", url, b"", field=required)


# --- phones ----------------------------------------------------------------------------------

BAD_PHONES = {
    "country-code-only": "+1",
    "thirty-digits": "+" + "1" * 30,
    "thirty-digits-no-plus": "1" * 30,
    "comma-list": "+8613800000000,+8613800000001",
    "semicolon-list": "+8613800000000;+8613800000001",
    "space-list": "+8613800000000 +8613800000001",
    "national-form": "13800000000",
    "letters": "+86 call me",
    "crlf-inside": "+86138\r\n00000000",
    "tel-uri": "tel:+8613800000000",
    "too-short": "+86138",
}


@pytest.mark.parametrize("phone", BAD_PHONES.values(), ids=BAD_PHONES.keys())
def test_bad_phone_is_refused(api, catalogue, phone):
    # Well-formed text that is not one real number: a rule the schema cannot state (422).
    refused(api, "POST", CUSTOMERS, customer_body(phone=phone), status=422, field="phone")


@pytest.mark.parametrize(
    ("phone", "stored"),
    [("+8613800000000", "+8613800000000"), ("+86 138-0000-0000", "+8613800000000"), ("", "")],
    ids=["e164", "formatted", "blank"],
)
def test_good_phone_is_stored_as_e164(api, catalogue, phone, stored):
    response = send(api, "POST", CUSTOMERS, customer_body(phone=phone))

    assert response.status_code == 201, response.content
    assert response.json()["phone"] == stored


# --- paging and filters ----------------------------------------------------------------------

LIST_URLS = [CUSTOMERS, PRODUCTS, ORDERS, "usage"]
BAD_PAGING = [
    ("limit", "-1"),
    ("limit", "0"),
    ("limit", "10000000"),
    ("limit", "201"),
    ("limit", "abc"),
    ("limit", ""),
    ("limit", "1.5"),
    ("limit", "0x10"),
    ("limit", "9" * 5000),
    ("offset", "-1"),
    ("offset", "abc"),
    ("offset", "1e3"),
]


@pytest.fixture
def order(merchant, catalogue) -> Order:
    return order_create(
        merchant=merchant,
        external_id="o-existing",
        customer_external_id="c-1",
        product_sku="ppt",
        amount=19900,
        currency="CNY",
        paid_at=timezone.now() - dt.timedelta(hours=1),
        payment_method="card",
    )


def _list_url(url: str, order: Order) -> str:
    return f"{ORDERS}/{order.pk}/usage" if url == "usage" else url


@pytest.mark.parametrize("url", LIST_URLS)
@pytest.mark.parametrize(("param", "value"), BAD_PAGING, ids=[f"{p}={v[:10]}" for p, v in BAD_PAGING])
def test_bad_paging_is_400(api, order, url, param, value):
    before = row_counts()

    response = api.get(_list_url(url, order), {param: value})

    assert_refused(response, before, status=400, code="validation_error", field=param)


@pytest.mark.parametrize("url", LIST_URLS)
@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"limit": "1"}, lambda total: 1),
        ({"limit": "200"}, lambda total: total),
        ({"offset": "0"}, lambda total: total),
        ({"offset": "1"}, lambda total: total - 1),
        ({"offset": str(10**30)}, lambda total: 0),
    ],
    ids=["limit-1", "limit-200", "offset-0", "offset-1", "offset-huge"],
)
def test_paging_boundaries_are_accepted(api, order, url, params, expected):
    for kind in ("download", "key_revealed"):
        assert send(api, "POST", f"{ORDERS}/{order.pk}/usage", {"kind": kind}).status_code == 201
    if url == ORDERS:
        order_create(
            merchant=order.merchant,
            external_id="o-second",
            customer_external_id="c-1",
            product_sku="ppt",
            amount=100,
            currency="CNY",
            paid_at=order.paid_at,
            payment_method="card",
        )
    if url == PRODUCTS:
        ProductFactory(merchant=order.merchant)

    response = api.get(_list_url(url, order), params)

    assert response.status_code == 200, response.content
    total = response.json()["count"]
    assert total >= 2
    assert len(response.json()["results"]) == expected(total)


@pytest.mark.parametrize(("url", "param"), [(CUSTOMERS, "external_id"), (PRODUCTS, "sku"), (ORDERS, "external_id")])
@pytest.mark.parametrize("value", ["c-1\x00", "\x00", "a\r\nb", "x" * 101], ids=["nul-suffix", "nul", "crlf", "101"])
def test_bad_list_filter_is_400_not_500(api, order, url, param, value):
    before = row_counts()

    response = api.get(url, {param: value})

    assert_refused(response, before, status=400, code="validation_error", field=param)


@pytest.mark.parametrize(
    ("url", "param", "value"),
    [(CUSTOMERS, "external_id", " c-1 "), (PRODUCTS, "sku", "ppt"), (ORDERS, "external_id", "")],
)
def test_list_filters_still_work(api, order, url, param, value):
    response = api.get(url, {param: value})

    assert response.status_code == 200
    assert response.json()["count"] >= 1


# --- usage events ----------------------------------------------------------------------------

USAGE_BAD = [
    ({"kind": "refund"}, "validation_error", "kind"),
    ({"kind": None}, "validation_error", "kind"),
    ({"kind": 1}, "validation_error", "kind"),
    ({"kind": "PROGRESS", "value": 5}, "validation_error", "kind"),
    ({}, "validation_error", "kind"),
    ({"kind": "progress", "value": 101}, "validation_error", "value"),
    ({"kind": "progress", "value": -1}, "validation_error", "value"),
    ({"kind": "progress", "value": "50"}, "validation_error", "value"),
    ({"kind": "progress", "value": 50.5}, "validation_error", "value"),
    ({"kind": "progress", "value": True}, "validation_error", "value"),
    ({"kind": "progress", "value": 2**63}, "validation_error", "value"),
    ({"kind": "download", "occurred_at": "yesterday"}, "validation_error", "occurred_at"),
    ({"kind": "download", "order": 1}, "validation_error", "order"),
    ({"kind": "download", "id": 1}, "validation_error", "id"),
    ({"kind": "download", "created_at": "2026-01-01T00:00:00Z"}, "validation_error", "created_at"),
]


@pytest.mark.parametrize(("body", "code", "field"), USAGE_BAD, ids=[json.dumps(b)[:40] for b, _, _ in USAGE_BAD])
def test_bad_usage_is_refused(api, order, body, code, field):
    refused(api, "POST", f"{ORDERS}/{order.pk}/usage", body, code=code, field=field)


# Well-formed, but the kind decides whether a value belongs: a rule the schema cannot state (422).
USAGE_RULES = [
    {"kind": "progress"},
    {"kind": "progress", "value": None},
    {"kind": "key_revealed", "value": 1},
    {"kind": "key_activated", "value": 0},
    {"kind": "download", "value": 100},
]


@pytest.mark.parametrize("body", USAGE_RULES, ids=[json.dumps(b)[:40] for b in USAGE_RULES])
def test_usage_breaking_a_rule_is_422(api, order, body):
    refused(api, "POST", f"{ORDERS}/{order.pk}/usage", body, status=422, field="value")


def test_usage_before_payment_is_refused(api, order):
    before_paid = (order.paid_at - dt.timedelta(hours=1)).isoformat()

    refused(
        api,
        "POST",
        f"{ORDERS}/{order.pk}/usage",
        {"kind": "download", "occurred_at": before_paid},
        status=422,
        code="validation_error",
        field="occurred_at",
    )


def test_usage_in_the_future_is_refused(api, order):
    tomorrow = (timezone.now() + dt.timedelta(days=1)).isoformat()

    refused(
        api,
        "POST",
        f"{ORDERS}/{order.pk}/usage",
        {"kind": "download", "occurred_at": tomorrow},
        status=422,
        code="validation_error",
        field="occurred_at",
    )


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "progress", "value": 0},
        {"kind": "progress", "value": 100},
        {"kind": "key_revealed"},
        {"kind": "key_activated", "value": None},
        {"kind": "download"},
    ],
    ids=["progress-0", "progress-100", "key_revealed", "key_activated-null", "download"],
)
def test_good_usage_is_accepted(api, order, body):
    before = UsageEvent.objects.count()

    response = send(api, "POST", f"{ORDERS}/{order.pk}/usage", body)

    assert response.status_code == 201, response.content
    assert UsageEvent.objects.count() == before + 1
    assert response.json()["value"] == body.get("value")


def test_usage_at_payment_time_is_accepted(api, order):
    response = send(
        api, "POST", f"{ORDERS}/{order.pk}/usage", {"kind": "download", "occurred_at": order.paid_at.isoformat()}
    )

    assert response.status_code == 201, response.content


# --- duplicates ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "field", "code", "second"),
    [
        (CUSTOMERS, "external_id", "duplicate_external_id", {"name": "someone else", "phone": ""}),
        (CUSTOMERS, "external_id", "duplicate_external_id", {"external_id": " c-1001 "}),
        (PRODUCTS, "sku", "duplicate_sku", {"name": "other", "price": 1, "currency": "USD"}),
        (PRODUCTS, "sku", "duplicate_sku", {"sku": "new-sku "}),
        (
            ORDERS,
            "external_id",
            "duplicate_external_id",
            {"amount": 1, "payer_account": {"holder_name": "x", "bank": "y", "account_number": "6222029999990000"}},
        ),
        (ORDERS, "external_id", "duplicate_external_id", {"external_id": "o-1 "}),
    ],
    ids=["customer", "customer-padded", "product", "product-padded", "order", "order-padded"],
)
def test_duplicate_is_409_and_writes_nothing(api, catalogue, url, field, code, second):
    first = send(api, "POST", url, BODIES[url]())
    assert first.status_code == 201, first.content
    before = row_counts()

    response = send(api, "POST", url, BODIES[url](**second))

    assert_refused(response, before, status=409, code=code, field=field)
    assert send(api, "GET", f"{url}/{first.json()['id']}", None).json() == first.json()


def test_duplicate_order_keeps_the_first_capture_only(api, catalogue):
    first = send(api, "POST", ORDERS, order_body())
    assert first.status_code == 201

    for _ in range(3):
        assert send(api, "POST", ORDERS, order_body(amount=5)).status_code == 409

    order = Order.objects.get()
    assert order.amount == 19900
    assert list(LedgerTransaction.objects.values_list("reference", flat=True)) == [f"order:{order.pk}:capture"]
    assert sorted(LedgerEntry.objects.values_list("amount", flat=True)) == [-19900, 19900]


# --- payouts and withdrawals (money out) -------------------------------------------------------

PAYOUTS, WITHDRAWALS, INCIDENTS = "/api/v1/payouts", "/api/v1/withdrawals", "/api/v1/incidents"
MONEY_OUT_COUNTED = (*FOUNDATION_TABLES, Disbursement, DisbursementEvent, PrecheckResult, Approval, IdempotencyRecord)


def money_out_counts() -> dict[str, int]:
    return count_rows(MONEY_OUT_COUNTED)


def payout_request(**overrides) -> dict:
    body = {
        "reference": "settle-2026-11-27",
        "amount": 500000,
        "currency": "CNY",
        "destination_account": {"holder_name": "王小明", "bank": "ICBC", "account_number": "6222020000001234"},
    }
    body.update(overrides)
    return body


def withdrawal_request(**overrides) -> dict:
    body = {
        "customer": "c-1",
        "amount": 10000,
        "currency": "CNY",
        "destination_account": {"holder_name": "王小明", "bank": "ICBC", "account_number": "6222020000005678"},
    }
    body.update(overrides)
    return body


MONEY_OUT_BODIES = {PAYOUTS: payout_request, WITHDRAWALS: withdrawal_request}
_money_out_keys = iter(range(10**9))


def send_money_out(api, url: str, data, *, key: str | None = "auto", content_type="application/json"):
    headers = {}
    if key == "auto":
        key = f"bad-input-{next(_money_out_keys)}"
    if key is not None:
        headers["HTTP_IDEMPOTENCY_KEY"] = key
    if isinstance(data, dict):
        data = json.dumps(data)
    return api.generic("POST", url, data=data, content_type=content_type, **headers)


def refused_money_out(api, url, data, *, status=400, code="validation_error", field=None, key="auto"):
    before = money_out_counts()
    response = send_money_out(api, url, data, key=key)
    assert response.status_code == status, (response.status_code, response.content[:500])
    error = response.json()["error"]
    assert set(error) == {"code", "message", "fields"}
    assert error["code"] == code, error
    if field is not None:
        assert any(name == field or name.startswith(f"{field}.") for name in error["fields"]), error["fields"]
    assert money_out_counts() == before
    return error


@pytest.mark.parametrize("url", [PAYOUTS, WITHDRAWALS])
def test_money_out_valid_bodies_are_accepted(api, catalogue, url):
    """Control: each refusal below differs from an accepted body in one place only. (Nothing funds
    the balance and no channel verifies the account here, so the pre-checks stop it: but it exists.)"""
    before = money_out_counts()

    response = send_money_out(api, url, MONEY_OUT_BODIES[url]())

    assert response.status_code == 201, response.content
    assert response.json()["status"] in {"failed", "held"}
    assert money_out_counts()["Disbursement"] == before["Disbursement"] + 1


@pytest.mark.parametrize("url", [PAYOUTS, WITHDRAWALS])
@pytest.mark.parametrize("literal", AMOUNT_FIELD_ERRORS.values(), ids=AMOUNT_FIELD_ERRORS.keys())
def test_money_out_bad_amount_is_a_field_error(api, catalogue, url, literal):
    refused_money_out(api, url, with_literal(MONEY_OUT_BODIES[url](), "amount", literal), field="amount")


@pytest.mark.parametrize("url", [PAYOUTS, WITHDRAWALS])
@pytest.mark.parametrize("literal", AMOUNT_PARSE_ERRORS.values(), ids=AMOUNT_PARSE_ERRORS.keys())
def test_money_out_non_json_number_is_a_parse_error(api, catalogue, url, literal):
    refused_money_out(api, url, with_literal(MONEY_OUT_BODIES[url](), "amount", literal), code="parse_error")


@pytest.mark.parametrize("url", [PAYOUTS, WITHDRAWALS])
@pytest.mark.parametrize("field", ["currency", "source_currency", "destination_account.currency"])
@pytest.mark.parametrize("literal", CURRENCIES.values(), ids=CURRENCIES.keys())
def test_money_out_bad_currency_is_a_field_error(api, catalogue, url, field, literal):
    refused_money_out(api, url, with_literal(MONEY_OUT_BODIES[url](), field, literal), field=field)


MONEY_OUT_MASS = [
    *MASS_ASSIGNED,
    "source_amount",
    "fx_rate",
    "required_approvals",
    "approvals",
    "created_by",
    "has_funds_in_flight",
    "destination_account.last4",
]


@pytest.mark.parametrize("url", [PAYOUTS, WITHDRAWALS])
@pytest.mark.parametrize("key", MONEY_OUT_MASS)
def test_money_out_mass_assignment_is_refused(api, catalogue, url, key):
    refused_money_out(api, url, with_literal(MONEY_OUT_BODIES[url](), key, "1"), field=key)


@pytest.mark.parametrize("url", [PAYOUTS, WITHDRAWALS])
@pytest.mark.parametrize(
    "field", ["destination_account.holder_name", "destination_account.bank", "reference", "customer", "device_id"]
)
@pytest.mark.parametrize("value", ["line\r\nINFO forged", "nul\x00", "x" * 100_000], ids=["crlf", "nul", "100k"])
def test_money_out_bad_text_is_refused(api, catalogue, url, field, value):
    if (url, field) in ((PAYOUTS, "customer"), (WITHDRAWALS, "reference")):
        field = "device_id"
    refused_money_out(api, url, with_literal(MONEY_OUT_BODIES[url](), field, json.dumps(value)), field=field)


@pytest.mark.parametrize("url", [PAYOUTS, WITHDRAWALS])
@pytest.mark.parametrize(
    ("key", "code"),
    [(None, "idempotency_key_missing"), ("", "idempotency_key_invalid"), ("k" * 256, "idempotency_key_invalid")],
    ids=["missing", "empty", "256"],
)
def test_money_out_needs_a_good_idempotency_key(api, catalogue, url, key, code):
    refused_money_out(api, url, MONEY_OUT_BODIES[url](), key=key, code=code, field="Idempotency-Key")


def test_money_out_key_reused_on_another_endpoint_is_422(api, catalogue):
    first = send_money_out(api, PAYOUTS, payout_request(), key="shared-key")
    assert first.status_code == 201

    refused_money_out(
        api, WITHDRAWALS, withdrawal_request(), key="shared-key", status=422, code="idempotency_key_reused"
    )


@pytest.mark.parametrize(
    ("url", "raw"),
    [
        (PAYOUTS, json.dumps(payout_request())[:-1] + ', "amount": 1}'),
        (WITHDRAWALS, json.dumps(withdrawal_request())[:-1] + ', "customer": "c-0900"}'),
        (PAYOUTS, with_literal(payout_request(), "destination_account", '{"bank": "a", "bank": "b"}')),
    ],
    ids=["payout-amount", "withdrawal-customer", "payout-nested"],
)
def test_money_out_duplicate_json_keys_are_refused(api, catalogue, url, raw):
    refused_money_out(api, url, raw, code="parse_error")


def test_withdrawal_for_another_merchants_customer_is_refused(api, other_api, catalogue):
    refused_money_out(other_api, WITHDRAWALS, withdrawal_request(), status=422, field="customer")


@pytest.mark.parametrize("url", [PAYOUTS, WITHDRAWALS, INCIDENTS])
@pytest.mark.parametrize(("param", "value"), BAD_PAGING, ids=[f"{p}={v[:10]}" for p, v in BAD_PAGING])
def test_money_out_bad_paging_is_400(api, catalogue, url, param, value):
    before = money_out_counts()

    response = api.get(url, {param: value})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert param in response.json()["error"]["fields"]
    assert money_out_counts() == before


@pytest.mark.parametrize(
    ("body", "field", "status"),
    [
        ({"summary": "x"}, None, 422),
        ({"payout": 1, "withdrawal": 2, "summary": "x"}, None, 422),
        ({"payout": 10**9, "summary": "x"}, "payout", 422),
        ({"payout": "1", "summary": "x\x00"}, "summary", 400),
        ({"payout": 1, "summary": "x", "status": "resolved"}, "status", 400),
    ],
)
def test_bad_incident_is_refused(api, catalogue, body, field, status):
    error = refused_money_out(api, INCIDENTS, body, key=None, status=status, field=field)
    assert error["message"]


# --- alerts and silences ---------------------------------------------------------------------------

ALERTS, SILENCES = "/api/v1/alerts", "/api/v1/silences"


def alert_counts() -> dict[str, int]:
    from apps.alerts.models import Alert, AlertDelivery, AlertEvent, Silence

    return count_rows((Alert, AlertEvent, AlertDelivery, Silence))


@pytest.mark.parametrize("url", [ALERTS, SILENCES])
@pytest.mark.parametrize(("param", "value"), BAD_PAGING, ids=[f"{p}={v[:10]}" for p, v in BAD_PAGING])
def test_alerts_bad_paging_is_400(api, url, param, value):
    before = alert_counts()

    response = api.get(url, {param: value})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert param in response.json()["error"]["fields"]
    assert alert_counts() == before


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("severity", "P9"),
        ("severity", "p0"),
        ("status", "closed"),
        ("since", "yesterday"),
        ("until", "2026-13-01"),
        ("kind", "a\x00b"),
        ("kind", "x" * 101),
    ],
)
def test_alerts_bad_filters_are_400(api, param, value):
    response = api.get(ALERTS, {param: value})

    assert response.status_code == 400
    assert param in response.json()["error"]["fields"]


def _silence(**overrides) -> dict:
    ends = (timezone.now() + dt.timedelta(hours=1)).isoformat()
    return {"matchers": {"kind": "refund_cancelled"}, "ends_at": ends, **overrides}


@pytest.mark.parametrize(
    ("body", "field", "status"),
    [
        (_silence(matchers={}), "matchers", 400),
        (_silence(matchers={"merchant_id": "2"}), "matchers", 400),
        (_silence(matchers={"kind": "a\r\nb"}), "matchers", 400),
        (_silence(matchers="kind=x"), "matchers", 400),
        (_silence(ends_at="2000-01-01T00:00:00Z"), "ends_at", 422),
        (_silence(ends_at="not a date"), "ends_at", 400),
        (_silence(ends_at=(timezone.now() + dt.timedelta(days=400)).isoformat()), "ends_at", 422),
        (_silence(comment="x" * 100_000), "comment", 400),
        (_silence(merchant=2), "merchant", 400),
        ({"matchers": {"kind": "x"}}, "ends_at", 400),
    ],
)
def test_bad_silence_is_refused_and_writes_nothing(api, body, field, status):
    before = alert_counts()

    response = api.post(SILENCES, body, format="json")

    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert set(error) == {"code", "message", "fields"}
    assert any(name == field or name.startswith(f"{field}.") for name in error["fields"]), error
    assert alert_counts() == before


def test_alert_action_with_unknown_field_is_refused(api):
    from apps.alerts.services import alert_raise

    alert = alert_raise(
        tier="P1",
        kind="k",
        dedup_key="bad-input:1",
        subject_type="refund",
        subject_id=1,
        merchant=api.merchant,
        summary="s",
    )
    before = alert_counts()

    for body in ({"status": "resolved"}, {"note": "x\x00"}):
        response = api.post(f"{ALERTS}/{alert.pk}/ack", body, format="json")
        assert response.status_code == 400
    assert alert_counts() == before
    alert.refresh_from_db()
    assert alert.status == "open"
