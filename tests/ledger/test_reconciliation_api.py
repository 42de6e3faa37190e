"""GET/POST /api/v1/reconciliations: platform operators only; list filters, detail with items,
CSV uploads (JSON text and multipart), pulls queued on a worker, bad input refused with nothing
written."""

from __future__ import annotations

import io
import json

import pytest
from rest_framework.test import APIClient

from apps.accounts.models import User
from apps.ledger.models import Reconciliation, ReconciliationItem, StatementLine
from apps.ledger.services import reconciliation_run
from tests.factories import StaffFactory
from tests.ledger.support import DAY, FakeSource, book, days, line
from tests.support import count_rows

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

URL = "/api/v1/reconciliations"
TABLES = (Reconciliation, ReconciliationItem, StatementLine)
CSV = (
    "line_id,date,reference,amount,currency,direction\n"
    "L-1,2026-03-10,refund:1:1,100.00,CNY,out\n"
    "L-2,2026-03-10,refund:2:1,5.00,CNY,out\n"
)


@pytest.fixture
def operator() -> APIClient:
    user = User.objects.create_user(username="ops", password="pw-for-tests-only", is_staff=True)
    client = APIClient()
    client.force_login(user)
    return client


@pytest.fixture
def runs(db):
    book("refund:1:settle", 10000)
    book("refund:3:settle", 300)
    mismatched = reconciliation_run(date=DAY, source="bank-a", lines=[line("refund:1:1", 10000)])
    clean = reconciliation_run(date=days(-1), source="bank-b", lines=[])
    rerun = reconciliation_run(date=DAY, source="bank-a", lines=[])
    return {"mismatched": mismatched, "clean": clean, "rerun": rerun}


def assert_error(response, status: int, code: str, field: str | None = None) -> None:
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code
    if field is not None:
        assert field in error["fields"], error


# --- who may ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), [("get", URL), ("get", f"{URL}/1"), ("post", URL)])
def test_anonymous_is_401(client, method, path):
    response = getattr(APIClient(), method)(path)
    assert_error(response, 401, "not_authenticated")


@pytest.mark.parametrize(("method", "path"), [("get", URL), ("get", f"{URL}/1"), ("post", URL)])
def test_merchant_api_key_and_merchant_staff_are_403(api, merchant, runs, method, path):
    staff = StaffFactory(merchant=merchant, is_staff=True)
    session = APIClient()
    session.force_login(staff)
    before = count_rows(TABLES)

    for client in (api, session):
        response = getattr(client, method)(path, {"date": "2026-03-10", "source": "x"}, format="json")
        assert_error(response, 403, "permission_denied")
    assert count_rows(TABLES) == before


def test_non_staff_platform_user_is_403(runs):
    user = User.objects.create_user(username="nobody", password="pw-for-tests-only")
    client = APIClient()
    client.force_login(user)
    assert_error(client.get(URL), 403, "permission_denied")


# --- reading -------------------------------------------------------------------------------------


def test_list_newest_first_with_filters(operator, runs):
    body = operator.get(URL).json()
    assert body["count"] == 3
    assert [(r["date"], r["source"], r["version"]) for r in body["results"]] == [
        ("2026-03-10", "bank-a", 2),
        ("2026-03-10", "bank-a", 1),
        ("2026-03-09", "bank-b", 1),
    ]
    first = body["results"][1]
    assert first["counts"] == {
        "matched": 1,
        "missing_on_platform": 0,
        "missing_on_channel": 1,
        "amount_mismatch": 0,
        "duplicate": 0,
    }
    assert (first["status"], first["severity"], first["is_current"]) == ("mismatched", "P0", False)
    assert first["totals"] == {
        "CNY": {"statement_out": 10000, "statement_in": 0, "platform_out": 10300, "platform_in": 0}
    }

    def ids(**params):
        return [r["id"] for r in operator.get(URL, params).json()["results"]]

    assert ids(date="2026-03-09") == [runs["clean"].pk]
    assert ids(source="bank-a") == [runs["rerun"].pk, runs["mismatched"].pk]
    assert ids(status="clean") == [runs["clean"].pk]
    assert ids(current="true", source="bank-a") == [runs["rerun"].pk]
    assert ids(current="false") == [runs["mismatched"].pk]


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("date", "2026-3-10"),
        ("date", "yesterday"),
        ("date", "2026-02-30"),
        ("status", "weird"),
        ("current", "yes"),
        ("source", "a\x00"),
        ("limit", "0"),
        ("limit", "10000000"),
    ],
)
def test_bad_list_filter_is_400(operator, runs, param, value):
    assert_error(operator.get(URL, {param: value}), 400, "validation_error", param)


def test_detail_has_the_items_filtered_by_kind_and_paged(operator, runs):
    run = runs["mismatched"]
    body = operator.get(f"{URL}/{run.pk}").json()
    assert body["id"] == run.pk
    assert body["items"]["count"] == 2
    assert {(i["kind"], i["reference"]) for i in body["items"]["results"]} == {
        ("matched", "refund:1"),
        ("missing_on_channel", "refund:3"),
    }

    missing = operator.get(f"{URL}/{run.pk}", {"kind": "missing_on_channel"}).json()["items"]["results"]
    assert missing == [
        {
            "id": missing[0]["id"],
            "kind": "missing_on_channel",
            "severity": "P0",
            "reference": "refund:3",
            "direction": "out",
            "currency": "CNY",
            "statement_amount": None,
            "platform_amount": 300,
            "difference": None,
            "statement_date": None,
            "platform_date": "2026-03-10",
            "line_ids": [],
            "ledger_references": ["refund:3:settle"],
            "detail": "in the ledger, no statement line within the date tolerance",
        }
    ]
    page = operator.get(f"{URL}/{run.pk}", {"limit": 1, "offset": 1}).json()["items"]
    assert (page["count"], len(page["results"])) == (2, 1)
    assert_error(operator.get(f"{URL}/{run.pk}", {"kind": "nope"}), 400, "validation_error", "kind")


@pytest.mark.parametrize("pk", ["999999", str(2**63), str(10**30)])
def test_unknown_id_is_404(operator, runs, pk):
    assert_error(operator.get(f"{URL}/{pk}"), 404, "not_found")


# --- running -------------------------------------------------------------------------------------


def test_post_csv_as_json_text_imports_and_reconciles(operator):
    book("refund:1:settle", 10000)

    response = operator.post(URL, {"date": "2026-03-10", "source": "bank-a", "statement_csv": CSV}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["status"], body["severity"], body["source"], body["version"]) == ("mismatched", "P0", "bank-a", 1)
    assert (body["counts"]["matched"], body["counts"]["missing_on_platform"]) == (1, 1)
    assert body["actor"] == "api:ops"
    assert StatementLine.objects.count() == 2


def test_post_csv_as_multipart_file(operator):
    book("refund:1:settle", 10000)
    book("refund:2:settle", 500)
    upload = io.BytesIO(CSV.encode())
    upload.name = "statement.csv"

    response = operator.post(URL, {"date": "2026-03-10", "source": "bank-a", "statement": upload}, format="multipart")

    assert response.status_code == 201, response.content
    assert (response.json()["status"], response.json()["counts"]["matched"]) == ("clean", 2)


def test_multipart_file_over_the_limit_is_413(operator, settings):
    settings.RECONCILIATION_CSV_MAX_BYTES = 50
    upload = io.BytesIO(CSV.encode())
    upload.name = "statement.csv"
    response = operator.post(URL, {"date": "2026-03-10", "source": "bank-a", "statement": upload}, format="multipart")
    assert_error(response, 413, "payload_too_large")
    assert count_rows(TABLES) == {"Reconciliation": 0, "ReconciliationItem": 0, "StatementLine": 0}


def test_declared_oversized_upload_is_413_before_it_is_read(operator, settings):
    settings.RECONCILIATION_CSV_MAX_BYTES = 10
    response = operator.generic(
        "POST",
        URL,
        data=b"--x\r\n",
        content_type="multipart/form-data; boundary=x",
        CONTENT_LENGTH=str(10 + 64 * 1024 + 1),
    )
    assert_error(response, 413, "payload_too_large")


def test_post_for_a_registered_source_is_queued_on_a_worker(operator):
    book("refund:1:settle", 10000)
    with FakeSource("bank-a") as source:
        source.add(line("refund:1:1", 10000))
        response = operator.post(URL, {"date": "2026-03-10", "source": "bank-a"}, format="json")

    assert response.status_code == 202, response.content
    assert response.json() == {"status": "queued", "date": "2026-03-10", "source": "bank-a"}
    # Tests run tasks eagerly: the worker's run is already there.
    run = Reconciliation.objects.get()
    assert (run.status, run.matched_count, run.actor) == ("clean", 1, "api:ops")


# 400: the body breaks the schema; 422: well-formed, refused by a rule (a future day, an unknown source,
# a statement whose content cannot be read).
BAD_BODIES = [
    ({"source": "bank-a", "statement_csv": CSV}, "date", 400),
    ({"date": "10/03/2026", "source": "bank-a", "statement_csv": CSV}, "date", 400),
    ({"date": "2999-01-01", "source": "bank-a", "statement_csv": CSV}, "date", 422),
    ({"date": "2999-01-01", "source": "bank-a"}, "date", 422),
    ({"date": "2026-03-10", "source": "Bank A", "statement_csv": CSV}, "source", 422),
    ({"date": "2026-03-10", "source": "x" * 33, "statement_csv": CSV}, "source", 400),
    ({"date": "2026-03-10", "source": "unregistered"}, "source", 422),
    ({"date": "2026-03-10", "source": "bank-a", "statement_csv": CSV, "status": "clean"}, "status", 400),
    ({"date": "2026-03-10", "source": "bank-a", "statement_csv": CSV, "version": 7}, "version", 400),
    ({"date": "2026-03-10", "source": "bank-a", "statement_csv": 12}, "statement_csv", 400),
    ({"date": "2026-03-10", "source": "bank-a", "statement_csv": CSV.replace("100.00", "1e2")}, "line 2", 422),
    ({"date": "2026-03-10", "source": "bank-a", "statement_csv": "nonsense\n"}, "header", 422),
    ({"date": "2026-03-10", "source": "bank-a", "statement_csv": ""}, "statement_csv", 400),
]


@pytest.mark.parametrize(
    ("body", "field", "status"), BAD_BODIES, ids=[f"{i}-{field}" for i, (_, field, _) in enumerate(BAD_BODIES)]
)
def test_bad_body_is_refused_and_writes_nothing(operator, body, field, status):
    book("refund:1:settle", 10000)
    before = count_rows(TABLES)

    response = operator.post(URL, body, format="json")

    assert response.status_code == status, response.content
    assert field in response.json()["error"]["fields"], response.json()
    assert count_rows(TABLES) == before


def test_conflicting_reimport_is_409_and_writes_nothing(operator):
    assert (
        operator.post(URL, {"date": "2026-03-10", "source": "bank-a", "statement_csv": CSV}, format="json").status_code
        == 201
    )
    before = count_rows(TABLES)
    changed = CSV.replace("5.00", "6.00")

    response = operator.post(URL, {"date": "2026-03-10", "source": "bank-a", "statement_csv": changed}, format="json")

    assert_error(response, 409, "statement_line_conflict", "line_id")
    assert count_rows(TABLES) == before


@pytest.mark.parametrize(
    ("raw", "content_type", "status"),
    [
        ('{"date": "2026-03-10", "date": "2026-03-11", "source": "a", "statement_csv": ""}', "application/json", 400),
        ("[1, 2]", "application/json", 400),
        (CSV, "text/csv", 415),
        (b"\xff\xfe", "application/json", 400),
    ],
    ids=["duplicate-keys", "not-an-object", "wrong-content-type", "not-utf8"],
)
def test_malformed_requests_are_refused(operator, raw, content_type, status):
    response = operator.generic("POST", URL, data=raw, content_type=content_type)
    assert response.status_code == status, response.content
    assert "error" in json.loads(response.content)
    assert count_rows(TABLES) == {"Reconciliation": 0, "ReconciliationItem": 0, "StatementLine": 0}
