"""The embedded default (SQLite) runs the whole decision path: a refund request through the API is
decided, recorded and answered, with the risk features read by raw SQL on SQLite too."""

import datetime as dt

import pytest
from django.utils import timezone

from apps.gateways.models import Channel
from apps.risk.models import Observation

pytestmark = pytest.mark.django_db


def test_a_refund_request_is_decided_on_any_supported_database(api):
    Channel.objects.update(is_enabled=False)  # no bank call: this is about the decision
    assert api.post("/api/v1/customers", {"external_id": "c-1", "name": "王小明"}, format="json").status_code == 201
    product = {"sku": "ppt", "name": "PPT", "kind": "course", "price": 19900, "currency": "CNY"}
    assert api.post("/api/v1/products", product, format="json").status_code == 201
    order = {
        "external_id": "o-1",
        "customer": "c-1",
        "product": "ppt",
        "amount": 19900,
        "currency": "CNY",
        "paid_at": (timezone.now() - dt.timedelta(minutes=5)).isoformat(),
        "payment_method": "card",
        "device_id": "d-1",
        "ip": "198.18.0.1",
        "payer_account": {"holder_name": "王小明", "bank": "ICBC", "account_number": "6222020000001234"},
    }
    assert api.post("/api/v1/orders", order, format="json").status_code == 201

    response = api.post(
        "/api/v1/refunds",
        {"order": "o-1", "amount": 1000, "reason": "mistake"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="embedded-1",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["decision"]["outcome"] == "approved"
    assert body["decision"]["clauses"][0]["clause"] == "unconditional_window"
    observation = Observation.objects.get(subject_id=body["id"])
    assert observation.features["customer_age_days"] == 0.0
    assert observation.features["customer_refunds_1h"] == 1.0
