"""Every list endpoint of /api/v1 refuses a known filter with a bad value (400 naming it), keeps
filtering with a good one, ignores parameters it does not know, and declares its filters in the
OpenAPI schema with their types and enums."""

from __future__ import annotations

import datetime as dt

import pytest
import yaml
from django.core.management import call_command
from rest_framework.test import APIClient

from apps.accounts.models import User
from apps.alerts.models import Alert, Tier
from apps.commissions.models import Commission
from apps.ledger.models import Reconciliation, ReconciliationItem
from apps.ledger.services import reconciliation_run
from apps.notifications.models import Channel, Notification
from apps.payouts.models import Disbursement, Incident
from apps.refunds.models import Refund
from apps.risk.models import Case, ListEntry, Rule, Scope

pytestmark = pytest.mark.django_db

ENUM = ("bogus", "")
INTEGER = ("x", "1.5", "0", "100000")
BOOLEAN = ("maybe", "")
DATE = ("2026-13-01", "yesterday", "20261127", "")
DATETIME = ("noon", "2026-02-30T10:00:00Z", "")
TEXT = ("a\x00b", "line\nbreak")

# path -> {parameter: (bad values, a good value, the schema's type, the schema's enum or None)}
MERCHANT_LISTS = {
    "/api/v1/customers": {"external_id": (TEXT, "c-1", "string", None)},
    "/api/v1/products": {"sku": (TEXT, "sku-1", "string", None)},
    "/api/v1/orders": {"external_id": (TEXT, "o-1", "string", None)},
    "/api/v1/refunds": {
        "status": (ENUM, "approved", "string", Refund.Status.values),
        "order": (TEXT, "o-1", "string", None),
    },
    "/api/v1/payouts": {"status": (ENUM, "paid", "string", Disbursement.Status.values)},
    "/api/v1/withdrawals": {"status": (ENUM, "paid", "string", Disbursement.Status.values)},
    "/api/v1/incidents": {
        "q": (TEXT, "duplicate", "string", None),
        "status": (ENUM, "open", "string", Incident.Status.values),
        "category": (ENUM, "fraud", "string", Incident.Category.values),
    },
    "/api/v1/freezes": {
        "status": (ENUM, "active", "string", ["active", "lifted"]),
        "customer": (TEXT, "c-1", "string", None),
    },
    "/api/v1/alerts": {
        "severity": (ENUM, "P0", "string", Tier.values),
        "status": (ENUM, "open", "string", Alert.Status.values),
        "kind": (TEXT, "refund_failed", "string", None),
        "since": (DATETIME, "2026-01-01T00:00:00Z", "string", None),
        "until": (DATETIME, "2026-01-01", "string", None),
    },
    "/api/v1/silences": {"active": (BOOLEAN, "true", "boolean", None)},
    "/api/v1/commissions": {
        "beneficiary": (TEXT, "c-1", "string", None),
        "order": (TEXT, "o-1", "string", None),
        "status": (ENUM, "pending", "string", Commission.Status.values),
        "level": (INTEGER, "1", "integer", None),
    },
    "/api/v1/notifications": {
        "recipient": (TEXT, "c-1", "string", None),
        "order": (TEXT, "o-1", "string", None),
        "status": (ENUM, "sent", "string", Notification.Status.values),
        "channel": (ENUM, "sms", "string", Channel.values),
        "subject_type": (ENUM, "refund", "string", ["alert", "commission", "payout", "refund", "withdrawal"]),
    },
    "/api/v1/rules": {
        "scope": (ENUM, Scope.values[0], "string", Scope.values),
        "mode": (ENUM, Rule.Mode.values[0], "string", Rule.Mode.values),
    },
    "/api/v1/cases": {
        "status": (ENUM, "open", "string", Case.Status.values),
        "subject_type": (ENUM, "refund", "string", ["payout", "refund", "withdrawal"]),
    },
    "/api/v1/lists": {
        "list_type": (ENUM, "block", "string", ListEntry.ListType.values),
        "kind": (ENUM, "ip", "string", ListEntry.Kind.values),
    },
}
PLATFORM_LISTS = {
    "/api/v1/reconciliations": {
        "date": (DATE, "2026-03-10", "string", None),
        "source": (TEXT, "bank-a", "string", None),
        "status": (ENUM, Reconciliation.Status.values[0], "string", Reconciliation.Status.values),
        "current": (BOOLEAN, "false", "boolean", None),
    },
}
LISTS = {**MERCHANT_LISTS, **PLATFORM_LISTS}

BAD = [
    pytest.param(path, name, value, id=f"{path}?{name}={value!r}")
    for path, params in LISTS.items()
    for name, (bads, _good, _type, _enum) in params.items()
    for value in bads
]
GOOD = [
    pytest.param(path, name, good, id=f"{path}?{name}={good}")
    for path, params in LISTS.items()
    for name, (_bads, good, _type, _enum) in params.items()
]
DECLARED = [
    pytest.param(path, name, kind, enum, id=f"{path}?{name}")
    for path, params in LISTS.items()
    for name, (_bads, _good, kind, enum) in params.items()
]


@pytest.fixture
def operator() -> APIClient:
    user = User.objects.create_user(username="ops", password="pw-for-tests-only", is_staff=True)
    client = APIClient()
    client.force_login(user)
    return client


def _client(path: str, api, operator):
    return operator if path in PLATFORM_LISTS else api


@pytest.mark.parametrize(("path", "name", "value"), BAD)
def test_a_bad_filter_value_is_a_400_naming_the_parameter(api, operator, path, name, value):
    response = _client(path, api, operator).get(path, {name: value})
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert list(error["fields"]) == [name]


@pytest.mark.parametrize(("path", "name", "value"), GOOD)
def test_a_good_filter_value_is_accepted(api, operator, path, name, value):
    response = _client(path, api, operator).get(path, {name: value})
    assert response.status_code == 200, response.content


def test_the_reconciliation_detail_refuses_an_unknown_item_kind(operator):
    run = reconciliation_run(date=dt.date(2026, 3, 10), source="bank-a", lines=[])
    bad = operator.get(f"/api/v1/reconciliations/{run.pk}", {"kind": "bogus"})
    assert bad.status_code == 400
    assert list(bad.json()["error"]["fields"]) == ["kind"]
    good = operator.get(f"/api/v1/reconciliations/{run.pk}", {"kind": ReconciliationItem.Kind.values[0]})
    assert good.status_code == 200


def test_unknown_parameters_are_ignored(api):
    assert api.get("/api/v1/refunds", {"colour": "blue"}).status_code == 200


def _freeze(api, external_id: str) -> int:
    created = api.post("/api/v1/customers", {"external_id": external_id, "name": "Wang"}, format="json")
    assert created.status_code == 201, created.content
    frozen = api.post("/api/v1/freezes", {"customer": external_id, "reason": "chargebacks"}, format="json")
    assert frozen.status_code == 201, frozen.content
    return frozen.json()["id"]


def test_freezes_filter_by_status_and_refuse_an_unknown_one(api):
    kept = _freeze(api, "c-kept")
    lifted = _freeze(api, "c-lifted")
    assert api.post(f"/api/v1/freezes/{lifted}/lift", {"reason": "cleared"}, format="json").status_code == 200

    def ids(**query) -> list[int]:
        response = api.get("/api/v1/freezes", query)
        assert response.status_code == 200, response.content
        return [row["id"] for row in response.json()["results"]]

    assert ids(status="active") == [kept]
    assert ids(status="lifted") == [lifted]
    assert sorted(ids()) == sorted([kept, lifted])
    assert api.get("/api/v1/freezes", {"status": "bogus"}).status_code == 400


@pytest.fixture(scope="module")
def schema(django_db_blocker) -> dict:
    from io import StringIO

    out = StringIO()
    with django_db_blocker.unblock():
        call_command("spectacular", stdout=out)
    return yaml.safe_load(out.getvalue())


@pytest.mark.parametrize(("path", "name", "kind", "enum"), DECLARED)
def test_every_filter_is_declared_in_the_schema_with_its_type(schema, path, name, kind, enum):
    parameters = {p["name"]: p for p in schema["paths"][path]["get"]["parameters"] if p["in"] == "query"}
    assert name in parameters
    declared = parameters[name]["schema"]
    assert declared["type"] == kind
    if enum is not None:
        assert sorted(declared["enum"]) == sorted(enum)
