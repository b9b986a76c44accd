"""Restore through the services: byte-for-byte result, failure leaves the
original folder and a running server, rollback, refusal of foreign names
and corrupt backups."""

import hashlib
import os
from pathlib import Path

import pytest

from backups import storage
from backups.models import BackupRecord, RestoreRequest
from backups.services import restores
from backups.services.restore_run import restore_run
from mcsite.errors import DomainError
from servers import control

pytestmark = pytest.mark.django_db


def tree(folder: Path, skip=("logs",)) -> dict[str, str]:
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if path.is_file() and rel.parts[0] not in skip:
            out[rel.as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _restore(server, record, **kwargs):
    restore = restores.restore_request(server=server, backup_filename=record.filename, actor=server.owner,
                                       enqueue=False, **kwargs)
    restore_run(restore_id=restore.pk)
    restore.refresh_from_db()
    return restore


def test_restore_brings_back_the_backup_byte_for_byte(alice, make_server, take_backup):
    server = make_server(alice)
    server.path.chmod(0o755)
    mode_before = oct(server.path.stat().st_mode & 0o777)
    before = tree(server.path)
    record = take_backup(server)
    (server.path / "world" / "level.dat").write_bytes(b"griefed")
    (server.path / "world" / "new-junk.txt").write_text("x")
    os.remove(next((server.path / "world" / "region").glob("*.mca")))

    restore = _restore(server, record)
    assert restore.status == "succeeded", (restore.error_code, restore.error_message)
    assert tree(server.path) == before
    assert restore.safety_backup.trigger == "safety" and not restore.safety_backup.locked  # it expires (retention)
    assert not list(server.path.parent.glob(".*restore*")) and not list(server.path.parent.glob(".*pre-restore*"))
    assert oct(server.path.stat().st_mode & 0o777) == mode_before


def test_rollback_brings_back_the_pre_restore_folder(alice, make_server, take_backup):
    server = make_server(alice)
    record = take_backup(server)
    (server.path / "world" / "level.dat").write_bytes(b"changed after the backup")
    changed = tree(server.path)

    restore = _restore(server, record)
    assert restore.status == "succeeded"
    assert (server.path / "world" / "level.dat").read_bytes() != b"changed after the backup"

    rollback = restores.restore_rollback(restore=restore, actor=alice, enqueue=False)
    restore_run(restore_id=rollback.pk)
    rollback.refresh_from_db()
    assert rollback.status == "succeeded", rollback.error_message
    assert tree(server.path) == changed
    restore.refresh_from_db()
    assert restore.status == "rolled_back"


def test_a_failure_after_extraction_leaves_the_original_folder_and_the_server_running(
        alice, fake_mc, take_backup, monkeypatch):
    server = fake_mc(alice, started=True)
    record = take_backup(server)
    server.refresh_from_db()
    pid_before = control.status(server.process_spec()).pid
    server.fake.control()  # keep writing; compare the world without its live files below
    control.stop(server.process_spec())
    original = tree(server.path)
    from servers.services import server_start

    server_start(server=server, actor=alice)
    server.fake.wait_ready()

    def broken_check(target, result):
        raise RuntimeError("injected failure after extraction")

    monkeypatch.setattr("backups.services.restore_run.check_restored_folder", broken_check)
    restore = _restore(server, record)
    assert restore.status == "failed" and "injected failure" in restore.error_message
    server.refresh_from_db()
    status = control.status(server.process_spec())
    assert status.running and status.pid != pid_before
    control.stop(server.process_spec())
    assert set(tree(server.path)) == set(original)
    assert not list(server.path.parent.glob(".*restore*"))


@pytest.mark.parametrize("name", ["../server-1/x.tar.gz", "/etc/passwd", "..", "", "server_backup_x.tar.gz"])
def test_foreign_or_path_like_names_are_backup_not_found(alice, make_server, take_backup, name):
    server = make_server(alice)
    take_backup(server)
    with pytest.raises(DomainError) as excinfo:
        restores.restore_preview(server=server, backup_filename=name)
    assert excinfo.value.code == "BACKUP_NOT_FOUND"
    with pytest.raises(DomainError):
        restores.restore_request(server=server, backup_filename=name, actor=alice, enqueue=False)
    assert not RestoreRequest.objects.exists()


def test_another_servers_backup_name_is_backup_not_found(alice, make_server, take_backup):
    mine, other = make_server(alice, "mine"), make_server(alice, "other")
    foreign = take_backup(other)
    with pytest.raises(DomainError) as excinfo:
        restores.restore_request(server=mine, backup_filename=foreign.filename, actor=alice, enqueue=False)
    assert excinfo.value.code == "BACKUP_NOT_FOUND"


def test_a_backup_with_a_flipped_byte_is_refused_and_nothing_changes(alice, make_server, take_backup):
    server = make_server(alice)
    record = take_backup(server)
    (server.path / "world" / "level.dat").write_bytes(b"current state")
    before = tree(server.path)
    path = storage.absolute_path(record.storage_path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(DomainError) as excinfo:
        restores.restore_request(server=server, backup_filename=record.filename, actor=alice, enqueue=False)
    assert excinfo.value.code == "BACKUP_CORRUPTED"
    assert tree(server.path) == before
    assert not RestoreRequest.objects.exists()
    assert BackupRecord.objects.filter(trigger="safety").count() == 0


def test_preview_uses_what_verification_read_and_falls_back_to_the_archive(alice, make_server, take_backup,
                                                                           monkeypatch):
    server = make_server(alice)
    record = take_backup(server)
    calls = []
    real = restores.engine.inspect_archive
    monkeypatch.setattr(restores.engine, "inspect_archive", lambda *a, **k: calls.append(1) or real(*a, **k))
    preview = restores.restore_preview(server=server, backup_filename=record.filename)
    assert calls == [] and preview["contents"]["minecraft_version"] == "1.14.4"
    BackupRecord.objects.filter(pk=record.pk).update(verification={}, file_count=None)
    again = restores.restore_preview(server=server, backup_filename=record.filename)
    assert calls == [1]
    assert again["contents"]["file_count"] == preview["contents"]["file_count"]
    assert again["contents"]["world_name"] == preview["contents"]["world_name"]


def test_a_backup_whose_key_is_gone_is_refused_before_anything_stops(alice, make_server, take_backup):
    from backups import engine
    from backups.models import BackupSettings
    from backups.scheduler import backup_scheduler

    server = make_server(alice)
    backup_scheduler.configure_encryption(True, key=engine.generate_key())
    record = take_backup(server)
    BackupSettings.objects.update(encryption_secret_sealed="", keyring=[], encryption_enabled=False)
    for call in (restores.restore_preview, lambda **kw: restores.restore_request(actor=alice, enqueue=False, **kw)):
        with pytest.raises(DomainError) as excinfo:
            call(server=server, backup_filename=record.filename)
        assert excinfo.value.code == "DECRYPTION_FAILED"
    assert not RestoreRequest.objects.exists()


def test_symlink_chains_planted_in_a_server_folder_reach_nothing_outside_it_after_a_restore(
        alice, make_server, take_backup):
    """a/b -> .. plus a/c -> b/.. (and deeper chains) each look inside the
    folder on their own; together a/c is the servers root, where other
    users' worlds are. Such links are not archived, and none is restored."""
    server = make_server(alice, world=False)
    root = server.path
    (root / "a").mkdir()
    os.symlink("..", root / "a" / "b")
    os.symlink("b/..", root / "a" / "c")
    (root / "x" / "y").mkdir(parents=True)
    os.symlink("../..", root / "x" / "y" / "up")
    os.symlink("x/y/up/..", root / "top")
    os.symlink("a/c/../..", root / "deeper")
    os.symlink("world-data", root / "fine")  # an ordinary link inside stays
    (root / "world-data").mkdir()

    record = take_backup(server)
    assert any("a/c" in w for w in record.warnings) and any("top" in w for w in record.warnings)
    restore = _restore(server, record)
    assert restore.status == "succeeded", restore.error_message
    for path in root.rglob("*"):
        if path.is_symlink():
            assert Path(os.path.realpath(path)).is_relative_to(root.resolve()), f"{path} leaves the folder"
    assert (root / "fine").is_symlink()


def test_a_restore_keeps_what_backups_exclude_unless_asked_to_replace_everything(alice, make_server, take_backup):
    """logs/ (excluded by default, like crash-reports/ and cache/) used to be
    gone after a restore; only a rollback, which also undid the restore,
    brought it back."""
    server = make_server(alice)
    (server.path / "logs").mkdir()
    (server.path / "logs" / "latest.log").write_text("before the backup")
    record = take_backup(server)
    (server.path / "logs" / "latest.log").write_text("the evening the world was griefed")
    (server.path / "crash-reports").mkdir()
    (server.path / "crash-reports" / "crash-1.txt").write_text("boom")
    (server.path / "world" / "level.dat").write_bytes(b"griefed")

    restore = _restore(server, record)
    assert restore.status == "succeeded", restore.error_message
    assert (server.path / "world" / "level.dat").read_bytes() != b"griefed"
    assert (server.path / "logs" / "latest.log").read_text() == "the evening the world was griefed"
    assert (server.path / "crash-reports" / "crash-1.txt").read_text() == "boom"
    kept = next(s for s in restore.steps if s["step"] == "kept_excluded")
    assert kept["paths"] == ["crash-reports", "logs"]

    restore = _restore(server, record, keep_excluded=False)
    assert restore.status == "succeeded", restore.error_message
    assert not (server.path / "logs").exists() and not (server.path / "crash-reports").exists()


def test_a_rollback_takes_its_own_safety_backup_so_it_can_be_undone(alice, make_server, take_backup):
    server = make_server(alice)
    record = take_backup(server)
    (server.path / "world" / "level.dat").write_bytes(b"before the restore")
    restore = _restore(server, record)
    (server.path / "world" / "played-after-the-restore.txt").write_text("a day of building")

    rollback = restores.restore_rollback(restore=restore, actor=alice, enqueue=False)
    rollback = restore_run(restore_id=rollback.pk)
    assert rollback.status == "succeeded", rollback.error_message
    assert (server.path / "world" / "level.dat").read_bytes() == b"before the restore"
    assert not (server.path / "world" / "played-after-the-restore.txt").exists()
    assert rollback.safety_backup is not None and rollback.safety_backup.status == "succeeded"

    undo = _restore(server, rollback.safety_backup)
    assert undo.status == "succeeded", undo.error_message
    assert (server.path / "world" / "played-after-the-restore.txt").read_text() == "a day of building"


def test_the_preview_and_the_api_say_and_do_what_happens_to_excluded_paths(alice, alice_api, make_server,
                                                                             take_backup):
    server = make_server(alice)
    (server.path / "logs").mkdir()
    (server.path / "logs" / "latest.log").write_text("today")
    record = take_backup(server)
    url = f"/api/backups/{server.pk}/restore"

    preview = alice_api.post(url, {"backup_filename": record.filename}, format="json").json()["data"]
    assert any("kept from the current folder: logs" in w for w in preview["warnings"]), preview["warnings"]
    preview = alice_api.post(url, {"backup_filename": record.filename, "keep_excluded": False},
                             format="json").json()["data"]
    assert any("they are removed" in w for w in preview["warnings"]), preview["warnings"]
    refused = alice_api.post(url, {"backup_filename": record.filename, "keep_excluded": "no"}, format="json")
    assert refused.status_code == 400 and refused.json()["code"] == "VALIDATION_ERROR"

    response = alice_api.post(url, {"backup_filename": record.filename, "confirm": True, "keep_excluded": False},
                              format="json")
    assert response.status_code == 202 and response.json()["data"]["keep_excluded"] is False
    assert RestoreRequest.objects.get().keep_excluded is False
