"""Issue #11: a server folder can never be a folder that still holds someone
else's world: mcsite's own leftovers (dot-named: `.x.restore-…`,
`.x.pre-restore-…`, `.x.failed-restore-…`, `.x.previous-…`) or the folder of
another user's deleted server whose backups were kept. Refused exactly like a
missing folder, through the API, the web form and the admin."""

import pytest

from backups.models import BackupRecord
from servers.models import Server

pytestmark = pytest.mark.django_db

LEFTOVERS = [".alice-world.restore-k2j4h1", ".alice-world.pre-restore-20250101T020000",
             ".alice-world.failed-restore-20250101T020000", ".alice-world.previous-20250101T020000",
             ".hidden", "group/.hidden-inside"]


def _create(api, directory, name="x"):
    return api.post("/api/servers", {"name": name, "directory": directory}, format="json")


def _missing_message(api) -> str:
    return _create(api, "no-such-folder-at-all").json()["error"]


def _leftover(make_server_dir, name):
    folder = make_server_dir(name)  # a whole world: alice's files
    return folder


@pytest.mark.parametrize("name", LEFTOVERS)
def test_api_refuses_dot_named_and_leftover_folders_like_a_missing_one(bob_api, make_server_dir, name):
    _leftover(make_server_dir, name)
    response = _create(bob_api, name)
    assert response.status_code == 400, response.json()
    assert response.json()["code"] == "INVALID_DIRECTORY"
    assert response.json()["error"] == _missing_message(bob_api)
    assert not Server.objects.exists()


def test_api_refuses_a_symlink_to_a_leftover_and_a_path_through_one(bob_api, make_server_dir, settings):
    import os

    _leftover(make_server_dir, ".alice-world.restore-k2j4h1")
    os.symlink(settings.MCSITE_SERVERS_ROOT / ".alice-world.restore-k2j4h1", settings.MCSITE_SERVERS_ROOT / "alias")
    for directory in ("alias", ".alice-world.restore-k2j4h1/world",
                      str(settings.MCSITE_SERVERS_ROOT / ".alice-world.restore-k2j4h1")):
        response = _create(bob_api, directory)
        assert response.status_code == 400 and response.json()["code"] == "INVALID_DIRECTORY", directory
    assert not Server.objects.exists()


def test_api_update_cannot_move_a_server_onto_a_leftover(bob_api, bob, make_server, make_server_dir):
    server = make_server(bob, "bob-world", world=False)
    _leftover(make_server_dir, ".alice-world.pre-restore-20250101T020000")
    response = bob_api.patch(f"/api/servers/{server.pk}", {"directory": ".alice-world.pre-restore-20250101T020000"},
                             format="json")
    assert response.status_code == 400 and response.json()["code"] == "INVALID_DIRECTORY"
    server.refresh_from_db()
    assert server.directory == "bob-world"


@pytest.fixture
def deleted_with_kept_backups(alice, alice_api, make_server):
    """Alice's server, deleted through the API with its backups kept (the
    default): its folder still holds her world on disk."""
    server = make_server(alice, "alice-world")
    BackupRecord.objects.create(server=server, owner=alice, server_name=server.name, status="succeeded",
                                filename="alice-world_20250101_020000.tar.gz")
    assert alice_api.delete(f"/api/servers/{server.pk}").status_code == 200
    assert BackupRecord.objects.filter(server__isnull=True).exclude(status="deleted").count() == 1
    return "alice-world"


def test_api_refuses_another_users_deleted_server_folder_while_backups_are_kept(bob_api, deleted_with_kept_backups):
    for directory in (deleted_with_kept_backups, f"{deleted_with_kept_backups}/world"):
        response = _create(bob_api, directory)
        assert response.status_code == 400, response.json()
        assert response.json()["code"] == "INVALID_DIRECTORY"
        assert response.json()["error"] == _missing_message(bob_api)
    assert not Server.objects.exists()


def test_api_lets_the_former_owner_recreate_a_server_on_their_old_folder(alice_api, deleted_with_kept_backups):
    response = _create(alice_api, deleted_with_kept_backups, name="alice-world")
    assert response.status_code == 201, response.json()


def test_the_folder_is_free_again_once_the_kept_backups_are_deleted(alice, bob_api, deleted_with_kept_backups):
    BackupRecord.objects.filter(server__isnull=True).update(status="deleted")
    assert _create(bob_api, deleted_with_kept_backups).status_code == 201


def test_backups_deleted_with_the_server_do_not_block_the_folder(alice, alice_api, bob_api, make_server):
    server = make_server(alice, "alice-world")
    BackupRecord.objects.create(server=server, owner=alice, server_name=server.name, status="failed")
    assert alice_api.delete(f"/api/servers/{server.pk}?delete_backups=true").status_code == 200
    assert _create(bob_api, "alice-world").status_code == 201


def test_a_superuser_cannot_give_bob_alices_deleted_server_folder(admin_api, bob, deleted_with_kept_backups):
    from servers.services import server_update

    server = Server.objects.create(owner=bob, name="bob-world", directory="placeholder")
    response = admin_api.patch(f"/api/servers/{server.pk}", {"directory": deleted_with_kept_backups}, format="json")
    assert response.status_code == 400 and response.json()["code"] == "INVALID_DIRECTORY"
    from mcsite.errors import DomainError

    with pytest.raises(DomainError):
        server_update(server=server, data={"directory": deleted_with_kept_backups}, actor=bob)


# --- the web form (/servers/new/) and the admin --------------------------------------

def _form(directory, **overrides):
    data = {"name": "taken", "directory": directory, "start_command": "java -jar server.jar nogui",
            "memory_mb": "1024", "rcon_host": "127.0.0.1", "rcon_port": "25575", "stop_timeout": "30",
            "backup_mode": "stop", "exclude_patterns": "logs/", "node": "default"}
    data.update(overrides)
    return data


@pytest.mark.parametrize("url", ["/servers/new/", "/admin/servers/server/add/"])
@pytest.mark.parametrize("name", [".alice-world.restore-k2j4h1", ".alice-world.failed-restore-20250101T020000"])
def test_web_form_and_admin_refuse_leftover_folders(client, bob, make_server_dir, url, name):
    _leftover(make_server_dir, name)
    client.force_login(bob)
    response = client.post(url, _form(name))
    assert response.status_code in (200, 400)
    assert "Directory must be an existing folder" in response.content.decode()
    assert not Server.objects.exists()


@pytest.mark.parametrize("url", ["/servers/new/", "/admin/servers/server/add/"])
def test_web_form_and_admin_refuse_another_users_deleted_server_folder(client, bob, alice, url,
                                                                      deleted_with_kept_backups):
    client.force_login(bob)
    response = client.post(url, _form(deleted_with_kept_backups))
    assert response.status_code in (200, 400)
    assert "Directory must be an existing folder" in response.content.decode()
    assert not Server.objects.exists()
    client.force_login(alice)
    response = client.post(url, _form(deleted_with_kept_backups))
    assert response.status_code == 302, response.content.decode()[:3000]
    assert Server.objects.get().owner == alice


def test_admin_superuser_cannot_create_a_server_for_bob_on_alices_deleted_folder(client, admin_user, bob,
                                                                                 deleted_with_kept_backups):
    client.force_login(admin_user)
    response = client.post("/admin/servers/server/add/", _form(deleted_with_kept_backups, owner=str(bob.pk)))
    assert response.status_code == 200
    assert "Directory must be an existing folder" in response.content.decode()
    assert not Server.objects.exists()


def test_a_deleted_users_folder_is_not_handed_to_another_user(alice, bob_api, admin_api, make_server):
    """Deleting alice's account keeps her backups (for an admin) and her folder
    stays closed to other users while they exist."""
    server = make_server(alice, "alice-world")
    BackupRecord.objects.create(server=server, owner=alice, server_name=server.name, status="succeeded")
    alice.delete()
    record = BackupRecord.objects.get()
    assert record.server is None and record.owner is None and record.server_directory == "alice-world"
    response = _create(bob_api, "alice-world")
    assert response.status_code == 400 and response.json()["code"] == "INVALID_DIRECTORY"
    assert _create(admin_api, "alice-world").status_code == 201  # an admin sees those backups anyway
