"""Issue #12 item 9: settings that cannot work are refused (or warned about)
where they are typed, through the API, the web form and the admin alike.

- live backups need an RCON password (save-off / save-all / save-on go over RCON);
- a folder without the server jar its start command names is accepted with a
  warning (the jar may be copied in later) that says which jar is missing;
- a folder the caller's own other server uses gets a message that names that
  server, while a missing folder and another user's folder keep one message
  (their names cannot be probed);
- the new-server form does not offer to remove a stored RCON password, and
  says "game host" rather than "Celery queue"."""

import pytest

from servers.forms import ServerForm
from servers.models import Server
from servers.services import UNAVAILABLE_DIRECTORY

pytestmark = pytest.mark.django_db


# --- live mode without an RCON password -----------------------------------------

def test_api_refuses_live_mode_without_an_rcon_password_and_changes_nothing(alice_api, make_server_dir):
    make_server_dir("survival")
    response = alice_api.post("/api/servers", {"name": "Survival", "directory": "survival",
                                               "backup_mode": "live"}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "VALIDATION_ERROR"
    assert "RCON password" in body["details"]["backup_mode"][0]
    assert not Server.objects.exists()

    ok = alice_api.post("/api/servers", {"name": "Survival", "directory": "survival", "backup_mode": "live",
                                         "rcon_password": "s3cret-pass"}, format="json")
    assert ok.status_code == 201, ok.json()


def test_api_refuses_switching_to_live_or_clearing_the_password_of_a_live_server(alice, alice_api, make_server):
    server = make_server(alice, "survival")
    response = alice_api.patch(f"/api/servers/{server.pk}", {"backup_mode": "live"}, format="json")
    assert response.status_code == 400
    assert "RCON password" in response.json()["details"]["backup_mode"][0]
    server.refresh_from_db()
    assert server.backup_mode == "stop"

    assert alice_api.patch(f"/api/servers/{server.pk}", {"backup_mode": "live", "rcon_password": "pw-123456"},
                           format="json").status_code == 200
    cleared = alice_api.patch(f"/api/servers/{server.pk}", {"rcon_password": ""}, format="json")
    assert cleared.status_code == 400
    server.refresh_from_db()
    assert server.backup_mode == "live" and server.rcon_password == "pw-123456"
    # An unrelated change to a live server that has its password is fine.
    assert alice_api.patch(f"/api/servers/{server.pk}", {"memory_mb": 2048}, format="json").status_code == 200


def test_web_form_refuses_live_mode_without_a_password(alice, make_server_dir):
    make_server_dir("survival")
    form = ServerForm(data={"name": "Survival", "directory": "survival", "memory_mb": 1024,
                            "rcon_host": "127.0.0.1", "rcon_port": 25575, "stop_timeout": 60,
                            "backup_mode": "live", "node": "default"}, user=alice)
    assert not form.is_valid()
    assert "RCON password" in " ".join(form.errors["backup_mode"])


def test_admin_form_keeps_a_stored_password_for_live_mode(alice, make_server):
    server = make_server(alice, "survival")
    server.rcon_password = "stored-pw"
    server.save()
    data = {"name": "survival", "directory": "survival", "memory_mb": 1024, "rcon_host": "127.0.0.1",
            "rcon_port": 25575, "stop_timeout": 60, "backup_mode": "live", "node": "default"}
    assert ServerForm(data=data, instance=server, user=alice).is_valid()
    cleared = ServerForm(data={**data, "clear_rcon_password": "on"}, instance=server, user=alice)
    assert not cleared.is_valid()
    assert "RCON password" in " ".join(cleared.errors["backup_mode"])


# --- a folder without its server jar --------------------------------------------

def test_api_warns_about_a_folder_without_the_server_jar(alice_api, make_server_dir):
    folder = make_server_dir("survival")
    (folder / "server.jar").unlink()
    response = alice_api.post("/api/servers", {"name": "Survival", "directory": "survival"}, format="json")
    assert response.status_code == 201  # accepted: the jar may be copied in later
    warnings = response.json()["data"]["warnings"]
    assert len(warnings) == 1 and "server.jar" in warnings[0]

    (folder / "server.jar").write_bytes(b"PK\x03\x04")
    server_id = response.json()["data"]["id"]
    assert alice_api.get(f"/api/servers/{server_id}").json()["data"]["warnings"] == []


def test_jar_named_by_the_start_command_is_the_one_looked_for(admin_api, make_server_dir):
    folder = make_server_dir("paper")
    response = admin_api.post("/api/servers", {
        "name": "Paper", "directory": "paper",
        "start_command": "java -Xmx{mem}M -jar paper-1.20.4.jar --nogui"}, format="json")
    assert response.status_code == 201
    assert "paper-1.20.4.jar" in response.json()["data"]["warnings"][0]
    (folder / "paper-1.20.4.jar").write_bytes(b"PK\x03\x04")
    assert admin_api.get(f"/api/servers/{response.json()['data']['id']}").json()["data"]["warnings"] == []


def test_web_create_shows_the_jar_warning(alice, client, make_server_dir):
    folder = make_server_dir("survival")
    (folder / "server.jar").unlink()
    client.force_login(alice)
    response = client.post("/servers/new/", {"name": "Survival", "directory": "survival", "memory_mb": 1024,
                                             "rcon_host": "127.0.0.1", "rcon_port": 25575, "stop_timeout": 60,
                                             "backup_mode": "stop", "node": "default",
                                             "backup-schedule_type": "daily"}, follow=True)
    assert Server.objects.filter(name="Survival").exists()
    page = response.content.decode()
    assert "server.jar" in page and "not in the folder" in page


# --- which folder message ----------------------------------------------------------

def test_own_other_server_folder_is_named_other_users_and_missing_folders_are_not(
        alice, bob, alice_api, make_server, make_server_dir):
    make_server(alice, "Creative", world=False)
    make_server(bob, "bobs-world", world=False)

    own = alice_api.post("/api/servers", {"name": "Second", "directory": "Creative"}, format="json").json()
    assert own["code"] == "INVALID_DIRECTORY"
    assert "Creative" in own["error"] and "your server" in own["error"].lower()

    others = alice_api.post("/api/servers", {"name": "Third", "directory": "bobs-world"}, format="json").json()
    missing = alice_api.post("/api/servers", {"name": "Fourth", "directory": "no-such-folder"}, format="json").json()
    assert others["error"] == missing["error"] == UNAVAILABLE_DIRECTORY
    assert "bobs-world" not in others["error"]

    inside = make_server_dir("Creative-nested", world=False)
    (inside.parent / "Creative" / "plugins").mkdir()
    nested = alice_api.post("/api/servers", {"name": "Nested", "directory": "Creative/plugins"}, format="json").json()
    assert "Creative" in nested["error"] and "your server" in nested["error"].lower()
    assert Server.objects.count() == 2


# --- the new-server form's words -----------------------------------------------------

def test_new_server_form_has_no_remove_password_box_and_no_celery_jargon(alice, client):
    client.force_login(alice)
    page = client.get("/servers/new/").content.decode()
    assert "Remove the stored RCON password" not in page
    assert "Celery" not in page
    assert "Game host" in page


def test_edit_form_offers_to_remove_a_stored_password_only(alice, make_server):
    server = make_server(alice, "survival")
    assert "clear_rcon_password" not in ServerForm(instance=server, user=alice).fields
    server.rcon_password = "stored"
    server.save()
    assert "clear_rcon_password" in ServerForm(instance=server, user=alice).fields
