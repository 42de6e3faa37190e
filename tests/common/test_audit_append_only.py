"""G13: audit records cannot be edited. The audit log, timeline events, channel calls, incident steps,
case notes, commission events and ledger entries are append-only (django-pgtrigger Protect
triggers): the database refuses UPDATE and DELETE from the application's own connection, the admin
offers no change or delete, and each money-moving step writes exactly one row."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.db import DatabaseError, connection, transaction
from django.test import RequestFactory

from apps.alerts.models import Alert, AlertEvent
from apps.commissions.models import Commission, CommissionEvent
from apps.common.audit import audit_record
from apps.common.dbguards import REFUSED
from apps.common.models import AuditEntry
from apps.gateways.models import Channel, ChannelCall
from apps.ledger.models import LedgerEntry
from apps.payouts.models import DisbursementEvent, Incident, IncidentStep
from apps.refunds.models import Refund, RefundEvent
from apps.risk.models import Case, CaseNote
from tests.refunds.conftest import (  # noqa: F401 (fixtures)
    bank,
    clock,
    deliver_webhooks,
    open_order,
    refund_settings,
    request_refund,
    sandbox_settings,
)

pytestmark = pytest.mark.postgres

AUDIT_MODELS = (
    AuditEntry,
    RefundEvent,
    DisbursementEvent,
    IncidentStep,
    AlertEvent,
    CommissionEvent,
    CaseNote,
    ChannelCall,
)


def _refused(statement) -> bool:
    """Run `statement` in a savepoint; True when the database refused it."""
    try:
        with transaction.atomic():
            statement()
    except DatabaseError as exc:
        return REFUSED in str(exc)
    return False


def _rows(merchant) -> dict[type, object]:
    """One row of each audit table, with the parents it needs (the services that write them are
    proven elsewhere; here only the guard on the table is under test)."""
    from tests.alerts.conftest import make_payout, make_refund
    from tests.factories import CustomerFactory, OrderFactory

    refund = make_refund(merchant)
    payout = make_payout(merchant)
    incident = Incident.objects.create(
        merchant=merchant, disbursement=payout, summary="wrong payee", amount_at_risk=1, currency="CNY", opened_by="t"
    )
    alert = Alert.objects.create(
        tier="P1",
        kind="test",
        merchant=merchant,
        subject_type="refund",
        subject_id=str(refund.pk),
        dedup_key=f"test:{refund.pk}",
        summary="test",
    )
    order = OrderFactory(merchant=merchant)
    commission = Commission.objects.create(
        merchant=merchant,
        order=order,
        beneficiary=CustomerFactory(merchant=merchant),
        level=1,
        amount=100,
        currency="CNY",
    )
    case = Case.objects.create(merchant=merchant, subject_type="refund", subject_id=refund.pk, reason="test")
    channel = Channel.objects.get_or_create(
        code="audit-test", defaults={"name": "audit test", "adapter": "sandbox", "webhook_secret": "s"}
    )[0]
    return {
        AuditEntry: audit_record(
            action="refund.review",
            target_type="refund",
            target_id=refund.pk,
            merchant_id=merchant.pk,
            before={"status": "manual_review"},
            after={"status": "approved"},
        ),
        RefundEvent: RefundEvent.objects.create(
            refund=refund, code="requested", message_key="k", responsible_party="platform", actor="t"
        ),
        DisbursementEvent: DisbursementEvent.objects.create(
            disbursement=payout, code="created", message_key="k", responsible_party="platform", actor="t"
        ),
        IncidentStep: IncidentStep.objects.create(incident=incident, action="note", actor="t"),
        AlertEvent: AlertEvent.objects.create(alert=alert, code="raised", actor="t"),
        CommissionEvent: CommissionEvent.objects.create(commission=commission, code="accrued", actor="t"),
        CaseNote: CaseNote.objects.create(case=case, author="t", text="note"),
        ChannelCall: ChannelCall.objects.create(
            channel=channel, action="submit", reference=f"refund:{refund.pk}", request_id="r", outcome="accepted"
        ),
    }


@pytest.mark.parametrize("model", AUDIT_MODELS, ids=lambda m: m.__name__)
def test_the_database_refuses_to_change_or_delete_an_audit_row(model, merchant):
    row = _rows(merchant)[model]
    text_field = next(f.name for f in model._meta.fields if f.get_internal_type() == "CharField")
    rows = model.objects.filter(pk=row.pk)

    assert _refused(lambda: rows.update(**{text_field: "rewritten"}))
    assert _refused(rows.delete)
    assert getattr(model.objects.get(pk=row.pk), text_field) == getattr(row, text_field)


def test_plain_sql_cannot_update_or_delete_an_audit_log_row(merchant):
    """Whatever the code path (a raw cursor, a shell), the application's role cannot rewrite history."""
    entry = audit_record(
        action="freeze.lift", target_type="freeze", target_id=7, merchant_id=merchant.pk, after={"lifted_at": "now"}
    )

    def run(sql: str):
        with connection.cursor() as cursor:
            cursor.execute(sql, [entry.pk])

    assert _refused(lambda: run("UPDATE common_auditentry SET actor = 'someone else', after = '{}' WHERE id = %s"))
    assert _refused(lambda: run("DELETE FROM common_auditentry WHERE id = %s"))
    kept = AuditEntry.objects.get(pk=entry.pk)
    assert (kept.actor, kept.after) == (entry.actor, {"lifted_at": "now"})


@pytest.mark.parametrize("model", [*AUDIT_MODELS, LedgerEntry], ids=lambda m: m.__name__)
def test_the_admin_offers_no_change_or_delete_of_an_audit_row(model, admin_user):
    request = RequestFactory().get("/admin/")
    request.user = admin_user
    model_admin = admin.site._registry.get(model)
    inlines = [
        inline(parent, admin.site)
        for parent, parent_admin in admin.site._registry.items()
        for inline in parent_admin.inlines
        if inline.model is model
    ]
    assert model_admin is not None or inlines, f"{model.__name__} is readable nowhere in the admin"
    for shown in ([model_admin] if model_admin else []) + inlines:
        assert not shown.has_change_permission(request)
        assert not shown.has_delete_permission(request)


def test_a_refunds_whole_life_is_recorded_once_and_cannot_be_rewritten(
    api,
    bank,  # noqa: F811
    refund_settings,  # noqa: F811
    clock,  # noqa: F811
):
    order = open_order(api, "0000")
    refund = Refund.objects.get(pk=request_refund(api, order)["id"])
    deliver_webhooks()
    clock.advance(3)
    deliver_webhooks()
    refund.refresh_from_db()
    assert refund.status == Refund.Status.SUCCEEDED

    # One event per transition, one channel call for the one submission, balanced entries.
    codes = list(refund.events.order_by("created_at", "id").values_list("code", flat=True))
    assert codes == ["requested", "approved", "submitted", "processing", "succeeded"]
    assert ChannelCall.objects.filter(reference=f"refund:{refund.pk}").count() == 1
    entries = LedgerEntry.objects.filter(transaction__reference__startswith=f"refund:{refund.pk}:")
    assert entries.count() == 4

    event = refund.events.first()
    call = ChannelCall.objects.get(reference=f"refund:{refund.pk}")
    entry = entries.first()
    for queryset, change in (
        (RefundEvent.objects.filter(pk=event.pk), {"code": "rewritten"}),
        (ChannelCall.objects.filter(pk=call.pk), {"outcome": "rewritten"}),
        (LedgerEntry.objects.filter(pk=entry.pk), {"amount": 0}),
    ):
        assert _refused(lambda qs=queryset, ch=change: qs.update(**ch))
        assert _refused(lambda qs=queryset: qs.delete())
    assert list(refund.events.order_by("created_at", "id").values_list("code", flat=True)) == codes
    assert ChannelCall.objects.get(pk=call.pk).outcome == call.outcome
    assert entries.count() == 4
