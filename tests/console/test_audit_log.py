"""The audit log: every money-moving and staff action writes exactly one row, naming who (staff user,
API key, system task), what, on which object, before/after (masked), and from where; a rolled-back
action writes none; the console shows a merchant only its own entries; the admin only reads."""

from __future__ import annotations

import json

import pytest
from celery import shared_task
from django.contrib import admin
from django.db import transaction
from django.test import Client, RequestFactory

from apps.accounts.models import AccountFreeze, ApiKey, Customer, User
from apps.accounts.services import account_freeze, api_key_create
from apps.common.audit import audit_context, audit_record
from apps.common.models import AuditEntry
from apps.notifications.models import Template
from apps.notifications.services import template_save
from apps.payouts.models import Disbursement
from apps.refunds.models import Refund
from apps.refunds.services import REFUNDS, refund_cancel, refund_update_destination
from apps.risk.models import ListEntry, Rule
from apps.transfers.services import transfer_retry
from tests.console.support import pending_payout, reviewed_refund, staff
from tests.refunds.conftest import open_order, request_refund

PASSWORD = "correct horse battery staple"


def only(action: str, **filters) -> AuditEntry:
    """The one row of `action`: fails on none and on two."""
    rows = list(AuditEntry.objects.filter(action=action, **filters))
    assert len(rows) == 1, [(r.action, r.actor, r.target_id) for r in rows]
    return rows[0]


def _no_full_number(entry: AuditEntry, number: str) -> None:
    text = json.dumps([entry.before, entry.after, entry.actor, entry.source])
    assert number not in text


# --- staff sign-in ------------------------------------------------------------------------------------


def test_sign_in_failed_sign_in_and_sign_out_each_write_one_row(merchant):
    user = staff(merchant, User.Role.FINANCE, username="fin-ann")
    user.set_password(PASSWORD)
    user.save()
    client = Client(HTTP_USER_AGENT="pytest-browser/1.0")

    client.post("/accounts/login/", {"username": "fin-ann", "password": "wrong"})
    failed = only("staff.login_failed")
    assert (failed.actor_kind, failed.actor, failed.actor_user_id) == ("anonymous", "fin-ann", None)
    assert (failed.merchant_id, failed.target_id) == (merchant.pk, str(user.pk))
    assert (failed.ip, failed.user_agent, failed.source) == ("127.0.0.1", "pytest-browser/1.0", "POST /accounts/login/")

    client.post("/accounts/login/", {"username": "fin-ann", "password": PASSWORD})
    login = only("staff.login")
    assert (login.actor_kind, login.actor, login.actor_user_id, login.merchant_id) == (
        "staff",
        "fin-ann",
        user.pk,
        merchant.pk,
    )
    assert login.source == "POST /accounts/login/"

    client.post("/accounts/logout/")
    logout = only("staff.logout")
    assert (logout.actor, logout.actor_user_id, logout.source) == ("fin-ann", user.pk, "POST /accounts/logout/")
    assert AuditEntry.objects.count() == 3


# --- refunds ------------------------------------------------------------------------------------------


def test_an_api_refund_decision_names_the_key_and_masks_the_account(api, merchant):
    order = open_order(api, "0000")
    refund_id = request_refund(api, order)["id"]

    entry = only("refund.decide")
    key = ApiKey.objects.get(merchant=merchant)
    assert (entry.actor_kind, entry.actor, entry.actor_user_id) == ("api_key", f"api-key:{key.prefix}", None)
    assert (entry.target_type, entry.target_id, entry.merchant_id) == ("refund", str(refund_id), merchant.pk)
    assert (entry.ip, entry.source) == ("127.0.0.1", "POST /api/v1/refunds")
    assert entry.before == {}
    assert entry.after["outcome"] == entry.after["status"] == "approved"
    assert entry.after["amount"] == Refund.objects.get(pk=refund_id).amount
    assert entry.after["destination_account"] == "**** 0000"
    _no_full_number(entry, "6222020000000000")


def test_a_console_review_names_the_reviewer_and_the_change(login, merchant):
    refund, case = reviewed_refund(merchant)
    reviewer = staff(merchant, User.Role.REVIEWER)

    response = login(reviewer).post(f"/console/cases/{case.pk}/decide", {"decision": "approve", "note": "ok"})

    assert response.status_code == 302
    entry = only("refund.review")
    assert (entry.actor_kind, entry.actor, entry.actor_user_id) == ("staff", reviewer.username, reviewer.pk)
    assert (entry.target_id, entry.merchant_id) == (str(refund.pk), merchant.pk)
    assert entry.source == f"POST /console/cases/{case.pk}/decide"
    assert entry.before == {"status": "manual_review"}
    assert entry.after == {"status": "approved", "note": "ok"}


def test_a_customer_destination_change_and_a_cancel_are_recorded_masked(merchant):
    refund, _ = reviewed_refund(merchant)
    Refund.objects.filter(pk=refund.pk).update(status=Refund.Status.NEEDS_ACTION)
    request = RequestFactory().post("/r/token/account", REMOTE_ADDR="198.51.100.7")
    request.user = None

    with audit_context(request=request):
        refund_update_destination(
            refund_id=refund.pk,
            destination_account={"holder_name": "Wang", "bank": "ICBC", "account_number": "6222020000004321"},
            actor="customer",
        )
        refund_cancel(refund_id=refund.pk, actor="customer")

    moved = only("refund.destination")
    assert (moved.actor_kind, moved.actor, moved.ip) == ("anonymous", "anonymous", "198.51.100.7")
    assert moved.before["destination_account"].startswith("**** ")
    assert moved.after == {"status": "approved", "destination_account": "**** 4321"}
    _no_full_number(moved, "6222020000004321")
    cancelled = only("refund.cancel")
    assert (cancelled.before, cancelled.after) == ({"status": "approved"}, {"status": "cancelled"})


@shared_task(name="audit_probe")
def _audit_probe() -> None:
    audit_record(action="probe", target_type="probe", merchant_id=None)


def test_tasks_are_recorded_as_system_with_their_name(merchant):
    _audit_probe.delay()

    entry = only("probe")
    assert (entry.actor_kind, entry.actor, entry.source, entry.ip) == (
        "system",
        "system:audit_probe",
        "audit_probe",
        None,
    )


def test_a_retry_outside_any_request_is_the_systems(merchant):
    refund, _ = reviewed_refund(merchant)
    Refund.objects.filter(pk=refund.pk).update(status=Refund.Status.FAILED, next_poll_at="2026-01-01T00:00:00Z")

    with audit_context(task="apps.refunds.tasks.refund_poll_task"):
        transfer_retry(REFUNDS, refund.pk)

    entry = only("refund.retry")
    assert entry.actor == "system:apps.refunds.tasks.refund_poll_task"
    assert (entry.before, entry.after["retry_count"]) == ({"status": "failed", "retry_count": 0}, 1)


# --- payouts --------------------------------------------------------------------------------------------


def test_payout_create_approve_and_cancel_write_one_row_each(login, api, merchant, inproc_bank):
    maker = staff(merchant, User.Role.FINANCE)
    d = pending_payout(merchant, maker=maker.username)
    created = only("payout.create")
    assert (created.actor, created.target_id, created.after["amount"]) == ("system", str(d.pk), d.amount)
    assert created.after["destination_account"].startswith("**** ")

    first = staff(merchant, User.Role.FINANCE)
    login(first).post(f"/console/payouts/{d.pk}/approve", {"note": "matches"})
    approved = only("payout.approve")
    assert (approved.actor, approved.actor_user_id) == (first.username, first.pk)
    assert approved.before == {"status": "pending_approval", "approvals": 0}
    assert approved.after == {"status": "pending_approval", "approvals": 1, "approver": first.username}

    response = api.post(f"/api/v1/payouts/{d.pk}/cancel", {"note": "wrong amount"}, format="json")
    assert response.status_code == 200, response.content
    cancelled = only("payout.cancel")
    assert cancelled.actor.startswith("api-key:")
    assert (cancelled.before, cancelled.after) == (
        {"status": "pending_approval"},
        {"status": "cancelled", "note": "wrong amount"},
    )
    assert Disbursement.objects.get(pk=d.pk).status == "cancelled"


# --- freezes, rules, lists ------------------------------------------------------------------------------------


def test_freeze_create_and_lift_through_the_api(api, merchant):
    open_order(api, "0000")
    customer = Customer.objects.filter(merchant=merchant).first()

    created = api.post("/api/v1/freezes", {"customer": customer.external_id, "reason": "fraud"}, format="json")
    assert created.status_code == 201, created.content
    lifted = api.post(f"/api/v1/freezes/{created.json()['id']}/lift", {"reason": "cleared"}, format="json")
    assert lifted.status_code == 200, lifted.content
    api.post(f"/api/v1/freezes/{created.json()['id']}/lift", {"reason": "again"}, format="json")

    freeze = only("freeze.create")
    assert freeze.after == {"customer": customer.external_id, "bank_account": None, "reason": "fraud"}
    assert freeze.source == "POST /api/v1/freezes"
    lift = only("freeze.lift")  # the second lift changed nothing and recorded nothing
    assert lift.before == {"lifted_at": None}
    assert lift.after["lift_reason"] == "cleared"


def test_rule_create_change_mode_and_delete_through_the_api(api, merchant):
    body = {"code": "big", "name": "Big", "scope": "refund", "expression": "amount > 100000", "action": "review"}
    rule_id = api.post("/api/v1/rules", body, format="json").json()["id"]
    api.patch(f"/api/v1/rules/{rule_id}", {"name": "Big refunds", "priority": 5}, format="json")
    api.patch(f"/api/v1/rules/{rule_id}", {"mode": "active"}, format="json")
    assert api.delete(f"/api/v1/rules/{rule_id}").status_code == 204

    created = only("rule.create")
    assert (created.after["code"], created.after["mode"], created.target_id) == ("big", "shadow", str(rule_id))
    changed = only("rule.update")
    assert changed.after == {"name": "Big refunds", "priority": 5}
    assert changed.before["name"] == "Big"
    modes = AuditEntry.objects.filter(action="rule.mode").order_by("id")
    assert [(m.before, m.after) for m in modes] == [({"mode": "shadow"}, {"mode": "active"})]
    retired = only("rule.retire")
    assert (retired.before, retired.after["mode"], retired.target_id) == ({"mode": "active"}, "disabled", str(rule_id))
    assert retired.source == f"DELETE /api/v1/rules/{rule_id}"
    assert {m.merchant_id for m in AuditEntry.objects.filter(target_type="rule")} == {merchant.pk}
    stored = Rule.objects.get(pk=rule_id)
    assert (stored.mode, stored.retired_at is not None) == (Rule.Mode.DISABLED, True)


def test_list_entry_create_change_and_delete_through_the_api(api, merchant):
    response = api.post(
        "/api/v1/lists",
        {"list_type": "block", "kind": "bank_account", "account_number": "6222020000009999", "reason": "mule"},
        format="json",
    )
    assert response.status_code == 201, response.content
    entry_id = response.json()["id"]
    api.patch(f"/api/v1/lists/{entry_id}", {"reason": "money mule"}, format="json")
    assert api.delete(f"/api/v1/lists/{entry_id}").status_code == 204

    created = only("list_entry.create")
    assert created.after["display"].endswith("9999")
    _no_full_number(created, "6222020000009999")
    assert only("list_entry.update").before == {"reason": "mule"}
    assert only("list_entry.update").after == {"reason": "money mule"}
    assert only("list_entry.delete").before["reason"] == "money mule"
    assert not ListEntry.objects.filter(pk=entry_id).exists()


# --- API keys, templates (platform operators) ---------------------------------------------------------


def test_api_key_revoke_from_the_admin_and_create(admin_client, admin_user, merchant):
    key, _ = api_key_create(merchant=merchant, name="ci")
    assert only("api_key.create").after == {"name": "ci", "prefix": key.prefix}

    admin_client.post(
        "/admin/accounts/apikey/", {"action": "revoke", "_selected_action": [key.pk]}, HTTP_USER_AGENT="ops"
    )
    admin_client.post("/admin/accounts/apikey/", {"action": "revoke", "_selected_action": [key.pk]})

    revoked = only("api_key.revoke")
    assert (revoked.actor, revoked.actor_user_id, revoked.merchant_id) == (
        admin_user.username,
        admin_user.pk,
        merchant.pk,
    )
    assert (revoked.source, revoked.user_agent) == ("POST /admin/accounts/apikey/", "ops")
    assert ApiKey.objects.get(pk=key.pk).revoked_at is not None


def test_template_change_records_the_changed_fields(admin_user):
    template = Template.objects.filter(locale="en").first()
    old = template.body
    template.body = old + " Thanks."
    request = RequestFactory().post("/admin/notifications/template/1/change/")
    request.user = admin_user

    with audit_context(request=request):
        template_save(template=template, before={"body": old})

    entry = only("template.change")
    assert (entry.before, entry.after) == ({"body": old}, {"body": old + " Thanks."})
    assert (entry.actor, entry.merchant_id) == (admin_user.username, None)


# --- all or nothing ---------------------------------------------------------------------------------------------


def test_a_rolled_back_action_leaves_no_audit_row(merchant):
    customer = Customer.objects.create(merchant=merchant, external_id="c-rb", name="Rolled Back")
    written = []

    def fail_after_the_writes():
        with transaction.atomic():
            account_freeze(merchant=merchant, customer=customer, reason="x")
            api_key_create(merchant=merchant, name="gone")
            written.append(AuditEntry.objects.count())
            raise RuntimeError("the request failed after the writes")

    with pytest.raises(RuntimeError):
        fail_after_the_writes()

    assert written == [2]

    assert AuditEntry.objects.count() == 0
    assert not AccountFreeze.objects.filter(customer=customer).exists()


def test_a_refused_action_writes_no_audit_row(api, merchant):
    body = {"code": "dup", "name": "Dup", "scope": "refund", "expression": "amount > 1", "action": "review"}
    assert api.post("/api/v1/rules", body, format="json").status_code == 201
    assert api.post("/api/v1/rules", body, format="json").status_code >= 400
    assert AuditEntry.objects.filter(action="rule.create").count() == 1


# --- reading it -----------------------------------------------------------------------------------------------


def test_the_console_shows_only_the_merchants_own_entries_newest_first(owner_client, merchant, other_merchant):
    for n in range(3):
        audit_record(action="rule.create", target_type="rule", target_id=n, merchant_id=merchant.pk)
    audit_record(action="rule.create", target_type="rule", target_id="theirs-77", merchant_id=other_merchant.pk)
    audit_record(action="template.change", target_type="template", target_id="platform-88", merchant_id=None)

    page = owner_client.get("/console/audit/").content.decode()

    ids = list(
        AuditEntry.objects.filter(action="rule.create", merchant_id=merchant.pk)
        .order_by("id")
        .values_list("pk", flat=True)
    )
    positions = [page.index(f'id="audit-{pk}"') for pk in ids]
    assert positions == sorted(positions, reverse=True)  # newest first
    assert "theirs-77" not in page
    assert "platform-88" not in page


def test_the_console_filters_and_pages(owner_client, merchant):
    for n in range(55):
        audit_record(action="rule.create", target_type="rule", target_id=n, merchant_id=merchant.pk)
    audit_record(action="freeze.create", target_type="freeze", target_id=9001, merchant_id=merchant.pk)

    first = owner_client.get("/console/audit/?action=rule.create").content.decode()
    second = owner_client.get("/console/audit/?action=rule.create&page=2").content.decode()
    assert first.count('id="audit-') == 50
    assert second.count('id="audit-') == 5
    assert "freeze #9001" not in first + second
    by_object = owner_client.get("/console/audit/?target=freeze:9001").content.decode()
    assert by_object.count('id="audit-') == 1
    assert owner_client.get("/console/audit/?actor=nobody-like-this").content.decode().count('id="audit-') == 0


def test_the_audit_page_is_in_the_consoles_one_language_whatever_the_browser_asks(owner_client):
    for asked in ("zh-hans", "en"):
        page = owner_client.get("/console/audit/", HTTP_ACCEPT_LANGUAGE=asked).content.decode()
        assert "Audit log" in page
        assert '<html lang="en">' in page
        assert "审计日志" not in page


def test_platform_operators_see_every_merchants_entries(login, merchant, other_merchant):
    operator = User.objects.create(username="ops", is_staff=True)
    audit_record(action="rule.create", target_type="rule", target_id="mine-1", merchant_id=merchant.pk)
    audit_record(action="rule.create", target_type="rule", target_id="theirs-2", merchant_id=other_merchant.pk)

    page = login(operator).get("/console/audit/").content.decode()

    assert "mine-1" in page
    assert "theirs-2" in page
    assert login(User.objects.create(username="nobody")).get("/console/audit/").status_code == 403


def test_the_admin_reads_audit_entries_and_offers_no_add_change_or_delete(admin_client, admin_user, merchant):
    entry = audit_record(action="rule.create", target_type="rule", target_id=1, merchant_id=merchant.pk)
    model_admin = admin.site._registry[AuditEntry]
    request = RequestFactory().get("/admin/")
    request.user = admin_user

    assert admin_client.get("/admin/common/auditentry/").status_code == 200
    assert admin_client.get(f"/admin/common/auditentry/{entry.pk}/change/").status_code == 200
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request, entry)
    assert not model_admin.has_delete_permission(request, entry)
    admin_client.post(f"/admin/common/auditentry/{entry.pk}/delete/", {"post": "yes"})
    assert AuditEntry.objects.filter(pk=entry.pk).exists()
