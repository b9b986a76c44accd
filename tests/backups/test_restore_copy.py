"""Restore into a new folder: a new stopped server of the caller's, with
the source server's settings but its own name and folder and no schedule,
holding the backup's files; the source server is not touched. The folder
must be new (or empty) and inside the servers root."""

import hashlib
from pathlib import Path

import pytest
from django.conf import settings

from backups.models import BackupRecord, RestoreRequest
from backups.services.restore_run import restore_run
from servers.models import Server

pytestmark = pytest.mark.django_db


def tree(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def copy_url(server, record):
    return f"/api/backups/{server.pk}/backups/{record.pk}/copy/"


def test_a_backup_becomes_a_new_server(alice, alice_api, make_server, take_backup, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    server = make_server(alice, memory_mb=2048, backup_mode="live", exclude_patterns=["logs/", "*.bak"])
    server.rcon_password = "s3cret-rcon"
    server.save()
    at_backup = tree(server.path)
    record = take_backup(server)
    (server.path / "world" / "level.dat").write_bytes(b"played on since")
    source_after = tree(server.path)

    response = alice_api.post(copy_url(server, record), {"name": "Survival test copy", "directory": "survival-copy"},
                              format="json")
    assert response.status_code == 202, response.json()
    data = response.json()["data"]
    assert data["kind"] == "copy" and data["status"] == "queued"
    copy = Server.objects.get(name="Survival test copy")
    assert (copy.owner, copy.directory, copy.memory_mb, copy.backup_mode, copy.exclude_patterns) == \
        (alice, "survival-copy", 2048, "live", ["logs/", "*.bak"])
    assert copy.rcon_password == "s3cret-rcon"
    assert not hasattr(copy, "backup_schedule") or copy.backup_schedule is None
    assert data["server_id"] == copy.pk

    row = restore_run(restore_id=data["id"])
    assert row.status == "succeeded", (row.error_code, row.error_message)
    assert row.safety_backup is None  # nothing was there to keep
    assert tree(copy.path) == at_backup
    assert tree(server.path) == source_after  # the source is not touched
    assert not BackupRecord.objects.filter(server=copy).exists()
    assert not [p for p in Path(settings.MCSITE_SERVERS_ROOT).iterdir() if p.name.startswith(".")]


def test_an_empty_existing_folder_is_accepted(alice, make_server, take_backup):
    from backups.services import restores

    server = make_server(alice)
    record = take_backup(server)
    (Path(settings.MCSITE_SERVERS_ROOT) / "empty").mkdir()
    row = restores.restore_copy(record=record, name="From empty", directory="empty", actor=alice, enqueue=False)
    assert restore_run(restore_id=row.pk).status == "succeeded"
    assert (Path(settings.MCSITE_SERVERS_ROOT) / "empty" / "world" / "level.dat").is_file()


@pytest.mark.parametrize("directory", ["survival", "survival/world", "../outside", "/tmp", ".hidden", "", "a/b/c",
                                       "taken"])
def test_a_folder_that_is_not_new_or_not_inside_the_root_is_refused(directory, alice, alice_api, make_server,
                                                                     take_backup):
    server = make_server(alice)
    record = take_backup(server)
    (Path(settings.MCSITE_SERVERS_ROOT) / "taken").mkdir()
    (Path(settings.MCSITE_SERVERS_ROOT) / "taken" / "world.txt").write_text("someone's")
    entries_before = sorted(p.name for p in Path(settings.MCSITE_SERVERS_ROOT).iterdir())
    response = alice_api.post(copy_url(server, record), {"name": "copy", "directory": directory}, format="json")
    assert response.status_code == 400, response.json()
    assert response.json()["code"] in ("INVALID_DIRECTORY", "VALIDATION_ERROR")
    assert Server.objects.count() == 1 and not RestoreRequest.objects.exists()
    assert sorted(p.name for p in Path(settings.MCSITE_SERVERS_ROOT).iterdir()) == entries_before
    assert not (Path(settings.MCSITE_SERVERS_ROOT).parent / "outside").exists()


def test_a_name_the_caller_already_uses_is_refused_and_no_folder_is_left(alice, alice_api, make_server, take_backup):
    server = make_server(alice)
    record = take_backup(server)
    response = alice_api.post(copy_url(server, record), {"name": server.name, "directory": "second"}, format="json")
    assert response.status_code == 400
    assert not (Path(settings.MCSITE_SERVERS_ROOT) / "second").exists()


def test_another_users_backup_cannot_be_copied(alice, bob, bob_api, make_server, take_backup):
    server = make_server(alice)
    record = take_backup(server)
    response = bob_api.post(copy_url(server, record), {"name": "stolen", "directory": "stolen"}, format="json")
    assert response.status_code == 404
    assert not Server.objects.filter(owner=bob).exists()
    assert not (Path(settings.MCSITE_SERVERS_ROOT) / "stolen").exists()


def test_unknown_fields_and_wrong_types_are_refused(alice, alice_api, make_server, take_backup):
    server = make_server(alice)
    record = take_backup(server)
    assert alice_api.post(copy_url(server, record), {"name": 3, "directory": "x"}, format="json").status_code == 400
    assert alice_api.post(copy_url(server, record), {"name": "x", "directory": "x", "owner": 1},
                          format="json").status_code == 400
    assert not (Path(settings.MCSITE_SERVERS_ROOT) / "x").exists()
