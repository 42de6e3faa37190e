"""The operators' admin: every registered model's list, search and first change page open for a
superuser, and the rows only services write offer no add, change or delete."""

from __future__ import annotations

import io

import pytest
from django.contrib import admin
from django.core.management import call_command
from django.urls import reverse

from apps.accounts.models import User

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

# Written only by services: the admin must never offer to add, change or delete them.
SERVICE_ONLY = (
    "alerts.Alert",
    "alerts.AlertDelivery",
    "commissions.Commission",
    "commissions.CommissionEvent",
    "gateways.ChannelCall",
    "gateways.InboundWebhook",
    "ledger.LedgerTransaction",
    "notifications.Notification",
    "notifications.ProviderStatusEvent",
    "refunds.SupportTicket",
)


@pytest.fixture
def operator(client):
    call_command("seed_demo", "--force", stdout=io.StringIO())
    user = User.objects.create_superuser(username="op", password="x" * 12, email="op@example.com")
    client.force_login(user)
    return client


def test_every_changelist_search_and_change_page_opens(operator):
    opened = 0
    for model, model_admin in admin.site._registry.items():
        meta = model._meta
        url = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
        assert operator.get(url).status_code == 200, url
        if model_admin.search_fields:
            assert operator.get(url, {"q": "62220200"}).status_code == 200, url
        first = model.objects.order_by("pk").first()
        if first is not None:
            change = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[first.pk])
            assert operator.get(change).status_code == 200, change
        opened += 1
    assert opened >= 50


def test_service_only_rows_cannot_be_added_changed_or_deleted(operator):
    registry = {m._meta.label: a for m, a in admin.site._registry.items()}
    request = type("Request", (), {"user": User.objects.get(username="op")})()
    for label in SERVICE_ONLY:
        model_admin = registry[label]
        assert not model_admin.has_add_permission(request), label
        assert not model_admin.has_change_permission(request), label
        assert not model_admin.has_delete_permission(request), label
