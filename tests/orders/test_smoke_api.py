import pytest

pytestmark = pytest.mark.django_db


def test_customer_product_order_usage_round_trip(api):
    assert api.post("/api/v1/customers", {"external_id": "c-1", "name": "王小明"}, format="json").status_code == 201
    product = api.post(
        "/api/v1/products",
        {"sku": "ppt", "name": "PPT", "kind": "course", "price": 19900, "currency": "CNY"},
        format="json",
    )
    assert product.status_code == 201, product.json()
    assert product.json()["refund_policy"]["unconditional_minutes"] == 15
    order = api.post(
        "/api/v1/orders",
        {
            "external_id": "o-1",
            "customer": "c-1",
            "product": "ppt",
            "amount": 19900,
            "currency": "CNY",
            "paid_at": "2026-01-01T10:00:00Z",
            "payment_method": "card",
            "payer_account": {"holder_name": "王小明", "bank": "ICBC", "account_number": "6222020000001234"},
        },
        format="json",
    )
    assert order.status_code == 201, order.json()
    assert order.json()["payer_account"]["account_number"] == "**** 1234"
    usage = api.post(f"/api/v1/orders/{order.json()['id']}/usage", {"kind": "progress", "value": 20}, format="json")
    assert usage.status_code == 201, usage.json()
    assert usage.json()["value"] == 20
