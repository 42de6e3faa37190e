"""The console's security page enrolls a staff member's authenticator (TOTP), and the console's
approval form asks for its code on the second approval of a large payout: the same rule as the API
(payouts.payout_approve), shown as a form error when the code is missing, wrong or already used."""

from __future__ import annotations

import re
from html import unescape

import pytest
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.accounts.models import User
from apps.payouts.models import Approval, Disbursement
from tests.console.support import pending_payout, staff
from tests.payouts.conftest import authenticator, otp_code

pytestmark = pytest.mark.django_db

SECURITY = "/console/security/"


def test_a_staff_member_enrolls_an_authenticator_with_its_qr_code_and_a_first_code(login, merchant):
    person = staff(merchant, User.Role.FINANCE)
    client = login(person)

    page = client.get(SECURITY)
    assert page.status_code == 200
    assert "No authenticator yet" in page.content.decode()
    assert 'href="/console/security/"' in page.content.decode()  # in the console's navigation

    assert client.post(SECURITY, {"action": "enroll"}).status_code == 302
    device = TOTPDevice.objects.get(user=person)
    assert device.confirmed is False
    enrolling = client.get(SECURITY).content.decode()
    uri = unescape(re.search(r'<code id="authenticator-uri">([^<]+)</code>', enrolling).group(1))
    assert uri == device.config_url
    assert uri.startswith(f"otpauth://totp/RefundGuard%3A{person.username}?secret=")
    assert "issuer=RefundGuard" in uri
    assert re.search(r'<div class="qr" id="authenticator-qr"><svg [^>]*class="segno"', enrolling)

    good = otp_code(device)
    wrong = client.post(SECURITY, {"action": "confirm", "otp_token": f"{(int(good) + 1) % 1_000_000:06d}"})
    assert wrong.status_code == 422
    assert "wrong, expired or already used" in wrong.content.decode()
    device.refresh_from_db()
    assert device.confirmed is False

    device.throttle_reset()  # the first wrong code makes the next wait a second
    confirmed = client.post(SECURITY, {"action": "confirm", "otp_token": good}, follow=True)
    assert confirmed.status_code == 200
    device.refresh_from_db()
    assert device.confirmed is True
    after = client.get(SECURITY).content.decode()
    assert "Enrolled" in after
    assert "otpauth://" not in after  # the secret is shown only while enrolling

    again = client.post(SECURITY, {"action": "enroll"})
    assert again.status_code == 409
    assert TOTPDevice.objects.filter(user=person).count() == 1


def test_the_second_console_approval_of_a_large_payout_needs_the_authenticator_code(login, merchant, inproc_bank):
    d = pending_payout(merchant, maker="maker-x")
    first, second = staff(merchant, User.Role.FINANCE), staff(merchant, User.Role.OWNER)
    url = f"/console/payouts/{d.pk}/approve"
    assert login(first).get(f"/console/payouts/{d.pk}/").context["needs_code"] is False
    login(first).post(url, {"note": "matches the statement"})
    assert Approval.objects.count() == 1

    client = login(second)
    page = client.get(f"/console/payouts/{d.pk}/")
    assert page.context["needs_code"] is True
    assert 'name="otp_token"' in page.content.decode()
    assert "enroll one on the Security page" in page.content.decode()  # no authenticator yet
    not_enrolled = client.post(url, {"otp_token": "123456"})
    assert not_enrolled.status_code == 422
    assert "/console/security/" in not_enrolled.content.decode()

    device = authenticator(second)
    assert "enroll one" not in client.get(f"/console/payouts/{d.pk}/").content.decode()
    missing = client.post(url, {})
    assert missing.status_code == 422
    assert 'id="approve-error"' in missing.content.decode()
    good = otp_code(device)
    wrong = client.post(url, {"otp_token": f"{(int(good) + 1) % 1_000_000:06d}"})
    assert wrong.status_code == 422
    assert "wrong, expired or already used" in wrong.content.decode()
    assert Approval.objects.count() == 1
    d.refresh_from_db()
    assert d.status == Disbursement.Status.PENDING_APPROVAL

    device.throttle_reset()
    done = client.post(url, {"otp_token": good})
    assert done.status_code == 302
    d.refresh_from_db()
    assert d.status == Disbursement.Status.APPROVED
    assert list(Approval.objects.order_by("id").values_list("approver_id", flat=True)) == [first.pk, second.pk]


def test_the_demo_data_lets_a_newcomer_approve_a_large_payout(login, inproc_bank, settings):
    """`make run`: finance approves first, demo second with the code of the printed secret."""
    import base64
    import io

    from django.core.management import call_command
    from django_otp.oath import totp

    from apps.accounts.models import Merchant
    from apps.console.management.commands.seed_demo import DEMO_MERCHANT
    from apps.payouts.services import payout_create
    from tests.console.support import LARGE
    from tests.payouts.conftest import account_body, fund_merchant, payable

    out = io.StringIO()
    call_command("seed_demo", "--force", stdout=out)
    secrets = dict(re.findall(r"approver (\w+) / \S+: authenticator secret (\w+)", out.getvalue()))
    assert set(secrets) == {"finance", "demo"}
    merchant = Merchant.objects.get(name=DEMO_MERCHANT)
    fund_merchant(merchant, LARGE)  # on top of the demo orders' commissions: the whole balance goes
    d = payout_create(
        merchant=merchant,
        reference="demo-settlement",
        amount=payable(merchant),
        currency="CNY",
        destination_account=account_body(),
        actor="api-key:demo",
    )
    assert d.status == Disbursement.Status.PENDING_APPROVAL, d.prechecks.values_list("name", "result")
    assert d.amount >= settings.PAYOUT_LARGE_AMOUNT
    url = f"/console/payouts/{d.pk}/approve"

    assert login(User.objects.get(username="finance")).post(url).status_code == 302
    code = f"{totp(base64.b32decode(secrets['demo'])):06d}"  # what the authenticator app shows
    assert login(User.objects.get(username="demo")).post(url, {"otp_token": code}).status_code == 302

    d.refresh_from_db()
    assert d.status == Disbursement.Status.APPROVED
