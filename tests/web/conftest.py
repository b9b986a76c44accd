"""Web-page fixtures: the shared actors (alice owner, bob other user, admin
superuser, anonymous) from tests/conftest.py, plus the backup fixtures of
tests/backups so a page test can take a real backup."""

import pytest
from django.test import Client

from tests.backups.conftest import fake_mc, fake_server_factory, take_backup  # noqa: F401  (fixtures)


def _logged_in(user) -> Client:
    # A client each, so a test can act as alice and bob side by side.
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def alice_web(alice):
    return _logged_in(alice)


@pytest.fixture
def bob_web(bob):
    return _logged_in(bob)


@pytest.fixture
def admin_web(admin_user):
    return _logged_in(admin_user)


@pytest.fixture
def alices_server(alice, make_server):
    return make_server(alice, "alice-world")
