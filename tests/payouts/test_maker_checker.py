"""Maker-checker: large amounts need two different staff approvals, the second with the code of the
approver's authenticator (TOTP); the creator cannot approve; the same person twice is refused with a
clear error; approvals come from signed-in staff, never from an API key (one key could play both)."""

from __future__ import annotations

import pytest
from django.utils import translation
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.test import APIClient

from apps.accounts.models import User
from apps.common.errors import ConflictError, ServiceError, UnprocessableError
from apps.payouts.models import Approval, Disbursement
from apps.payouts.services import payout_approve, payout_create, withdrawal_create
from tests.payouts.conftest import (
    PAYOUTS,
    WITHDRAWALS,
    account_body,
    authenticator,
    calls,
    codes,
    customer_with_wallet,
    fund_merchant,
    in_flight,
    otp_code,
    post,
    signed_in,
    staff,
)

pytestmark = pytest.mark.django_db

S = Disbursement.Status
LARGE = 10_000_000  # PAYOUT_LARGE_AMOUNT: 100 000.00


@pytest.fixture(autouse=True)
def _english():
    """Services' messages are read here as an English-speaking caller would get them."""
    with translation.override("en"):
        yield


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
    assert "cannot approve" in str(creator.value.message)

    payout_approve(disbursement_id=d.pk, approver=first, note="matches the settlement report")
    d.refresh_from_db()
    assert d.status == S.PENDING_APPROVAL

    with pytest.raises(ConflictError) as twice:
        payout_approve(disbursement_id=d.pk, approver=first)
    assert twice.value.code == "duplicate_approver"
    assert "already approved" in twice.value.message

    with django_capture_on_commit_callbacks(execute=True):
        payout_approve(disbursement_id=d.pk, approver=second, otp_token=otp_code(authenticator(second)))
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


# --- approvals are a person's act: sessions, not API keys -----------------------------------------


def _large_through_the_api(api, merchant) -> str:
    fund_merchant(merchant, LARGE)
    body = {"reference": "big", "amount": LARGE, "currency": "CNY", "destination_account": account_body()}
    created = post(api, PAYOUTS, body)
    assert created.status_code == 201, created.content
    assert created.json()["status"] == "pending_approval"
    assert created.json()["required_approvals"] == 2
    return f"{PAYOUTS}/{created.json()['id']}/approve"


def _state(url: str) -> tuple[str, int]:
    d = Disbursement.objects.get(pk=int(url.split("/")[-2]))
    return d.status, d.approvals.count()


def test_one_api_key_naming_two_different_approvers_cannot_approve_a_large_payout(api, merchant, inproc_bank):
    staff(merchant, "checker-1")
    staff(merchant, "checker-2")
    url = _large_through_the_api(api, merchant)

    for body in ({"approver": "checker-1"}, {"approver": "checker-2"}, {}, {"note": "ok"}):
        refused = api.post(url, body, format="json")
        assert refused.status_code == 403, refused.content
        error = refused.json()["error"]
        assert error["code"] == "approval_needs_staff_session"
        assert "console" in error["message"]

    assert _state(url) == (S.PENDING_APPROVAL, 0)


def test_a_small_payout_needs_one_staff_session_and_no_code_and_never_an_api_key(
    api, merchant, inproc_bank, django_capture_on_commit_callbacks
):
    checker = staff(merchant, "checker")
    fund_merchant(merchant, 500000)
    body = {"reference": "small", "amount": 500000, "currency": "CNY", "destination_account": account_body()}
    created = post(api, PAYOUTS, body).json()
    assert (created["status"], created["required_approvals"]) == ("pending_approval", 1)  # a new account
    url = f"{PAYOUTS}/{created['id']}/approve"

    assert api.post(url, {}, format="json").status_code == 403
    assert _state(url) == (S.PENDING_APPROVAL, 0)

    with django_capture_on_commit_callbacks(execute=True):
        approved = signed_in(checker).post(url, {"note": "known supplier"}, format="json")
    assert approved.status_code == 200, approved.content
    assert [a["approver"] for a in approved.json()["approvals"]] == ["checker"]
    assert _state(url) == (S.PROCESSING, 1)


def test_two_staff_sessions_approve_a_large_payout_the_second_only_with_a_valid_code(
    api, merchant, inproc_bank, clock, django_capture_on_commit_callbacks
):
    first, second = staff(merchant, "checker-1"), staff(merchant, "checker-2")
    device = authenticator(second)
    url = _large_through_the_api(api, merchant)

    one = signed_in(first).post(url, {"note": "matches the settlement report"}, format="json")
    assert one.status_code == 200, one.content  # the first approval needs no code
    assert _state(url) == (S.PENDING_APPROVAL, 1)

    session = signed_in(second)
    missing = session.post(url, {}, format="json")
    assert missing.status_code == 422
    assert missing.json()["error"]["code"] == "otp_required"
    assert "otp_token" in missing.json()["error"]["fields"]
    good = otp_code(device)
    wrong = f"{(int(good) + 1) % 1_000_000:06d}"
    bad = session.post(url, {"otp_token": wrong}, format="json")
    assert bad.status_code == 422
    assert bad.json()["error"]["code"] == "otp_invalid"
    assert _state(url) == (S.PENDING_APPROVAL, 1)
    # The refusal wrote no approval, but the failure counts towards django-otp's guessing throttle.
    device.refresh_from_db()
    assert device.throttling_failure_count == 1
    throttled = session.post(url, {"otp_token": good}, format="json")
    assert throttled.status_code == 422
    assert throttled.json()["error"]["code"] == "otp_throttled"
    assert _state(url) == (S.PENDING_APPROVAL, 1)

    clock.advance(2)  # the throttle's first wait is one second
    with django_capture_on_commit_callbacks(execute=True):
        done = session.post(url, {"otp_token": otp_code(device), "note": "second pair of eyes"}, format="json")
    assert done.status_code == 200, done.content
    assert [a["approver"] for a in done.json()["approvals"]] == ["checker-1", "checker-2"]
    assert _state(url) == (S.PROCESSING, 2)
    device.refresh_from_db()
    assert device.throttling_failure_count == 0


def test_a_used_code_does_not_approve_a_second_large_payout(api, merchant, inproc_bank, payout_settings):
    first, second = staff(merchant, "checker-1"), staff(merchant, "checker-2")
    device = authenticator(second)
    payouts = []
    for reference in ("big-a", "big-b"):
        fund_merchant(merchant, LARGE)
        body = {"reference": reference, "amount": LARGE, "currency": "CNY", "destination_account": account_body()}
        created = post(api, PAYOUTS, body).json()
        payouts.append(f"{PAYOUTS}/{created['id']}/approve")
        assert signed_in(first).post(payouts[-1], {}, format="json").status_code == 200
    code = otp_code(device)

    assert signed_in(second).post(payouts[0], {"otp_token": code}, format="json").status_code == 200
    replayed = signed_in(second).post(payouts[1], {"otp_token": code}, format="json")

    assert replayed.status_code == 422
    assert replayed.json()["error"]["code"] == "otp_invalid"
    assert "already used" in replayed.json()["error"]["message"]
    assert _state(payouts[0])[1] == 2
    assert _state(payouts[1]) == (S.PENDING_APPROVAL, 1)


def test_a_second_approver_without_an_authenticator_is_told_to_enroll(api, merchant, inproc_bank):
    first, second = staff(merchant, "checker-1"), staff(merchant, "checker-2")
    TOTPDevice.objects.create(user=second, name="authenticator", confirmed=False)  # enrolment not finished
    url = _large_through_the_api(api, merchant)
    signed_in(first).post(url, {}, format="json")

    refused = signed_in(second).post(url, {"otp_token": "123456"}, format="json")

    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "otp_not_enrolled"
    assert "/console/security/" in refused.json()["error"]["message"]
    assert _state(url) == (S.PENDING_APPROVAL, 1)


def test_the_creator_cannot_give_the_second_approval_even_with_a_valid_code(merchant, inproc_bank):
    maker, first = staff(merchant, "maker"), staff(merchant, "checker-1")
    device = authenticator(maker)
    fund_merchant(merchant, LARGE)
    body = {"reference": "big", "amount": LARGE, "currency": "CNY", "destination_account": account_body()}
    created = post(signed_in(maker), PAYOUTS, body).json()
    assert created["created_by"] == "maker"
    url = f"{PAYOUTS}/{created['id']}/approve"
    assert signed_in(first).post(url, {}, format="json").status_code == 200

    own = signed_in(maker).post(url, {"otp_token": otp_code(device)}, format="json")

    assert own.status_code == 422
    assert own.json()["error"]["code"] == "creator_cannot_approve"
    assert _state(url) == (S.PENDING_APPROVAL, 1)
    device.refresh_from_db()
    assert device.last_t == -1  # the code was never spent


def test_an_approval_body_with_an_approver_field_is_refused_as_unknown(merchant, inproc_bank):
    checker = staff(merchant, "checker")
    customer = customer_with_wallet(merchant, 20000)
    created = post(
        signed_in(staff(merchant, "maker")),
        WITHDRAWALS,
        {"customer": customer.external_id, "amount": 10000, "currency": "CNY", "destination_account": account_body()},
    ).json()

    response = signed_in(checker).post(f"{WITHDRAWALS}/{created['id']}/approve", {"approver": "checker"}, format="json")

    assert response.status_code == 400
    assert "approver" in response.json()["error"]["fields"]
    assert Approval.objects.count() == 0
