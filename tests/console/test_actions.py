"""Console actions go through the owning app's service and change state; roles limit them."""

from __future__ import annotations

import pytest

from apps.accounts.models import User
from apps.alerts.models import Alert, AlertEvent, Silence
from apps.payouts.models import Approval, Disbursement
from apps.refunds.models import Refund
from apps.risk.models import Case, CaseNote, Rule
from apps.risk.rules import rule_create
from tests.console.support import alert, pending_payout, reviewed_refund, staff
from tests.payouts.conftest import second_approval_code

pytestmark = pytest.mark.django_db


def test_ack_then_resolve_an_alert_records_who_did_it(login, merchant):
    operator = staff(merchant, User.Role.OPERATOR)
    client = login(operator)
    a = alert(merchant)
    response = client.post(f"/console/alerts/{a.pk}/ack", {"note": "looking"})
    assert response.status_code == 302
    a.refresh_from_db()
    assert (a.status, a.assignee_id) == (Alert.Status.ACKED, operator.pk)
    assert AlertEvent.objects.filter(alert=a, code="acked", actor=f"console:{operator.username}").count() == 1

    response = client.post(f"/console/alerts/{a.pk}/resolve", HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert f'id="alert-{a.pk}"' in response.content.decode()  # the row htmx swaps in
    a.refresh_from_db()
    assert a.status == Alert.Status.RESOLVED


def test_acking_twice_and_resolving_a_resolved_alert_write_nothing_more(owner_client, merchant):
    a = alert(merchant)
    owner_client.post(f"/console/alerts/{a.pk}/ack")
    owner_client.post(f"/console/alerts/{a.pk}/ack")
    assert AlertEvent.objects.filter(alert=a, code="acked").count() == 1
    owner_client.post(f"/console/alerts/{a.pk}/resolve")
    response = owner_client.post(f"/console/alerts/{a.pk}/ack", follow=True)
    assert "cannot be acknowledged" in response.content.decode()
    assert AlertEvent.objects.filter(alert=a).count() == 3  # raised, acked, resolved


def test_silencing_from_an_alert_creates_a_merchant_silence_that_suppresses_the_next_one(owner_client, merchant):
    a = alert(merchant, tier="P1", kind="refund_late")
    assert owner_client.post(f"/console/alerts/{a.pk}/silence", {"hours": "4"}).status_code == 302
    silence = Silence.objects.get()
    assert silence.merchant == merchant
    assert silence.matchers == {"kind": "refund_late", "merchant_id": str(merchant.pk)}
    assert alert(merchant, tier="P1", kind="refund_late").status == Alert.Status.SUPPRESSED
    assert owner_client.post(f"/console/alerts/{a.pk}/silence", {"hours": "5"}).status_code == 302
    assert Silence.objects.count() == 1


def test_reviewer_approves_a_case_and_the_refund_moves(login, merchant):
    reviewer = staff(merchant, User.Role.REVIEWER)
    refund, case = reviewed_refund(merchant)
    response = login(reviewer).post(
        f"/console/cases/{case.pk}/decide", {"decision": "approve", "note": "customer verified by phone"}
    )
    assert response.status_code == 302
    case.refresh_from_db()
    refund.refresh_from_db()
    assert (case.status, case.decision, case.decided_by) == ("decided", "approve", f"console:{reviewer.username}")
    assert refund.status == Refund.Status.APPROVED
    assert CaseNote.objects.filter(case=case, text="customer verified by phone").count() == 1
    # Decided is final: a second verdict is refused and changes nothing.
    again = login(reviewer).post(f"/console/cases/{case.pk}/decide", {"decision": "decline"}, follow=True)
    assert "already decided" in again.content.decode()
    refund.refresh_from_db()
    assert refund.status == Refund.Status.APPROVED


def test_owner_declines_a_case_and_the_refund_is_rejected(owner_client, merchant):
    refund, case = reviewed_refund(merchant)
    owner_client.post(f"/console/cases/{case.pk}/decide", {"decision": "decline", "note": "abuse"})
    refund.refresh_from_db()
    assert refund.status == Refund.Status.REJECTED


@pytest.mark.parametrize("role", [User.Role.FINANCE, User.Role.OPERATOR])
def test_only_reviewers_and_owners_decide_cases(login, merchant, role):
    refund, case = reviewed_refund(merchant)
    response = login(staff(merchant, role)).post(f"/console/cases/{case.pk}/decide", {"decision": "approve"})
    assert response.status_code == 403
    case.refresh_from_db()
    refund.refresh_from_db()
    assert (case.status, refund.status) == (Case.Status.OPEN, Refund.Status.MANUAL_REVIEW)


def test_maker_checker_creator_cannot_approve_and_two_others_can(login, merchant, inproc_bank):
    maker = staff(merchant, User.Role.FINANCE)
    d = pending_payout(merchant, maker=maker.username)
    url = f"/console/payouts/{d.pk}/approve"

    page = login(maker).get(f"/console/payouts/{d.pk}/")
    assert page.context["may_approve"] is False
    refused = login(maker).post(url, follow=True)
    assert "cannot approve" in refused.content.decode()
    assert Approval.objects.count() == 0

    first, second = staff(merchant, User.Role.FINANCE), staff(merchant, User.Role.OWNER)
    login(first).post(url, {"note": "matches the statement"})
    assert login(first).post(url, follow=True).status_code == 200  # duplicate: refused, shown
    assert list(Approval.objects.values_list("approver__username", flat=True)) == [first.username]
    login(second).post(url, {"otp_token": second_approval_code(second)})
    d.refresh_from_db()
    assert d.status == Disbursement.Status.APPROVED
    assert Approval.objects.count() == 2


@pytest.mark.parametrize("role", [User.Role.REVIEWER, User.Role.OPERATOR])
def test_reviewers_and_operators_cannot_approve_payouts(login, merchant, inproc_bank, role):
    d = pending_payout(merchant, maker="someone-else")
    response = login(staff(merchant, role)).post(f"/console/payouts/{d.pk}/approve")
    assert response.status_code == 403
    assert Approval.objects.count() == 0
    d.refresh_from_db()
    assert d.status == Disbursement.Status.PENDING_APPROVAL


def test_the_console_offers_payout_approval_to_exactly_the_roles_the_payouts_service_allows(
    login, merchant, inproc_bank, settings
):
    """One rule (settings.PAYOUT_APPROVER_ROLES) for the API, the admin and the console."""
    settings.PAYOUT_APPROVER_ROLES = ["owner", "finance", "reviewer"]
    d = pending_payout(merchant, maker="someone-else")
    reviewer = staff(merchant, User.Role.REVIEWER)

    assert login(reviewer).get(f"/console/payouts/{d.pk}/").context["may_approve"] is True
    login(reviewer).post(f"/console/payouts/{d.pk}/approve")
    assert list(Approval.objects.values_list("approver__username", flat=True)) == [reviewer.username]


def test_approval_queue_lists_what_waits(owner_client, merchant, inproc_bank):
    d = pending_payout(merchant, maker="maker-x")
    response = owner_client.get("/console/approvals/")
    assert [row.pk for row in response.context["page"]] == [d.pk]
    detail = owner_client.get(f"/console/payouts/{d.pk}/")
    assert detail.context["may_approve"] is True
    assert "large_amount" in detail.content.decode()


def test_rules_mode_switch_goes_through_rule_update_and_platform_rules_stay_read_only(login, owner_client, merchant):
    rule = rule_create(
        merchant=merchant,
        actor="test",
        code="big-refund",
        name="Big refund",
        scope="refund",
        expression="amount > 1000000",
        action="review",
    )
    platform = rule_create(
        merchant=None,
        actor="test",
        code="platform-x",
        name="X",
        scope="refund",
        expression="amount > 5",
        action="review",
    )
    assert owner_client.post(f"/console/rules/{rule.pk}/mode", {"mode": "active"}).status_code == 302
    rule.refresh_from_db()
    assert (rule.mode, rule.updated_by) == (Rule.Mode.ACTIVE, f"console:{owner_client.user.username}")
    assert owner_client.post(f"/console/rules/{platform.pk}/mode", {"mode": "disabled"}).status_code == 404
    assert (
        login(staff(merchant, User.Role.FINANCE))
        .post(f"/console/rules/{rule.pk}/mode", {"mode": "disabled"})
        .status_code
        == 403
    )
    platform.refresh_from_db()
    rule.refresh_from_db()
    assert (platform.mode, rule.mode) == (Rule.Mode.SHADOW, Rule.Mode.ACTIVE)


def test_actions_need_post_and_csrf(login, merchant):
    from django.test import Client

    user = staff(merchant)
    a = alert(merchant)
    assert login(user).get(f"/console/alerts/{a.pk}/ack").status_code == 405
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    assert strict.post(f"/console/alerts/{a.pk}/ack").status_code == 403
    a.refresh_from_db()
    assert a.status == Alert.Status.OPEN
