"""The operators' admin: every registered model's list, search and first change page open for a
superuser, and the rows only services write offer no add, change or delete."""

from __future__ import annotations

import io

import pytest
from django.contrib import admin
from django.core.management import call_command
from django.urls import reverse

from apps.accounts.models import User
from apps.alerts.models import Alert, AlertEvent
from apps.alerts.services import alert_raise, alert_resolve

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

# Moved only by their services, through admin actions: every field read-only, no add, no delete.
SERVICE_ACTIONS = ("refunds.Refund", "payouts.Payout", "payouts.Withdrawal", "payouts.Incident")


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


def test_rows_moved_by_actions_show_every_field_read_only_and_offer_no_add_or_delete(db):
    registry = {m._meta.label: a for m, a in admin.site._registry.items()}
    request = type("Request", (), {"user": User.objects.create_superuser(username="op", password="x" * 12)})()
    for label in SERVICE_ACTIONS:
        model_admin = registry[label]
        fields = [f.name for f in model_admin.model._meta.fields]
        assert list(model_admin.get_readonly_fields(request)) == fields, label
        assert not model_admin.has_add_permission(request), label
        assert not model_admin.has_delete_permission(request), label


def test_an_admin_action_calls_the_service_per_row_and_names_each_row_it_refuses(client):
    user = User.objects.create_superuser(username="op", password="x" * 12, email="op@example.com")
    client.force_login(user)
    common = {"tier": "P2", "kind": "refund_not_arrived", "subject_type": "refund"}
    live = alert_raise(dedup_key="refund:1", subject_id=1, summary="not arrived 1", **common)
    closed = alert_raise(dedup_key="refund:2", subject_id=2, summary="not arrived 2", **common)
    alert_resolve(alert_id=closed.pk, actor="test")

    response = client.post(
        "/admin/alerts/alert/", {"action": "ack", "_selected_action": [live.pk, closed.pk]}, follow=True
    )

    assert response.status_code == 200
    live.refresh_from_db()
    closed.refresh_from_db()
    assert (live.status, live.assignee_id) == (Alert.Status.ACKED, user.pk)
    assert closed.status == Alert.Status.RESOLVED
    assert AlertEvent.objects.filter(alert=live, code="acked", actor="admin:op").count() == 1
    assert AlertEvent.objects.filter(alert=closed, code="acked").count() == 0
    shown = [str(m) for m in response.context["messages"]]
    assert "1 acknowledged." in shown
    refused = [m for m in shown if m.startswith(f"{closed}: ")]
    assert len(refused) == 1
    assert "resolved" in refused[0].removeprefix(f"{closed}: ")  # the service's own refusal, in the operator's language
