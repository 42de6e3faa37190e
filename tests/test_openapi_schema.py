"""The published OpenAPI schema is valid and generates without warnings (clients are built from it)."""

import json
import re
from io import StringIO

import jsonschema_rs
import pytest
from django.core.management import call_command
from rest_framework.exceptions import ValidationError

from apps.accounts.models import Customer
from apps.common.fields import MultiLineCharField, SingleLineCharField, text_pattern
from apps.payouts.models import Incident
from apps.risk.models import Rule


@pytest.mark.django_db
def test_schema_validates_without_warnings():
    out = StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)
    schema = out.getvalue()
    for path in (
        "/api/v1/refunds",
        "/api/v1/orders",
        "/api/v1/rules",
        "/api/v1/cases",
        "/api/v1/reconciliations",
        "/api/v1/payouts",
        "/api/v1/withdrawals",
        "/api/v1/incidents",
        "/api/v1/freezes",
        "/api/v1/freezes/{id}/lift",
        "/api/v1/alerts",
        "/api/v1/alerts/{id}/ack",
        "/api/v1/silences",
        "/api/v1/commissions",
        "/api/v1/commissions/{id}",
        "/api/v1/commission-plans",
        "/api/v1/commission-plans/{id}",
        "/api/v1/notifications",
        "/api/v1/notifications/{id}",
        "/api/v1/customers/{external_id}/inbox",
        "/api/v1/customers/{external_id}/inbox/read",
        "/api/v1/customers/{external_id}/notification-preferences",
    ):
        assert f"{path}:" in schema


# --- what the schema promises, checked against what the server enforces --------------------------

HTTP_METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def schema(django_db_blocker):
    with django_db_blocker.unblock():
        out = StringIO()
        call_command("spectacular", "--format", "openapi-json", stdout=out)
    return json.loads(out.getvalue())


def _operations(schema):
    for path, item in schema["paths"].items():
        for method in HTTP_METHODS:
            if method in item:
                yield path, method, item[method]


def _error_ref(response) -> str | None:
    return response.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref")


def test_every_operation_lists_its_error_responses_in_the_error_shape(schema):
    error = schema["components"]["schemas"]["Error"]
    assert error["properties"]["error"]["$ref"] == "#/components/schemas/_ErrorDetail"
    assert set(schema["components"]["schemas"]["_ErrorDetail"]["required"]) == {"code", "message", "fields"}
    operations = list(_operations(schema))
    assert len(operations) > 80
    for path, method, operation in operations:
        expected = {"400", "401", "403", "429", "503"}
        if "{" in path:
            expected.add("404")
        if method != "get":
            expected.add("409")
        if method in ("post", "patch"):
            expected |= {"413", "415"}
        if any(p["name"] == "Idempotency-Key" for p in operation.get("parameters", [])):
            expected.add("422")
        responses = operation["responses"]
        assert expected <= set(responses), (method, path, expected - set(responses))
        for status in expected:
            assert _error_ref(responses[status]) == "#/components/schemas/Error", (method, path, status)
        for status in ("429", "503"):
            assert "Retry-After" in responses[status]["headers"], (method, path, status)
        assert any(code.startswith("2") for code in responses), (method, path)
        if any(p["in"] == "query" for p in operation.get("parameters", [])):
            assert "414" in responses, (method, path)  # gunicorn's limit on the request line


def test_money_moving_creates_document_the_idempotency_key_they_enforce(schema):
    idempotent = {
        ("/api/v1/refunds", "post"),
        ("/api/v1/payouts", "post"),
        ("/api/v1/withdrawals", "post"),
        ("/api/v1/incidents/{id}/returns", "post"),
    }
    for path, method in idempotent:
        operation = schema["paths"][path][method]
        (header,) = [p for p in operation["parameters"] if p["name"] == "Idempotency-Key"]
        assert header["in"] == "header"
        assert header["required"] is True
        assert header["schema"]["minLength"] == 1
        assert header["schema"]["maxLength"] == 255
        assert "422" in operation["responses"]
        pattern = re.compile(header["schema"]["pattern"])
        for key in ("k", "7f3a-…".encode("ascii", "ignore").decode(), "a b", "x" * 255, "~!"):
            assert pattern.fullmatch(key), key
        for key in (" lead", "trail ", "tab\tkey", "café", "new\nline", ""):
            assert not pattern.fullmatch(key), key


def test_limit_and_offset_carry_the_bounds_the_server_enforces(schema, api):
    lists = 0
    for path, _method, operation in _operations(schema):
        parameters = {p["name"]: p["schema"] for p in operation.get("parameters", []) if p["in"] == "query"}
        if "limit" in parameters:
            lists += 1
            assert (parameters["limit"]["minimum"], parameters["limit"]["maximum"]) == (1, 200), path
            assert parameters["offset"]["minimum"] == 0, path
    assert lists >= 20
    assert api.get("/api/v1/refunds", {"limit": 0}).status_code == 400
    assert api.get("/api/v1/refunds", {"limit": 201}).status_code == 400
    assert api.get("/api/v1/refunds", {"limit": 200}).status_code == 200


def test_request_bodies_are_closed_objects_as_the_server_refuses_unknown_fields(schema, api):
    requests = {name: c for name, c in schema["components"]["schemas"].items() if name.endswith("Request")}
    assert len(requests) > 20
    for name, component in requests.items():
        if component.get("type") == "object" and "properties" in component:
            assert component["additionalProperties"] is False, name
    response = api.post("/api/v1/customers", {"external_id": "c-1", "name": "A", "is_vip": True}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"is_vip": ["Unknown or read-only field."]}
    assert not Customer.objects.exists()


def test_currency_is_the_enum_of_supported_codes(schema, settings):
    assert schema["components"]["schemas"]["CurrencyEnum"]["enum"] == list(settings.SUPPORTED_CURRENCIES)
    product = schema["components"]["schemas"]["ProductInRequest"]["properties"]["currency"]
    assert product == {"$ref": "#/components/schemas/CurrencyEnum"} or product["allOf"] == [
        {"$ref": "#/components/schemas/CurrencyEnum"}
    ]


def _accepts(schema, field_schema, value) -> bool:
    """Whether `value` fits `field_schema` (one level of $ref/oneOf/allOf, enough for these fields)."""
    components = schema["components"]["schemas"]
    if value is None:
        return field_schema.get("nullable", False)
    if "$ref" in field_schema:
        return _accepts(schema, components[field_schema["$ref"].rsplit("/", 1)[1]], value)
    if "oneOf" in field_schema:
        return any(_accepts(schema, option, value) for option in field_schema["oneOf"])
    if "allOf" in field_schema:
        return all(_accepts(schema, option, value) for option in field_schema["allOf"])
    if "enum" in field_schema:
        return value in field_schema["enum"]
    if value == "" and field_schema.get("format") == "email":
        return False
    return field_schema.get("maxLength", 1) >= len(value) if "maxLength" in field_schema else True


@pytest.mark.parametrize(
    ("component", "field", "value"),
    [
        ("CustomerOut", "referrer", None),
        ("CustomerOut", "email", ""),
        ("OrderOut", "referrer", None),
        ("Alert", "assignee", None),
        ("CaseOut", "assignee", None),
        ("CaseOut", "decision", ""),
        ("FreezeOut", "lifted_by", None),
        ("RefundOut", "responsible_party", ""),
        ("PayoutOut", "responsible_party", ""),
        ("WithdrawalOut", "responsible_party", ""),
        ("Incident", "category", ""),
        ("CommissionPlan", "product", None),
    ],
)
def test_fields_that_can_be_empty_are_declared_so(schema, component, field, value):
    assert _accepts(schema, schema["components"]["schemas"][component]["properties"][field], value)


@pytest.mark.parametrize("multi_line", [False, True])
@pytest.mark.parametrize("allow_blank", [False, True])
def test_text_patterns_accept_exactly_what_the_text_fields_accept(multi_line, allow_blank):
    field_class = MultiLineCharField if multi_line else SingleLineCharField
    field = field_class(max_length=5, allow_blank=allow_blank)
    pattern = re.compile(text_pattern(multi_line=multi_line, allow_blank=allow_blank, max_length=5))
    samples = ["a", "", " ", "a b", " a ", "a\x1c", "\x1ca", "a\x1cb", "a\nb", "a\tb", "a\x00", "\u2028", "a\u2028b"]
    samples += ["\x7f", "王小明", "a\r\nb", " \n ", "abcde", "abcdef", "  abcde  ", " abcdef ", "a   e", "a    f"]
    samples += ["\x85\x0c", "\x1d\x8a", "\x85a\x85", "a\x85b", "\u3000", "\u3000a\u3000", "\x0b\x0b"]
    for sample in samples:
        try:
            field.run_validation(sample)
            accepted = True
        except ValidationError:
            accepted = False
        assert bool(pattern.fullmatch(sample)) == accepted, (sample, accepted)
        # As clients and schemathesis read it (ECMA regex: its `\s` is not Python's).
        assert jsonschema_rs.is_valid({"type": "string", "pattern": pattern.pattern}, sample) == accepted, sample


def test_query_filters_and_ip_addresses_carry_the_server_rules(schema):
    incidents = {p["name"]: p["schema"] for p in schema["paths"]["/api/v1/incidents"]["get"]["parameters"]}
    assert incidents["q"]["pattern"] == text_pattern(max_length=200)
    assert set(incidents["category"]["enum"]) == set(Incident.Category.values)  # stricter than text
    refund_ip = schema["components"]["schemas"]["RefundInRequest"]["properties"]["ip"]
    assert refund_ip["anyOf"] == [{"format": "ipv4"}, {"format": "ipv6"}]


def test_delete_rule_is_documented_as_what_it_does(schema, api):
    responses = schema["paths"]["/api/v1/rules/{id}"]["delete"]["responses"]
    assert "200" not in responses
    assert "content" not in responses["204"]  # no body
    created = api.post(
        "/api/v1/rules",
        {
            "code": "big-payout",
            "name": "Big payout",
            "scope": "payout",
            "expression": "amount >= 1000000",
            "action": "review",
            "severity": "P1",
            "mode": "shadow",
        },
        format="json",
    )
    assert created.status_code == 201, created.json()
    deleted = api.delete(f"/api/v1/rules/{created.json()['id']}")
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert api.get(f"/api/v1/rules/{created.json()['id']}").status_code == 404
    assert Rule.objects.get(pk=created.json()["id"]).retired_at is not None
