"""Console and admin sign-in lock out after repeated wrong passwords (django-axes): for that
username from that address, right password or not, until the cool-off ends; other staff and
other addresses sign in as before."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from tests.factories import StaffFactory

pytestmark = pytest.mark.django_db

PASSWORD = "pw-for-tests-only"
HOME = "198.51.100.40"


@pytest.fixture
def lockout(settings):
    settings.AXES_FAILURE_LIMIT = 3
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)


def sign_in(username: str, password: str, *, address: str = HOME, url: str = "/accounts/login/"):
    client = Client(REMOTE_ADDR=address)
    response = client.post(url, {"username": username, "password": password})
    return client, response


def signed_in(client) -> bool:
    return "_auth_user_id" in client.session


def assert_locked(response):
    assert response.status_code == 429
    assert int(response["Retry-After"]) == 15 * 60
    assert 'data-testid="locked-out"' in response.content.decode()


def test_wrong_passwords_lock_the_username_out_even_with_the_right_one(lockout):
    staff, colleague = StaffFactory(), StaffFactory()
    statuses = [sign_in(staff.username, "wrong")[1].status_code for _ in range(3)]
    assert statuses[:2] == [200, 200]
    assert statuses[2] == 429

    client, response = sign_in(staff.username, PASSWORD)
    assert_locked(response)
    assert not signed_in(client)

    client, response = sign_in(colleague.username, PASSWORD)
    assert response.status_code == 302
    assert signed_in(client)
    client, response = sign_in(staff.username, PASSWORD, address="198.51.100.41")
    assert response.status_code == 302
    assert signed_in(client)


def test_the_lockout_ends_after_the_cool_off(lockout):
    staff = StaffFactory()
    with time_machine.travel(timezone.now(), tick=False) as clock:
        for _ in range(3):
            sign_in(staff.username, "wrong")
        clock.shift(timedelta(minutes=14))
        assert_locked(sign_in(staff.username, PASSWORD)[1])
        clock.shift(timedelta(minutes=16))  # the attempt above restarted the cool-off
        client, response = sign_in(staff.username, PASSWORD)
    assert response.status_code == 302
    assert signed_in(client)


def test_the_admin_sign_in_locks_out_too(lockout):
    operator = StaffFactory(merchant=None, role="", is_staff=True, is_superuser=True)
    for _ in range(3):
        sign_in(operator.username, "wrong", url="/admin/login/")
    client, response = sign_in(operator.username, PASSWORD, url="/admin/login/")
    assert_locked(response)
    assert not signed_in(client)
