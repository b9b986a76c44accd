"""Issue #11: server names carry no control characters (they end up in log
lines, schedule task names and e-mails), and only an administrator may point
RCON anywhere but this host (the worker would connect there with the
user's bytes)."""

import socket

import pytest

from servers.models import Server

pytestmark = pytest.mark.django_db


@pytest.fixture
def folder(make_server_dir):
    make_server_dir("survival", world=False)
    return "survival"


def _create(api, **body):
    return api.post("/api/servers", {"directory": "survival", **body}, format="json")


# --- names -----------------------------------------------------------------------

@pytest.mark.parametrize("name", ["evil\nbackup_failed server_id=1", "a\rb", "nul\x00byte", "tab\there",
                                  "esc\x1b[31m", "del\x7f", "bell\x07x", "nl\u2028sep", "c1\x85next"])
def test_api_refuses_a_name_with_control_characters(alice_api, folder, name):
    response = _create(alice_api, name=name)
    assert response.status_code == 400, response.json()
    body = response.json()
    assert body["code"] == "VALIDATION_ERROR"
    assert "name" in body["details"]
    assert not Server.objects.exists()


def test_api_refuses_renaming_to_a_name_with_control_characters(alice_api, alice, make_server):
    server = make_server(alice, "fine", world=False)
    response = alice_api.patch(f"/api/servers/{server.pk}", {"name": "x\ny"}, format="json")
    assert response.status_code == 400 and response.json()["code"] == "VALIDATION_ERROR"
    assert "name" in response.json()["details"]
    server.refresh_from_db()
    assert server.name == "fine"


@pytest.mark.parametrize("name", ['say "hi"', "it's", "a=b c=d", "Überwelt ✓", "x" * 100])
def test_api_accepts_quotes_equals_unicode_and_long_names(alice_api, folder, name):
    response = _create(alice_api, name=name)
    assert response.status_code == 201, response.json()
    assert Server.objects.get().name == name


def test_web_form_refuses_a_name_with_control_characters(client, alice, folder):
    client.force_login(alice)
    response = client.post("/servers/new/", {
        "name": "x\x1by", "directory": "survival", "memory_mb": "1024", "rcon_host": "127.0.0.1",
        "rcon_port": "25575", "stop_timeout": "60", "backup_mode": "stop", "exclude_patterns": "", "node": "default",
    })
    assert response.status_code == 400
    assert "control characters" in response.content.decode()
    assert not Server.objects.exists()


# --- RCON host -----------------------------------------------------------------------

@pytest.mark.parametrize("host", ["10.0.0.5", "169.254.169.254", "example.com", "127.0.0.2", "0.0.0.0",
                                  "localhost.example.com"])
def test_a_user_cannot_point_rcon_at_another_host(alice_api, folder, host):
    response = _create(alice_api, name="s", rcon_host=host)
    assert response.status_code == 400, response.json()
    body = response.json()
    assert body["code"] == "VALIDATION_ERROR"
    message = " ".join(body["details"]["rcon_host"])
    assert "127.0.0.1" in message and "localhost" in message  # names what is allowed
    assert not Server.objects.exists()


def test_a_user_cannot_move_rcon_to_another_host_by_update(alice_api, alice, make_server):
    server = make_server(alice, "s", world=False)
    response = alice_api.patch(f"/api/servers/{server.pk}", {"rcon_host": "192.168.1.10"}, format="json")
    assert response.status_code == 400 and "rcon_host" in response.json()["details"]
    server.refresh_from_db()
    assert server.rcon_host == "127.0.0.1"


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "LOCALHOST"])
def test_a_user_may_use_loopback(alice_api, folder, host):
    response = _create(alice_api, name="s", rcon_host=host)
    assert response.status_code == 201, response.json()


def test_the_web_hosts_own_name_is_not_allowed_by_default(alice_api, folder):
    """Validation runs on the web host; RCON connects from the server's node.
    On another node the web host's name is a remote machine (the one with the
    database and the broker): loopback is this machine on every node."""
    response = _create(alice_api, name="s", rcon_host=socket.gethostname())
    assert response.status_code == 400 and "rcon_host" in response.json()["details"]


def test_the_allowed_hosts_setting_widens_the_list(alice_api, folder, settings, make_server_dir):
    settings.MCSITE_RCON_ALLOWED_HOSTS = ["mc-1.lan", "10.0.0.5"]
    assert _create(alice_api, name="a", rcon_host="10.0.0.5").status_code == 201
    make_server_dir("second", world=False)
    response = alice_api.post("/api/servers", {"name": "b", "directory": "second", "rcon_host": "10.0.0.6"},
                              format="json")
    assert response.status_code == 400
    assert "mc-1.lan" in " ".join(response.json()["details"]["rcon_host"])


def test_the_allowed_hosts_setting_may_be_a_comma_separated_string(alice_api, folder, settings):
    settings.MCSITE_RCON_ALLOWED_HOSTS = "mc-1.lan, mc-2.lan"
    assert _create(alice_api, name="a", rcon_host="MC-2.lan").status_code == 201


def test_a_superuser_may_point_rcon_anywhere(admin_api, folder):
    response = _create(admin_api, name="s", rcon_host="10.0.0.5")
    assert response.status_code == 201, response.json()


def test_a_user_keeps_a_host_an_admin_chose_when_saving_other_fields(alice_api, alice, make_server):
    server = make_server(alice, "s", world=False, rcon_host="10.0.0.5")
    response = alice_api.put(f"/api/servers/{server.pk}", {"name": "renamed", "directory": "s",
                                                            "rcon_host": "10.0.0.5"}, format="json")
    assert response.status_code == 200, response.json()


def test_web_form_refuses_another_rcon_host(client, alice, folder):
    client.force_login(alice)
    response = client.post("/servers/new/", {
        "name": "s", "directory": "survival", "memory_mb": "1024", "rcon_host": "10.0.0.5",
        "rcon_port": "25575", "stop_timeout": "60", "backup_mode": "stop", "exclude_patterns": "", "node": "default",
    })
    assert response.status_code == 400
    assert "RCON host must be one of" in response.content.decode()
    assert not Server.objects.exists()
