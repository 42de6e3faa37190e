"""The published OpenAPI schema is valid and generates without warnings (clients are built from it)."""

from io import StringIO

import pytest
from django.core.management import call_command


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
