"""Console fixtures: a signed-in Django test client per role, for merchant A (`merchant`) and B."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.accounts.models import User
from apps.gateways.models import Channel
from tests.console.support import staff
from tests.gateways.conftest import sandbox_settings  # noqa: F401 (fixture)
from tests.payouts.conftest import inproc_bank, payout_settings  # noqa: F401 (fixtures)


@pytest.fixture(autouse=True)
def _channels_off(db):
    """Approved refunds wait instead of calling a bank: these tests are about the console."""
    Channel.objects.update(is_enabled=False)


@pytest.fixture
def login(db):
    """`login(user)` → a test client with that user signed in."""

    def sign_in(user: User) -> Client:
        client = Client()
        client.force_login(user)
        client.user = user
        return client

    return sign_in


@pytest.fixture
def owner(merchant):
    return staff(merchant, User.Role.OWNER)


@pytest.fixture
def owner_client(login, owner):
    return login(owner)


@pytest.fixture
def other_client(login, other_merchant):
    return login(staff(other_merchant, User.Role.OWNER))
