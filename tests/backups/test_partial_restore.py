"""A partial restore: only the chosen paths (a dimension, the player data,
one file) come back from the backup; everything else in the server folder
(the overworld played since, logs/, files the backup never had) stays byte
for byte; the safety backup is still of the whole folder, and a rollback
brings back the folder as it was before the restore."""

import hashlib
import io
import os
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from backups.models import BackupContents, RestoreRequest
from backups.services import restores
from backups.services.restore_run import restore_run
from mcsite.errors import DomainError

pytestmark = pytest.mark.django_db


def tree(folder: Path) -> dict[str, str]:
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_symlink():
            out[rel] = "link:" + os.readlink(path)
        elif path.is_file():
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            out[rel] = "dir"
    return out


def under(snapshot: dict, prefix: str) -> dict:
    return {k: v for k, v in snapshot.items() if k == prefix or k.startswith(prefix + "/")}


def outside(snapshot: dict, *prefixes: str) -> dict:
    return {k: v for k, v in snapshot.items() if not any(k == p or k.startswith(p + "/") for p in prefixes)}


def restore(server, record, paths, **kwargs):
    row = restores.restore_request(server=server, backup_filename=record.filename, actor=server.owner,
                                   enqueue=False, paths=paths, **kwargs)
    restore_run(restore_id=row.pk)
    row.refresh_from_db()
    assert row.status == "succeeded", (row.error_code, row.error_message)
    return row


def played_after_the_backup(server):
    """The nether is griefed, the overworld played on, logs written, a new file made."""
    world = server.path / "world"
    nether_region = sorted((world / "DIM-1" / "region").glob("*.mca"))
    nether_region[0].write_bytes(b"griefed nether")
    os.remove(nether_region[1])
    (world / "DIM-1" / "region" / "r.9.9.mca").write_bytes(b"lava everywhere")
    overworld = sorted((world / "region").glob("*.mca"))[0]
    overworld.write_bytes(overworld.read_bytes()[:4096] + b"a day of building")
    (server.path / "logs").mkdir(exist_ok=True)
    (server.path / "logs" / "latest.log").write_text("[12:00:00] Steve joined the game\n")
    (server.path / "notes.txt").write_text("made after the backup")


def test_only_the_nether_comes_back_and_everything_else_stays(alice, make_server, take_backup):
    server = make_server(alice)
    at_backup = tree(server.path)
    record = take_backup(server)
    played_after_the_backup(server)
    before_restore = tree(server.path)
    inode = (server.path / "notes.txt").stat().st_mtime_ns

    row = restore(server, record, ["world/DIM-1"])

    after = tree(server.path)
    assert under(after, "world/DIM-1") == under(at_backup, "world/DIM-1")
    assert outside(after, "world/DIM-1") == outside(before_restore, "world/DIM-1")
    assert (server.path / "logs" / "latest.log").read_text() == "[12:00:00] Steve joined the game\n"
    assert (server.path / "notes.txt").stat().st_mtime_ns == inode
    assert row.paths == ["world/DIM-1"] and row.file_count == len(
        [k for k, v in under(at_backup, "world/DIM-1").items() if v != "dir"])
    assert row.safety_backup is not None and row.safety_backup.trigger == "safety"
    safety_files = {p for p, _, kind in BackupContents.objects.get(backup=row.safety_backup).entries if kind == "f"}
    assert "logs/latest.log" in safety_files and "world/DIM-1/region/r.9.9.mca" in safety_files  # the whole folder
    assert not [p for p in server.path.parent.iterdir() if p.name.startswith(".")]

    rollback = restores.restore_rollback(restore=row, actor=alice, enqueue=False)
    restore_run(restore_id=rollback.pk)
    rollback.refresh_from_db()
    assert rollback.status == "succeeded", rollback.error_message
    assert tree(server.path) == before_restore


def test_one_file_comes_back_alone(alice, make_server, take_backup):
    server = make_server(alice)
    level = server.path / "world" / "level.dat"
    original = level.read_bytes()
    record = take_backup(server)
    level.write_bytes(b"corrupted")
    (server.path / "world" / "level.dat_old").write_bytes(b"kept as it is now")
    before = tree(server.path)

    restore(server, record, ["./world//level.dat"])

    assert level.read_bytes() == original
    assert outside(tree(server.path), "world/level.dat") == outside(before, "world/level.dat")


def test_the_player_data_comes_back_and_the_world_stays(alice, make_server, take_backup):
    server = make_server(alice)
    players = server.path / "world" / "playerdata"
    at_backup = tree(server.path)
    record = take_backup(server)
    for dat in players.glob("*.dat"):
        dat.write_bytes(b"inventory lost")
    (players / "newcomer.dat").write_bytes(b"joined later")
    sorted((server.path / "world" / "region").glob("*.mca"))[0].write_bytes(b"built since")
    before = tree(server.path)

    restore(server, record, ["world/playerdata", "world/advancements"])

    after = tree(server.path)
    assert under(after, "world/playerdata") == under(at_backup, "world/playerdata")
    assert not (players / "newcomer.dat").exists()  # the folder is the backup's
    assert outside(after, "world/playerdata", "world/advancements") == \
        outside(before, "world/playerdata", "world/advancements")


def test_a_missing_dimension_is_put_back(alice, make_server, take_backup):
    server = make_server(alice)
    at_backup = tree(server.path)
    record = take_backup(server)
    import shutil
    shutil.rmtree(server.path / "world" / "DIM-1")

    restore(server, record, ["world/DIM-1"])
    assert under(tree(server.path), "world/DIM-1") == under(at_backup, "world/DIM-1")


@pytest.mark.parametrize("paths, says", [
    (["../outside"], "'..'"),
    (["world/../../etc"], "'..'"),
    (["/etc/passwd"], "not a path inside"),
    (["world/nowhere"], "Not in this backup: world/nowhere"),
    ([""], "empty"),
    ("world/DIM-1", "must be a list"),
    ([".mcsite-manifest.json"], "Not in this backup"),
])
def test_bad_paths_are_refused_and_change_nothing(paths, says, alice, make_server, take_backup):
    server = make_server(alice)
    record = take_backup(server)
    before = tree(server.path)
    with pytest.raises(DomainError) as caught:
        restores.restore_request(server=server, backup_filename=record.filename, actor=alice, enqueue=False,
                                 paths=paths)
    assert caught.value.code.value == "VALIDATION_ERROR" and says in caught.value.message
    with pytest.raises(DomainError):
        restores.restore_preview(server=server, backup_filename=record.filename, paths=paths)
    assert not RestoreRequest.objects.exists()
    assert tree(server.path) == before


def test_a_backup_without_a_file_list_must_be_verified_again_first(alice, make_server, take_backup):
    server = make_server(alice)
    record = take_backup(server)
    BackupContents.objects.filter(backup=record).delete()
    with pytest.raises(DomainError, match="verify it again"):
        restores.restore_request(server=server, backup_filename=record.filename, actor=alice, enqueue=False,
                                 paths=["world/DIM-1"])
    assert not RestoreRequest.objects.exists()


def test_the_preview_names_what_is_replaced(alice, make_server, take_backup):
    server = make_server(alice)
    record = take_backup(server)
    preview = restores.restore_preview(server=server, backup_filename=record.filename,
                                       paths=["world/DIM-1", "world/DIM-1/region"])
    assert [p["path"] for p in preview["paths"]] == ["world/DIM-1"]  # the inner one is inside the outer
    nether = preview["paths"][0]
    files = [p for p in (server.path / "world" / "DIM-1").rglob("*") if p.is_file()]
    assert (nether["file_count"], nether["size_bytes"]) == (len(files), sum(p.stat().st_size for p in files))
    assert any("Only world/DIM-1 will be replaced" in w and "stays as it is" in w for w in preview["warnings"])
    assert not any("current files in the server folder will be replaced" in w for w in preview["warnings"])


def test_the_restore_api_takes_paths(alice, alice_api, make_server, take_backup):
    server = make_server(alice)
    record = take_backup(server)
    url = f"/api/backups/{server.pk}/restore/"
    preview = alice_api.post(url, {"backup_filename": record.filename, "paths": ["world/DIM-1"]}, format="json")
    assert preview.status_code == 200
    assert preview.json()["data"]["paths"][0]["path"] == "world/DIM-1"
    bad = alice_api.post(url, {"backup_filename": record.filename, "paths": ["../x"], "confirm": True}, format="json")
    assert bad.status_code == 400 and bad.json()["code"] == "VALIDATION_ERROR"
    assert not RestoreRequest.objects.exists()
    wrong_type = alice_api.post(url, {"backup_filename": record.filename, "paths": [3]}, format="json")
    assert wrong_type.status_code == 400
    started = alice_api.post(url, {"backup_filename": record.filename, "paths": ["world/DIM-1"], "confirm": True},
                             format="json")
    assert started.status_code == 202
    assert started.json()["data"]["paths"] == ["world/DIM-1"]
    assert RestoreRequest.objects.get().paths == ["world/DIM-1"]


def test_the_restore_command_takes_path(alice, make_server, take_backup):
    server = make_server(alice)
    at_backup = tree(server.path)
    record = take_backup(server)
    played_after_the_backup(server)
    before = tree(server.path)
    out = io.StringIO()
    call_command("restore", str(server.pk), record.filename, "--path", "world/DIM-1", "--yes", "--no-progress",
                 stdout=out, stderr=io.StringIO())
    assert "only world/DIM-1" in out.getvalue()
    after = tree(server.path)
    assert under(after, "world/DIM-1") == under(at_backup, "world/DIM-1")
    assert outside(after, "world/DIM-1") == outside(before, "world/DIM-1")
    with pytest.raises(CommandError) as caught:
        call_command("restore", str(server.pk), record.filename, "--path", "../x", "--yes", "--no-progress",
                     stdout=io.StringIO(), stderr=io.StringIO())
    assert caught.value.returncode == 2
