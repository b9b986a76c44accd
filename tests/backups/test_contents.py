"""Looking inside a backup: the file list is kept when the backup is
verified (replaced on a re-verification), and the files API lists one
folder level with sizes from it, without decompressing anything."""

import os

import pytest

from backups import storage
from backups.models import BackupContents
from backups.services import actions, contents

pytestmark = pytest.mark.django_db


def files_url(server, record, path=None):
    url = f"/api/backups/{server.pk}/backups/{record.pk}/files/"
    return url if path is None else f"{url}?path={path}"


def disk_size(folder) -> tuple[int, int]:
    sizes = [os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(folder) for f in files]
    return sum(sizes), len(sizes)


def test_a_verified_backup_keeps_its_file_list(alice, make_server, take_backup):
    server = make_server(alice)
    record = take_backup(server)
    entries = BackupContents.objects.get(backup=record).entries
    by_path = {path: (size, kind) for path, size, kind in entries}
    assert by_path["world/level.dat"] == ((server.path / "world" / "level.dat").stat().st_size, "f")
    assert by_path["world/DIM-1"][1] == "d"
    assert "logs" not in {p.split("/")[0] for p in by_path}  # excluded paths are not in the backup
    files = [e for e in entries if e[2] == "f"]
    assert len(files) == record.file_count


def test_verify_again_fills_the_list_of_a_backup_that_had_none_and_replaces_it(alice, make_server, take_backup):
    server = make_server(alice)
    record = take_backup(server)
    BackupContents.objects.filter(backup=record).delete()  # as a backup verified before lists were kept
    assert contents.contents_level(record=record)["listed"] is False

    actions.backup_verify(record=record)
    first = BackupContents.objects.get(backup=record)
    actions.backup_verify(record=record)
    again = BackupContents.objects.get(backup=record)
    assert again.entries == first.entries
    assert BackupContents.objects.filter(backup=record).count() == 1


def test_a_backup_that_cannot_be_read_to_the_end_keeps_no_stale_list(alice, make_server, take_backup):
    server = make_server(alice)
    record = take_backup(server)
    path = storage.absolute_path(record.storage_path)
    with open(path, "r+b") as fh:
        fh.truncate(os.path.getsize(path) // 2)
    actions.backup_verify(record=record)
    assert not BackupContents.objects.filter(backup=record).exists()


def test_the_files_api_lists_one_level_with_folder_totals(alice, alice_api, make_server, take_backup):
    server = make_server(alice)
    record = take_backup(server)

    top = alice_api.get(files_url(server, record)).json()["data"]
    assert top["listed"] is True and top["path"] == ""
    names = [e["name"] for e in top["entries"]]
    assert names[0] == "world"  # folders first
    assert {"server.properties", "server.jar"} <= set(names)
    assert top["total"] == len(top["entries"])

    world = alice_api.get(files_url(server, record, "world")).json()["data"]
    nether = next(e for e in world["entries"] if e["name"] == "DIM-1")
    assert nether["kind"] == "d" and nether["path"] == "world/DIM-1"
    assert (nether["size_bytes"], nether["file_count"]) == disk_size(server.path / "world" / "DIM-1")
    level = next(e for e in world["entries"] if e["name"] == "level.dat")
    assert (level["kind"], level["file_count"]) == ("f", 1)

    region = alice_api.get(files_url(server, record, "world/region/")).json()["data"]
    assert region["path"] == "world/region"
    assert {e["name"] for e in region["entries"]} == set(os.listdir(server.path / "world" / "region"))


def test_the_top_level_offers_the_worlds_parts(alice, alice_api, make_server, take_backup):
    server = make_server(alice)
    record = take_backup(server)
    parts = {p["key"]: p for p in alice_api.get(files_url(server, record)).json()["data"]["parts"]}
    assert parts["nether"]["paths"] == ["world/DIM-1"]
    assert parts["end"]["paths"] == ["world/DIM1"]
    assert parts["overworld"]["paths"] == ["world/region", "world/poi"]
    assert parts["players"]["paths"] == ["world/playerdata", "world/advancements"]
    assert (parts["nether"]["size_bytes"], parts["nether"]["file_count"]) == disk_size(server.path / "world" / "DIM-1")


def test_paper_and_custom_dimensions_are_offered(alice, make_server, take_backup):
    server = make_server(alice)
    nether = server.path / "world_nether"
    (nether / "DIM-1" / "region").mkdir(parents=True)
    (nether / "level.dat").write_bytes((server.path / "world" / "level.dat").read_bytes())
    (nether / "DIM-1" / "region" / "r.0.0.mca").write_bytes(b"\0" * 8192)
    custom = server.path / "world" / "dimensions" / "mymod" / "moon" / "region"
    custom.mkdir(parents=True)
    (custom / "r.0.0.mca").write_bytes(b"\0" * 4096)
    record = take_backup(server)
    parts = {(p["key"], p["world"]): p for p in contents.contents_parts(record=record)}
    assert parts[("nether", "world_nether")]["paths"] == ["world_nether"]
    assert parts[("dimension:mymod:moon", "world")]["paths"] == ["world/dimensions/mymod/moon"]
    assert parts[("dimension:mymod:moon", "world")]["size_bytes"] == 4096


@pytest.mark.parametrize("path, status, code", [
    ("world/nowhere", 404, "NOT_FOUND"),
    ("../etc", 400, "VALIDATION_ERROR"),
    ("world/../../etc", 400, "VALIDATION_ERROR"),
    ("/etc", 400, "VALIDATION_ERROR"),
    ("world/level.dat", 400, "VALIDATION_ERROR"),
])
def test_the_files_api_refuses_paths_outside_the_backup(path, status, code, alice, alice_api, make_server,
                                                         take_backup):
    server = make_server(alice)
    record = take_backup(server)
    response = alice_api.get(files_url(server, record, path))
    assert response.status_code == status
    body = response.json()
    assert body["success"] is False and body["code"] == code


def test_another_users_backup_is_not_found(alice, bob_api, make_server, take_backup, anon_api):
    server = make_server(alice)
    record = take_backup(server)
    assert bob_api.get(files_url(server, record)).status_code == 404
    assert anon_api.get(files_url(server, record)).status_code == 401


def test_a_backup_without_a_list_says_so(alice, alice_api, make_server, take_backup):
    server = make_server(alice)
    record = take_backup(server)
    BackupContents.objects.filter(backup=record).delete()
    body = alice_api.get(files_url(server, record)).json()
    assert body["data"]["listed"] is False and body["data"]["entries"] == []
    assert "verify it again" in body["message"]
