"""Maker-checker: large amounts need two different staff approvals; the creator cannot approve; the
same person twice is refused with a clear error; the API names the approver."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from apps.accounts.models import User
from apps.common.errors import ConflictError, ServiceError, UnprocessableError
from apps.payouts.models import Approval, Disbursement
from apps.payouts.services import payout_approve, payout_create, withdrawal_create
from tests.payouts.conftest import (
    PAYOUTS,
    WITHDRAWALS,
    account_body,
    calls,
    codes,
    customer_with_wallet,
    fund_merchant,
    in_flight,
    post,
    staff,
)

pytestmark = pytest.mark.django_db

S = Disbursement.Status
LARGE = 10_000_000  # PAYOUT_LARGE_AMOUNT: 100 000.00


def large_payout(merchant, *, maker: str) -> Disbursement:
    fund_merchant(merchant, LARGE)
    return payout_create(
        merchant=merchant,
        reference="settle-large",
        amount=LARGE,
        currency="CNY",
        destination_account=account_body(),
        actor=maker,
    )


def test_large_payout_needs_two_different_approvers_and_refuses_the_creator_and_a_repeat(
    merchant, inproc_bank, payout_settings, django_capture_on_commit_callbacks
):
    maker, first, second = staff(merchant, "maker"), staff(merchant, "checker-1"), staff(merchant, "checker-2")
    d = large_payout(merchant, maker=maker.username)
    assert d.status == S.PENDING_APPROVAL
    assert d.required_approvals == 2
    assert d.prechecks.get(name="large_amount").result == "review"

    with pytest.raises(UnprocessableError) as creator:
        payout_approve(disbursement_id=d.pk, approver=maker)
    assert creator.value.code == "creator_cannot_approve"
    assert "cannot approve" in creator.value.message

    payout_approve(disbursement_id=d.pk, approver=first, note="matches the settlement report")
    d.refresh_from_db()
    assert d.status == S.PENDING_APPROVAL

    with pytest.raises(ConflictError) as twice:
        payout_approve(disbursement_id=d.pk, approver=first)
    assert twice.value.code == "duplicate_approver"
    assert "already approved" in twice.value.message

    with django_capture_on_commit_callbacks(execute=True):
        payout_approve(disbursement_id=d.pk, approver=second)
    d.refresh_from_db()
    assert d.status == S.PROCESSING
    assert list(Approval.objects.filter(disbursement=d).values_list("approver__username", flat=True)) == [
        "checker-1",
        "checker-2",
    ]
    assert codes(d) == [
        "created",
        "checking",
        "pending_approval",
        "approval_recorded",
        "approved",
        "submitted",
        "processing",
    ]
    assert calls(d, "submit") == 1
    assert in_flight() == LARGE


def test_an_approval_is_refused_when_not_waiting_for_one(merchant, inproc_bank, payout_settings):
    approver = staff(merchant, "checker")
    customer = customer_with_wallet(merchant, 500)
    d = withdrawal_create(
        merchant=merchant,
        customer_external_id=customer.external_id,
        amount=1000,
        currency="CNY",
        destination_account=account_body(),
        actor="api-key:x",
    )
    assert d.status == S.FAILED  # more than the balance
    with pytest.raises(ConflictError) as refused:
        payout_approve(disbursement_id=d.pk, approver=approver)
    assert refused.value.code == "invalid_state"
    assert Approval.objects.count() == 0


@pytest.mark.parametrize(
    ("who", "code"),
    [
        ("operator", "approver_not_allowed"),
        ("reviewer", "approver_not_allowed"),
        ("inactive", "approver_not_allowed"),
        ("other-merchant", "approver_not_allowed"),
    ],
)
def test_only_active_staff_of_the_merchant_with_an_approving_role_approve(
    merchant, other_merchant, inproc_bank, payout_settings, who, code
):
    d = large_payout(merchant, maker="maker")
    person = {
        "operator": lambda: staff(merchant, "op", role=User.Role.OPERATOR),
        "reviewer": lambda: staff(merchant, "rev", role=User.Role.REVIEWER),
        "inactive": lambda: User.objects.create(username="gone", merchant=merchant, role="finance", is_active=False),
        "other-merchant": lambda: staff(other_merchant, "stranger"),
    }[who]()
    with pytest.raises(ServiceError) as refused:
        payout_approve(disbursement_id=d.pk, approver=person)
    assert refused.value.code == code
    assert Approval.objects.count() == 0


def test_api_key_approvals_name_the_approver_and_session_approvals_are_the_signed_in_user(
    api, merchant, inproc_bank, payout_settings, django_capture_on_commit_callbacks
):
    staff(merchant, "checker-1")
    second = staff(merchant, "checker-2")
    fund_merchant(merchant, LARGE)
    body = {"reference": "big", "amount": LARGE, "currency": "CNY", "destination_account": account_body()}
    created = post(api, PAYOUTS, body)
    assert created.status_code == 201, created.content
    assert created.json()["status"] == "pending_approval"
    url = f"{PAYOUTS}/{created.json()['id']}/approve"

    missing = api.post(url, {}, format="json")
    assert missing.status_code == 400
    assert "approver" in missing.json()["error"]["fields"]
    unknown = api.post(url, {"approver": "nobody"}, format="json")
    assert unknown.status_code == 400
    assert unknown.json()["error"]["fields"]["approver"] == ["No staff member of yours has this username."]
    assert Approval.objects.count() == 0

    first = api.post(url, {"approver": "checker-1", "note": "ok"}, format="json")
    assert first.status_code == 200, first.content
    assert first.json()["approvals"][0]["approver"] == "checker-1"
    repeat = api.post(url, {"approver": "checker-1"}, format="json")
    assert repeat.status_code == 409
    assert repeat.json()["error"]["code"] == "duplicate_approver"

    session = APIClient()
    session.force_login(second)
    impersonating = session.post(url, {"approver": "checker-1"}, format="json")
    assert impersonating.status_code == 400
    with django_capture_on_commit_callbacks(execute=True):
        done = session.post(url, {"note": "second pair of eyes"}, format="json")
    assert done.status_code == 200, done.content
    assert [a["approver"] for a in done.json()["approvals"]] == ["checker-1", "checker-2"]
    assert Disbursement.objects.get(pk=created.json()["id"]).status == S.PROCESSING


def test_a_session_creator_cannot_approve_their_own_withdrawal_through_the_api(merchant, inproc_bank, payout_settings):
    maker = staff(merchant, "maker")
    customer = customer_with_wallet(merchant, 20000)
    session = APIClient()
    session.force_login(maker)
    created = post(
        session,
        WITHDRAWALS,
        {
            "customer": customer.external_id,
            "amount": 10000,
            "currency": "CNY",
            "destination_account": account_body(),
        },
    )
    assert created.status_code == 201, created.content
    assert created.json()["status"] == "pending_approval"  # first withdrawal to this card: reviewed
    assert created.json()["created_by"] == "maker"

    own = session.post(f"{WITHDRAWALS}/{created.json()['id']}/approve", {}, format="json")

    assert own.status_code == 422
    assert own.json()["error"]["code"] == "creator_cannot_approve"
    assert Approval.objects.count() == 0
