"""The permission matrix of every backup endpoint: anonymous 401, another
user 404 without leaking names or sizes, the owner and a superuser allowed."""

import pytest
from django.core.cache import cache

pytestmark = pytest.mark.django_db

ENDPOINTS = [
    ("get", "/api/backups/schedules/{sid}", None),
    ("put", "/api/backups/schedules/{sid}", {"enabled": False}),
    ("patch", "/api/backups/schedules/{sid}", {"retention_days": 10}),
    ("delete", "/api/backups/schedules/{sid}", None),
    ("post", "/api/backups/{sid}/trigger", None),
    ("get", "/api/backups/{sid}/history", None),
    ("get", "/api/backups/{sid}/status", None),
    ("get", "/api/backups/{sid}/available", None),
    ("post", "/api/backups/{sid}/restore", {"backup_filename": "{filename}", "confirm": False}),
    ("post", "/api/backups/{sid}/restore", {"backup_filename": "{filename}", "confirm": True}),
    ("get", "/api/backups/{sid}/restores", None),
    ("get", "/api/backups/{sid}/restores/{rid}", None),
    ("post", "/api/backups/{sid}/restores/{rid}/rollback", None),
    ("get", "/api/backups/{sid}/backups/{bid}", None),
    ("post", "/api/backups/{sid}/backups/{bid}/verify", None),
    ("post", "/api/backups/{sid}/backups/{bid}/lock", None),
    ("post", "/api/backups/{sid}/backups/{bid}/unlock", None),
    ("get", "/api/backups/{sid}/backups/{bid}/download", None),
    ("delete", "/api/backups/{sid}/backups/{bid}", None),
]
IDS = [f"{m.upper()} {u}" + (" confirm" if b and b.get("confirm") else "") for m, u, b in ENDPOINTS]


@pytest.fixture
def world(alice, make_server, take_backup):
    """Alice's server with a schedule, a real backup and a finished restore."""
    from backups.models import BackupSchedule
    from backups.services import restores, schedules
    from backups.services.restore_run import restore_run

    server = make_server(alice, "alices-secret-world")
    schedules.backup_schedule_create(server=server, data={"schedule_type": "daily", "schedule_time":
                                     BackupSchedule._meta.get_field("schedule_time").to_python("02:00")}, actor=alice)
    record = take_backup(server)
    restore = restores.restore_request(server=server, backup_filename=record.filename, actor=alice, enqueue=False)
    restore_run(restore_id=restore.pk)
    record.refresh_from_db()
    return {"sid": server.pk, "bid": record.pk, "rid": restore.pk, "filename": record.filename,
            "size": str(record.size_bytes), "sha": record.sha256}


def _call(api, method, url, body, world):
    url = url.format(**world)
    if body is not None:
        body = {k: (v.format(**world) if isinstance(v, str) else v) for k, v in body.items()}
    cache.clear()
    return getattr(api, method)(url, body, format="json") if body is not None else getattr(api, method)(url)


@pytest.mark.parametrize("method,url,body", ENDPOINTS, ids=IDS)
def test_anonymous_gets_401(anon_api, world, method, url, body):
    response = _call(anon_api, method, url, body, world)
    assert response.status_code == 401
    assert response.json()["code"] == "AUTHENTICATION_REQUIRED"


@pytest.mark.parametrize("method,url,body", ENDPOINTS, ids=IDS)
def test_another_user_gets_404_and_learns_nothing(bob_api, world, method, url, body):
    response = _call(bob_api, method, url, body, world)
    assert response.status_code == 404, response.content
    assert response.json()["code"] == "NOT_FOUND"
    text = response.content.decode()
    for secret in ("alices-secret-world", world["filename"], world["size"], world["sha"]):
        assert secret not in text


@pytest.mark.parametrize("method,url,body", ENDPOINTS, ids=IDS)
@pytest.mark.parametrize("who", ["alice_api", "admin_api"])
def test_owner_and_superuser_are_let_in(request, who, world, method, url, body):
    response = _call(request.getfixturevalue(who), method, url, body, world)
    assert response.status_code not in (401, 403, 404, 500), response.content[:300]
    assert response.json()["success"] is True if response["Content-Type"].startswith("application/json") else True


def test_schedule_create_naming_another_users_server_is_404(bob_api, world):
    response = bob_api.post("/api/backups/schedules", {"server_id": world["sid"], "schedule_type": "daily",
                                                        "schedule_time": "02:00"}, format="json")
    assert response.status_code == 404 and "alices-secret-world" not in response.content.decode()


def test_schedule_list_shows_only_own_schedules(bob_api, admin_api, world):
    assert bob_api.get("/api/backups/schedules").json()["data"] == []
    assert len(admin_api.get("/api/backups/schedules").json()["data"]) == 1


# --- issue #11: ownership follows the server, not a snapshot taken at backup time ---

@pytest.fixture
def moved_world(world, bob, admin_user):
    """Alice's server (backup, schedule, restore) given to bob by an admin."""
    from servers.models import Server
    from servers.services import server_update

    server_update(server=Server.objects.get(pk=world["sid"]), data={"owner": bob}, actor=admin_user)
    return world


@pytest.mark.parametrize("method,url,body", ENDPOINTS, ids=IDS)
def test_after_a_move_the_old_owner_gets_404_and_learns_nothing(alice_api, moved_world, method, url, body):
    response = _call(alice_api, method, url, body, moved_world)
    assert response.status_code == 404, response.content
    assert response.json()["code"] == "NOT_FOUND"
    text = response.content.decode()
    for secret in ("alices-secret-world", moved_world["filename"], moved_world["size"], moved_world["sha"]):
        assert secret not in text


@pytest.mark.parametrize("method,url,body", ENDPOINTS, ids=IDS)
def test_after_a_move_the_new_owner_is_let_in(bob_api, moved_world, method, url, body):
    response = _call(bob_api, method, url, body, moved_world)
    assert response.status_code not in (401, 403, 404, 500), response.content[:300]


def test_after_a_move_the_backup_record_names_the_new_owner(moved_world, bob):
    from backups.models import BackupRecord

    assert set(BackupRecord.objects.filter(server_id=moved_world["sid"]).values_list("owner", flat=True)) == {bob.pk}
    assert BackupRecord.objects.for_user(bob).filter(pk=moved_world["bid"]).exists()
    assert not BackupRecord.objects.for_user(bob.__class__.objects.get(username="alice")).exists()


@pytest.fixture
def kept_after_move(moved_world, bob):
    """Bob, the new owner, deleted the server and kept its backups."""
    from servers.models import Server
    from servers.services import server_delete

    server_delete(server=Server.objects.get(pk=moved_world["sid"]), delete_backups=False, actor=bob)
    return moved_world


DETACHED = [("get", "/api/backups/detached/{bid}", None), ("get", "/api/backups/detached/{bid}/download", None),
            ("delete", "/api/backups/detached/{bid}", None)]


@pytest.mark.parametrize("method,url,body", DETACHED, ids=[f"{m} {u}" for m, u, _ in DETACHED])
def test_kept_backups_of_a_moved_then_deleted_server_belong_to_its_last_owner(alice_api, bob_api, kept_after_move,
                                                                            method, url, body):
    response = _call(alice_api, method, url, body, kept_after_move)
    assert response.status_code == 404 and kept_after_move["filename"] not in response.content.decode()
    assert kept_after_move["filename"] not in alice_api.get("/api/backups/detached").content.decode()
    assert kept_after_move["filename"] in bob_api.get("/api/backups/detached").content.decode()
    response = _call(bob_api, method, url, body, kept_after_move)
    assert response.status_code == 200, response.content[:300]


def test_deleting_the_old_owner_keeps_the_new_owners_backups(moved_world, alice, bob, bob_api):
    from backups import storage
    from backups.models import BackupRecord

    alice.delete()
    record = BackupRecord.objects.get(pk=moved_world["bid"])
    assert record.server_id == moved_world["sid"] and storage.file_present(record)
    history = bob_api.get(f"/api/backups/{moved_world['sid']}/history").json()["data"]
    assert moved_world["bid"] in [row["id"] for row in history]


def test_deleting_a_user_keeps_another_users_kept_backups(kept_after_move, alice, bob_api):
    alice.delete()
    response = bob_api.get(f"/api/backups/detached/{kept_after_move['bid']}")
    assert response.status_code == 200, response.content[:300]
