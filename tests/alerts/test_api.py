"""The alerts API: contract shape, filters, ack/resolve, silences, platform vs merchant scope."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.models import User
from apps.alerts.models import Alert, AlertEvent, Silence
from apps.alerts.services import alert_raise
from tests.alerts.conftest import rows

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def raise_(merchant, key, tier="P1", kind="refund_not_arrived", **kw):
    return alert_raise(
        tier=tier,
        kind=kind,
        dedup_key=key,
        subject_type="refund",
        subject_id=key.split(":")[1],
        merchant=merchant,
        summary=f"{kind} {key}",
        **kw,
    )


@pytest.fixture
def operator(db) -> APIClient:
    user = User.objects.create_user(username="ops", password="pw-for-tests-only", is_staff=True)
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_severity_filter_returns_the_contract_fields(api, merchant):
    p0 = raise_(merchant, "refund:1:large_failed", tier="P0", kind="refund_large_failed")
    raise_(merchant, "refund:2:not_arrived")

    response = api.get("/api/v1/alerts", {"severity": "P0"})

    assert response.status_code == 200
    items = response.json()["results"]
    assert [item["id"] for item in items] == [p0.pk]
    item = items[0]
    assert (item["severity"], item["kind"], item["status"]) == ("P0", "refund_large_failed", "open")
    assert item["subject"] == {"type": "refund", "id": "1", "label": ""}
    assert item["occurrence_count"] == 1


def test_status_kind_and_date_filters(api, merchant):
    with time_machine.travel(dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC), tick=False):
        old = raise_(merchant, "refund:1:not_arrived")
    new = raise_(merchant, "refund:2:cancelled", tier="P2", kind="refund_cancelled")
    api.post(f"/api/v1/alerts/{old.pk}/resolve", {}, format="json")

    def ids(**params):
        return [row["id"] for row in api.get("/api/v1/alerts", params).json()["results"]]

    assert ids(status="resolved") == [old.pk]
    assert ids(kind="refund_cancelled") == [new.pk]
    assert ids(since="2026-11-25") == [new.pk]
    assert ids(until="2026-11-21T00:00:00Z") == [old.pk]
    assert ids(severity="P2", status="open") == [new.pk]


def test_ack_then_resolve_records_events_and_is_idempotent(api, merchant):
    alert = raise_(merchant, "refund:1:not_arrived")

    acked = api.post(f"/api/v1/alerts/{alert.pk}/ack", {"note": "looking"}, format="json")
    again = api.post(f"/api/v1/alerts/{alert.pk}/ack", {}, format="json")
    resolved = api.post(f"/api/v1/alerts/{alert.pk}/resolve", {}, format="json")

    assert acked.status_code == again.status_code == resolved.status_code == 200
    assert acked.json()["status"] == "acked"
    assert resolved.json()["status"] == "resolved"
    assert [e["code"] for e in resolved.json()["events"]] == ["raised", "acked", "resolved"]
    assert resolved.json()["events"][1]["actor"].startswith("api:api-key:")
    assert AlertEvent.objects.filter(alert=alert).count() == 3


def test_acking_a_resolved_alert_is_409_and_writes_nothing(api, merchant):
    alert = raise_(merchant, "refund:1:not_arrived")
    api.post(f"/api/v1/alerts/{alert.pk}/resolve", {}, format="json")
    before = rows()

    response = api.post(f"/api/v1/alerts/{alert.pk}/ack", {}, format="json")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "invalid_state"
    assert rows() == before


def test_merchant_staff_ack_becomes_the_assignee(merchant):
    from tests.factories import StaffFactory

    staff = StaffFactory(merchant=merchant)
    client = APIClient()
    client.force_authenticate(staff)
    alert = raise_(merchant, "refund:1:not_arrived")

    assert client.post(f"/api/v1/alerts/{alert.pk}/ack", {}, format="json").json()["assignee"] == staff.username


def test_platform_operator_sees_platform_wide_alerts_merchants_do_not(api, operator, merchant):
    own = raise_(merchant, "refund:1:not_arrived")
    down = alert_raise(
        tier="P0",
        kind="channel_down",
        dedup_key="channel:sandbox:down",
        subject_type="channel",
        subject_id="sandbox",
        channel="sandbox",
        summary="down",
    )

    assert [row["id"] for row in api.get("/api/v1/alerts").json()["results"]] == [own.pk]
    assert {row["id"] for row in operator.get("/api/v1/alerts").json()["results"]} == {own.pk, down.pk}
    assert operator.post(f"/api/v1/alerts/{down.pk}/ack", {}, format="json").json()["status"] == "acked"


def test_silence_create_list_expire(api, merchant):
    ends = (timezone.now() + dt.timedelta(hours=2)).isoformat()

    created = api.post(
        "/api/v1/silences",
        {"matchers": {"kind": "refund_cancelled"}, "ends_at": ends, "comment": "noisy"},
        format="json",
    )

    assert created.status_code == 201, created.content
    body = created.json()
    assert body["matchers"] == {"kind": "refund_cancelled", "merchant_id": str(merchant.pk)}
    assert body["is_active"] is True
    silenced = raise_(merchant, "refund:9:cancelled", tier="P2", kind="refund_cancelled")
    assert silenced.status == "suppressed"
    assert [row["id"] for row in api.get("/api/v1/silences", {"active": "true"}).json()["results"]] == [body["id"]]

    expired = api.post(f"/api/v1/silences/{body['id']}/expire")

    assert expired.status_code == 200
    assert expired.json()["is_active"] is False
    assert api.get("/api/v1/silences", {"active": "true"}).json()["results"] == []
    assert Silence.objects.count() == 1
    assert raise_(merchant, "refund:10:cancelled", tier="P2", kind="refund_cancelled").status == "open"


def test_unauthenticated_is_refused(client, merchant):
    raise_(merchant, "refund:1:not_arrived")
    response = APIClient().get("/api/v1/alerts")
    assert response.status_code in (401, 403)
    assert Alert.objects.count() == 1
