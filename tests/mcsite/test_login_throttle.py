"""Password guessing is throttled at every login door — the web form
(/accounts/login/), the admin (/admin/login/) and the API
(POST /api/auth/token): failures count per (username, client address) and,
with a higher cap, per client address alone. A locked door refuses the right
password too, answers 429 (a page saying when to try again, or the API's
THROTTLED envelope) and the lockout is audited. The client address is the
socket's unless MCSITE_TRUSTED_PROXIES names the proxy in front."""

import ipaddress

import pytest
from django.test import Client
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

HOME = "10.0.0.1"  # the guesser's address
ELSEWHERE = "10.0.0.2"  # somebody else's
LIMIT = 5  # MCSITE_LOGIN_FAILURE_LIMIT's default


class Door:
    """One login door: how to knock, and what success, a plain failure and a
    lockout look like there."""

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return self.name

    def client(self):
        return APIClient() if self.name == "api" else Client()

    def login(self, client, username, password, *, ip=HOME, xff=None):
        extra = {"REMOTE_ADDR": ip}
        if xff is not None:
            extra["HTTP_X_FORWARDED_FOR"] = xff
        data = {"username": username, "password": password}
        if self.name == "api":
            return client.post("/api/auth/token", data, format="json", **extra)
        path = "/accounts/login/" if self.name == "web" else "/admin/login/"
        return client.post(path, data, **extra)

    def assert_success(self, response):
        if self.name == "api":
            assert response.status_code == 200, response.content
            assert response.json()["data"]["token"]
        else:
            assert response.status_code == 302, response.content[:300]

    def assert_failure(self, response):
        if self.name == "api":
            assert response.status_code == 401, response.content
            assert response.json()["code"] == "AUTHENTICATION_REQUIRED"
        else:
            assert response.status_code == 200, response.content[:300]
            assert b"correct username and password" in response.content

    def assert_locked(self, response):
        assert response.status_code == 429, response.content[:300]
        assert int(response["Retry-After"]) > 0
        if self.name == "api":
            body = response.json()
            assert body["success"] is False and body["code"] == "THROTTLED"
            assert "locked" in body["error"] and "Try again" in body["error"]
        else:
            text = response.content.decode()
            assert "temporarily locked" in text
            assert "Try again in 15 minutes" in text
            assert "Traceback" not in text

    def fail(self, client, times, *, username="alice", ip=HOME, xff=None):
        """`times` wrong passwords: all plain failures except the last, which locks."""
        for attempt in range(1, times + 1):
            response = self.login(client, username, f"wrong-{attempt}", ip=ip,
                                  xff=xff(attempt) if callable(xff) else xff)
            if attempt < LIMIT:
                self.assert_failure(response)
        return response


DOORS = [Door("web"), Door("admin"), Door("api")]


@pytest.fixture(params=DOORS, ids=repr)
def door(request):
    return request.param


def test_it_locks_after_the_limit_and_refuses_even_the_right_password(door, alice):
    client = door.client()
    door.assert_locked(door.fail(client, LIMIT))
    door.assert_locked(door.login(client, "alice", "pw-alice"))
    if door.name != "api":
        assert client.get("/servers/").status_code == 302  # not logged in


def test_another_username_from_the_same_address_is_not_locked(door, alice, bob):
    client = door.client()
    door.fail(client, LIMIT)
    door.assert_success(door.login(door.client(), "bob", "pw-bob"))


def test_a_stranger_elsewhere_cannot_lock_the_user_out(door, alice):
    door.fail(door.client(), LIMIT + 3)
    door.assert_success(door.login(door.client(), "alice", "pw-alice", ip=ELSEWHERE))


def test_a_changing_forwarded_for_does_not_reset_the_count(door, alice):
    client = door.client()
    door.assert_locked(door.fail(client, LIMIT, xff=lambda n: f"198.51.100.{n}"))
    door.assert_locked(door.login(client, "alice", "pw-alice", xff="198.51.100.200"))


def test_an_ipv6_client_is_counted_by_its_64_so_new_addresses_do_not_reset_the_count(door, alice):
    """One subscriber commonly has a whole /64: a new address per try used
    to give unlimited guesses. Another /64 is somebody else."""
    client = door.client()
    door.assert_locked(_fail_v6(door, client))
    door.assert_locked(door.login(client, "alice", "pw-alice", ip="2001:db8:1:2::beef"))
    door.assert_success(door.login(door.client(), "alice", "pw-alice", ip="2001:db8:1:3::1"))


def _fail_v6(door, client):
    for attempt in range(1, LIMIT + 1):
        response = door.login(client, "alice", f"wrong-{attempt}", ip=f"2001:db8:1:2::{attempt:x}")
        if attempt < LIMIT:
            door.assert_failure(response)
    return response


def test_behind_a_trusted_proxy_the_forwarded_address_counts(door, alice, settings):
    from mcsite.models import AuditEvent

    settings.MCSITE_TRUSTED_PROXIES = [ipaddress.ip_network(HOME)]
    client = door.client()
    door.assert_locked(door.fail(client, LIMIT, xff="203.0.113.7"))
    event = AuditEvent.objects.get(action="auth.lockout")
    assert event.ip_address == "203.0.113.7"
    # Another visitor behind the same proxy is somebody else.
    door.assert_success(door.login(door.client(), "alice", "pw-alice", xff="203.0.113.8"))
    # The guesser's forwarded address stays locked, whatever it puts further left.
    door.assert_locked(door.login(client, "alice", "pw-alice", xff="192.0.2.1, 203.0.113.7"))


def test_the_address_alone_has_a_higher_cap(door, alice, bob, settings):
    settings.MCSITE_LOGIN_FAILURE_LIMIT_PER_ADDRESS = 8
    client = door.client()
    door.fail(client, 4, username="carol")  # below the per-username limit
    door.fail(client, 3, username="dave")
    door.assert_locked(door.login(client, "dave", "wrong"))  # the 8th failure from this address
    door.assert_locked(door.login(client, "bob", "pw-bob"))  # everyone is locked out from here
    door.assert_success(door.login(door.client(), "bob", "pw-bob", ip=ELSEWHERE))


def test_a_successful_login_clears_the_users_count_from_that_address(door, alice):
    door.fail(door.client(), LIMIT - 1)
    door.assert_success(door.login(door.client(), "alice", "pw-alice"))
    door.fail(door.client(), LIMIT - 1)  # all plain failures again
    door.assert_success(door.login(door.client(), "alice", "pw-alice"))


def test_a_lockout_is_audited_once(door, alice):
    from mcsite.models import AuditEvent

    client = door.client()
    door.fail(client, LIMIT)
    for _ in range(3):
        door.assert_locked(door.login(client, "alice", "pw-alice"))
    events = AuditEvent.objects.filter(action="auth.lockout")
    assert events.count() == 1
    event = events.get()
    assert event.outcome == "failure" and event.ip_address == HOME
    assert event.detail["username"] == "alice"
    assert event.detail["failures"] == LIMIT and event.detail["cooloff_minutes"] == 15
    assert event.detail["door"] == door.name


def test_the_lock_lifts_after_the_cool_off(door, alice):
    from datetime import timedelta

    from axes.models import AccessAttempt
    from django.db.models import F

    client = door.client()
    door.fail(client, LIMIT)
    AccessAttempt.objects.update(attempt_time=F("attempt_time") - timedelta(minutes=16))
    door.assert_success(door.login(client, "alice", "pw-alice"))


# --- the client address -----------------------------------------------------


def _request(remote="10.0.0.1", xff=None):
    from django.test import RequestFactory

    extra = {"REMOTE_ADDR": remote}
    if xff is not None:
        extra["HTTP_X_FORWARDED_FOR"] = xff
    return RequestFactory().get("/", **extra)


@pytest.mark.parametrize(
    "trusted, remote, xff, expected",
    [
        ([], "10.0.0.1", None, "10.0.0.1"),
        ([], "10.0.0.1", "203.0.113.7", "10.0.0.1"),  # nobody trusted: the header is ignored
        (["10.0.0.9"], "10.0.0.1", "203.0.113.7", "10.0.0.1"),  # not from the trusted proxy
        (["10.0.0.1"], "10.0.0.1", "203.0.113.7", "203.0.113.7"),
        (["10.0.0.1"], "10.0.0.1", "6.6.6.6, 203.0.113.7", "203.0.113.7"),  # rightmost untrusted
        (["10.0.0.0/8"], "10.0.0.1", "6.6.6.6, 203.0.113.7, 10.1.2.3", "203.0.113.7"),  # proxy chain
        (["10.0.0.0/8"], "10.0.0.1", "10.1.2.3", "10.1.2.3"),  # all trusted: the farthest one
        (["10.0.0.1"], "10.0.0.1", "", "10.0.0.1"),  # a proxy that sent no header
        (["10.0.0.1"], "10.0.0.1", "not-an-ip", "10.0.0.1"),  # garbage stops the walk
        (["10.0.0.1"], "10.0.0.1", "203.0.113.7:5555", "203.0.113.7"),  # a port is dropped
        (["::1"], "::1", "2001:DB8::0:1", "2001:db8::1"),  # normalised
        ([], "::ffff:10.0.0.5", None, "10.0.0.5"),  # IPv4-mapped
    ],
)
def test_the_client_address_rule(settings, trusted, remote, xff, expected):
    from mcsite.client_ip import client_ip

    settings.MCSITE_TRUSTED_PROXIES = [ipaddress.ip_network(n) for n in trusted]
    assert client_ip(_request(remote, xff)) == expected


def test_drf_throttles_use_the_same_client_address(settings):
    from django.utils.module_loading import import_string
    from rest_framework.settings import api_settings

    from backups.api.views import RestoreThrottle, TriggerThrottle
    from mcsite.api.auth import LoginThrottle

    classes = [import_string(c) if isinstance(c, str) else c for c in api_settings.DEFAULT_THROTTLE_CLASSES]
    classes += [LoginThrottle, TriggerThrottle, RestoreThrottle]
    settings.MCSITE_TRUSTED_PROXIES = []
    for cls in classes:
        assert cls().get_ident(_request("10.0.0.1", "203.0.113.7")) == "10.0.0.1", cls
    settings.MCSITE_TRUSTED_PROXIES = [ipaddress.ip_network("10.0.0.1")]
    for cls in classes:
        assert cls().get_ident(_request("10.0.0.1", "6.6.6.6, 203.0.113.7")) == "203.0.113.7", cls


def test_the_api_login_rate_limit_is_not_dodged_with_forwarded_for(anon_api, settings):
    """The per-address request rate of POST /api/auth/token (before any password check)."""
    settings.MCSITE_LOGIN_FAILURE_LIMIT = 1000
    settings.MCSITE_LOGIN_FAILURE_LIMIT_PER_ADDRESS = 1000
    codes = [
        anon_api.post("/api/auth/token", {"username": f"u{n}", "password": "x"}, format="json",
                      REMOTE_ADDR=HOME, HTTP_X_FORWARDED_FOR=f"198.51.100.{n}").status_code
        for n in range(25)
    ]
    assert codes[:20] == [401] * 20 and codes[20:] == [429] * 5


def test_an_audit_entry_records_the_client_address_by_the_same_rule(anon_api, settings):
    from mcsite.models import AuditEvent

    anon_api.post("/api/auth/token", {"username": "x", "password": "y"}, format="json",
                  REMOTE_ADDR=HOME, HTTP_X_FORWARDED_FOR="203.0.113.7")
    assert AuditEvent.objects.get(action="auth.token").ip_address == HOME
