"""The permission matrix of /api/servers: anonymous 401, owner, another user
404 (the body never names the other owner's server), superuser."""

import pytest

from mcsite.models import AuditEvent
from servers.models import Server

pytestmark = pytest.mark.django_db


@pytest.fixture
def alices_server(alice, make_server):
    return make_server(alice, "alices-secret-world")


def _detail_urls(server):
    return [f"/api/servers/{server.pk}", f"/api/servers/{server.pk}/"]


def test_anonymous_gets_401_everywhere(anon_api, alices_server):
    assert anon_api.get("/api/servers").status_code == 401
    assert anon_api.post("/api/servers", {}, format="json").status_code == 401
    for url in _detail_urls(alices_server):
        assert anon_api.get(url).status_code == 401
        assert anon_api.put(url, {}, format="json").status_code == 401
        assert anon_api.patch(url, {}, format="json").status_code == 401
        assert anon_api.delete(url).status_code == 401
    assert Server.objects.filter(pk=alices_server.pk).exists()


def test_owner_lists_reads_changes_and_deletes_their_server(alice_api, alices_server):
    listed = alice_api.get("/api/servers/").json()["data"]
    assert [s["name"] for s in listed] == ["alices-secret-world"]
    assert listed[0]["owner"] == "alice"
    assert "rcon_password" not in listed[0]

    got = alice_api.get(f"/api/servers/{alices_server.pk}").json()["data"]
    assert got["directory"] == "alices-secret-world"
    assert got["status"]["state"] in {"running", "stopped"}

    patched = alice_api.patch(f"/api/servers/{alices_server.pk}", {"memory_mb": 2048}, format="json")
    assert patched.status_code == 200
    assert patched.json()["data"]["memory_mb"] == 2048

    assert alice_api.delete(f"/api/servers/{alices_server.pk}").status_code == 200
    assert not Server.objects.filter(pk=alices_server.pk).exists()


def test_another_user_gets_404_that_leaks_nothing(bob_api, alices_server):
    listed = bob_api.get("/api/servers")
    assert listed.json()["data"] == []
    assert listed.json()["pagination"]["count"] == 0
    for url in _detail_urls(alices_server):
        for response in (
            bob_api.get(url),
            bob_api.put(url, {"name": "x", "directory": "alices-secret-world"}, format="json"),
            bob_api.patch(url, {"memory_mb": 4096}, format="json"),
            bob_api.delete(url),
        ):
            assert response.status_code == 404
            assert response.json()["code"] == "NOT_FOUND"
            assert "alices-secret-world" not in response.content.decode()
    alices_server.refresh_from_db()
    assert alices_server.memory_mb == 1024


def test_superuser_sees_and_changes_every_server(admin_api, alices_server, bob, make_server):
    make_server(bob, "bobs-world")
    names = {s["name"] for s in admin_api.get("/api/servers").json()["data"]}
    assert names == {"alices-secret-world", "bobs-world"}
    response = admin_api.patch(f"/api/servers/{alices_server.pk}", {"backup_mode": "live", "rcon_password": "pw-admin"},
                               format="json")
    assert response.status_code == 200
    alices_server.refresh_from_db()
    assert alices_server.backup_mode == "live"


def test_create_sets_the_owner_and_defaults_and_audits(alice_api, alice, make_server_dir):
    make_server_dir("creative", world=False)
    response = alice_api.post(
        "/api/servers",
        {"name": "creative", "directory": "creative", "rcon_password": "hunter2", "rcon_port": 25580},
        format="json",
    )
    assert response.status_code == 201, response.json()
    data = response.json()["data"]
    assert data["owner"] == "alice"
    assert data["start_command"] == "java -Xms{mem}M -Xmx{mem}M -jar server.jar nogui"
    assert data["exclude_patterns"] == ["logs/", "crash-reports/", "cache/", "*.tmp"]
    assert data["backup_mode"] == "stop"
    assert data["has_rcon_password"] is True
    assert "hunter2" not in response.content.decode()
    server = Server.objects.get(pk=data["id"])
    assert server.rcon_password == "hunter2"
    assert "hunter2" not in server.rcon_password_sealed
    event = AuditEvent.objects.get(action="server.create")
    assert event.actor == alice and event.object_id == str(server.pk) and event.ip_address == "127.0.0.1"


def test_create_rejects_wrong_types_with_field_details(alice_api, make_server_dir):
    make_server_dir("typed", world=False)
    response = alice_api.post(
        "/api/servers", {"name": "typed", "directory": "typed", "memory_mb": "2048", "rcon_port": True},
        format="json",
    )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "VALIDATION_ERROR"
    assert set(body["details"]) == {"memory_mb", "rcon_port"}
    assert not Server.objects.exists()


def test_duplicate_name_for_the_same_owner_is_a_validation_error(alice_api, alice, make_server, make_server_dir):
    make_server(alice, "one")
    make_server_dir("two", world=False)
    response = alice_api.post("/api/servers", {"name": "one", "directory": "two"}, format="json")
    assert response.status_code == 400
    assert response.json()["details"]["name"]


def test_deleting_a_server_can_keep_or_delete_its_backups(alice_api, alice, make_server):
    from backups.models import BackupRecord

    kept = make_server(alice, "kept")
    BackupRecord.objects.create(server=kept, owner=alice, server_name="kept", status="succeeded")
    assert alice_api.delete(f"/api/servers/{kept.pk}").status_code == 200
    record = BackupRecord.objects.get()
    assert record.server is None and record.owner == alice and record.status == "succeeded"

    gone = make_server(alice, "gone")
    BackupRecord.objects.create(server=gone, owner=alice, server_name="gone", status="succeeded")
    assert alice_api.delete(f"/api/servers/{gone.pk}?delete_backups=true").status_code == 200
    assert BackupRecord.objects.get(server_name="gone").status == "deleted"


def test_only_an_administrator_may_set_the_start_command(alice_api, admin_api, alice, make_server, make_server_dir):
    make_server_dir("cmd", world=False)
    body = {"name": "cmd", "directory": "cmd", "start_command": "sh -c 'id > /tmp/pwned'"}
    response = alice_api.post("/api/servers", body, format="json")
    assert response.status_code == 403 and response.json()["code"] == "PERMISSION_DENIED"
    assert not Server.objects.filter(name="cmd").exists()
    server = make_server(alice, "mine", world=False)
    response = alice_api.patch(f"/api/servers/{server.pk}", {"start_command": "bash evil.sh"}, format="json")
    assert response.status_code == 403
    server.refresh_from_db()
    assert server.start_command.startswith("java ")
    unchanged = alice_api.patch(f"/api/servers/{server.pk}", {"start_command": server.start_command}, format="json")
    assert unchanged.status_code == 200
    response = admin_api.patch(f"/api/servers/{server.pk}", {"start_command": "java -jar paper.jar nogui"},
                               format="json")
    assert response.status_code == 200 and response.json()["data"]["start_command"] == "java -jar paper.jar nogui"


def test_unknown_fields_and_a_numeric_node_are_refused(alice_api, alice, make_server):
    server = make_server(alice, "typed-node", world=False)
    response = alice_api.patch(f"/api/servers/{server.pk}", {"colour": "red"}, format="json")
    assert response.status_code == 400 and set(response.json()["details"]) == {"colour"}
    response = alice_api.patch(f"/api/servers/{server.pk}", {"node": 123}, format="json")
    assert response.status_code == 400 and set(response.json()["details"]) == {"node"}


def test_changing_the_node_moves_the_schedule_to_that_queue(alice_api, alice, make_server, remote_nodes):
    import datetime as dt

    from backups.services import schedules

    server = make_server(alice, "moving", world=False)
    remote_nodes.add("host2")  # up, its folder "moving" there (the test folders stand in for its disk)
    schedule = schedules.backup_schedule_create(server=server, data={"schedule_type": "daily",
                                                "schedule_time": dt.time(2)}, actor=alice)
    response = alice_api.patch(f"/api/servers/{server.pk}", {"node": "host2"}, format="json")
    assert response.status_code == 200 and "Moved to game host host2" in response.json()["message"]
    schedule.periodic_task.refresh_from_db()
    assert schedule.periodic_task.queue == "host2"
    # A game host that never reported is refused; so is one without the folder.
    response = alice_api.patch(f"/api/servers/{server.pk}", {"node": "typo"}, format="json")
    assert response.status_code == 400 and "No game host named typo" in response.json()["details"]["node"][0]
    remote_nodes.add("host3")
    (server.path / "marker").write_text("x")
    server.path.rename(server.path.with_name("moved-away"))
    response = alice_api.patch(f"/api/servers/{server.pk}", {"node": "host3"}, format="json")
    assert response.status_code == 400 and response.json()["code"] == "INVALID_DIRECTORY"
    server.refresh_from_db()
    assert server.node == "host2"
    # Never while a backup of it runs.
    from backups.models import BackupRecord

    server.path.with_name("moved-away").rename(server.path)
    BackupRecord.objects.create(server=server, owner=alice, server_name=server.name, status="running")
    response = alice_api.patch(f"/api/servers/{server.pk}", {"node": "host3"}, format="json")
    assert response.status_code == 409 and response.json()["code"] == "BACKUP_IN_PROGRESS"
    server.refresh_from_db()
    assert server.node == "host2"


def test_a_server_cannot_be_deleted_while_a_backup_or_restore_is_active(alice_api, alice, make_server):
    from backups.models import BackupRecord

    server = make_server(alice, "busy", world=False)
    BackupRecord.objects.create(server=server, owner=alice, server_name="busy", status="running")
    response = alice_api.delete(f"/api/servers/{server.pk}")
    assert response.status_code == 409 and response.json()["code"] == "BACKUP_IN_PROGRESS"
    assert Server.objects.filter(pk=server.pk).exists()
