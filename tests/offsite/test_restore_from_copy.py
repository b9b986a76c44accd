"""Restore from an off-site copy when the local file is gone (issue #13
item 4), through each target kind on a real remote end: the copy is streamed
straight into the staging extraction (no second local copy), its bytes
checked against the record's SHA-256; then the usual safety backup, swap and
rollback. An altered copy fails BACKUP_CORRUPTED with the folder untouched;
a full disk is refused before anything moves."""

import hashlib
import io
import os
from pathlib import Path
import subprocess

import pytest
from django.core.management import call_command

from backups import engine, storage
from backups.engine.errors import BACKUP_CORRUPTED, EngineError
from backups.models import BackupRecord, OffsiteCopy, RestoreRequest
from backups.services import copy_source, restores
from backups.services.restore_run import restore_run
from mcsite.errors import DomainError
from tests.backups.conftest import take_backup  # noqa: F401 (fixture)
from tests.offsite.copies import alter_copy, copy_to, drop_local_file, target, tree  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db
MiB = 2**20


class OneWay:
    """A stream that can only be read front to back, like a network body."""

    def __init__(self, data: bytes):
        self._f = io.BytesIO(data)
        self.reads = 0

    def read(self, n=-1):
        self.reads += 1
        return self._f.read(n)


# -- the engine's stream entry point ------------------------------------------------------------

def test_the_engine_extracts_a_one_way_stream_like_the_file(backup_file, tmp_path):
    data = backup_file.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    from_file = engine.extract_to_staging(backup_file, tmp_path / "a" / "server")
    stream = OneWay(data)
    from_stream = engine.extract_stream_to_staging(stream, tmp_path / "b" / "server", size=len(data), sha256=sha)
    assert stream.reads > 1 and from_stream.manifest_checked
    assert tree(Path(from_stream.staging_dir)) == tree(Path(from_file.staging_dir))
    assert from_stream.file_count == from_file.file_count > 0


@pytest.mark.parametrize("damage", ["sha256", "short", "long"])
def test_the_engine_refuses_streamed_bytes_that_are_not_the_backup(backup_file, tmp_path, damage):
    data = backup_file.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    size = len(data)
    if damage == "sha256":
        sha = "0" * 64  # the bytes are a fine archive, but not the backup the record describes
    elif damage == "short":
        size += 1
    else:
        data += b"\0" * 512  # zeros after the end: a readable archive, but more bytes than the backup had
    parent = tmp_path / "servers-here"
    parent.mkdir()
    with pytest.raises(EngineError) as caught:
        engine.extract_stream_to_staging(OneWay(data), parent / "server", size=size, sha256=sha)
    assert caught.value.code == BACKUP_CORRUPTED
    assert ("SHA-256" if damage == "sha256" else "bytes, expected") in caught.value.message
    assert list(parent.iterdir()) == [], "the staging folder is removed"


# -- restore through the services --------------------------------------------------------------

def _restore(server, record, **kwargs):
    restore = restores.restore_request(server=server, backup_filename=record.filename, actor=server.owner,
                                       enqueue=False, **kwargs)
    restore_run(restore_id=restore.pk)
    restore.refresh_from_db()
    return restore


def test_a_backup_whose_local_file_is_gone_restores_from_its_copy(alice, make_server, take_backup, target):  # noqa: F811
    server = make_server(alice)
    before = tree(server.path)
    record = take_backup(server)
    copy = copy_to(record, target)
    drop_local_file(record)
    (server.path / "world" / "level.dat").write_bytes(b"griefed")
    (server.path / "world" / "new-junk.txt").write_text("x")
    os.remove(next((server.path / "world" / "region").glob("*.mca")))
    changed = tree(server.path)

    preview = restores.restore_preview(server=server, backup_filename=record.filename)
    assert preview["source"] == {"kind": "copy", "target": target.name, "target_kind": target.kind,
                                 "remote_name": copy.remote_name}
    assert any(f"on target {target.name}" in w for w in preview["warnings"])
    assert preview["contents"]["file_count"] == record.file_count and preview["contents"]["world_name"] == "world"

    restore = _restore(server, record)
    assert restore.status == "succeeded", (restore.error_code, restore.error_message)
    assert tree(server.path) == before
    assert any(s.get("from_target") == target.name for s in restore.steps)
    assert restore.safety_backup.trigger == "safety" and storage.file_present(restore.safety_backup)
    # Streamed, not downloaded: the backup root holds the safety backup and nothing of the archive.
    files = [p for p in storage.backup_root().rglob("*") if p.is_file()]
    assert files == [storage.absolute_path(restore.safety_backup.storage_path)]
    assert not storage.file_present(record)
    assert not list(server.path.parent.glob(".*restore*")) and not list(server.path.parent.glob(".*pre-restore*"))

    rollback = restores.restore_rollback(restore=restore, actor=alice, enqueue=False)
    restore_run(restore_id=rollback.pk)
    rollback.refresh_from_db()
    assert rollback.status == "succeeded", rollback.error_message
    assert tree(server.path) == changed


def test_an_altered_copy_fails_the_restore_and_leaves_the_folder(alice, make_server, take_backup, target, request):  # noqa: F811
    server = make_server(alice)
    record = take_backup(server)
    copy = copy_to(record, target)
    drop_local_file(record)
    (server.path / "world" / "after-the-backup.txt").write_text("keep me")
    before = tree(server.path)
    restore = restores.restore_request(server=server, backup_filename=record.filename, actor=alice, enqueue=False)
    alter_copy(request, target, copy.remote_name)  # damaged on the target after the restore was confirmed

    restore_run(restore_id=restore.pk)
    restore.refresh_from_db()
    assert (restore.status, restore.error_code) == ("failed", "BACKUP_CORRUPTED"), restore.error_message
    assert "Nothing in the server folder had been changed" in restore.error_message
    assert tree(server.path) == before
    assert sorted(p.name for p in server.path.parent.iterdir()) == [server.path.name]
    copy.refresh_from_db()
    assert (copy.status, copy.error_code) == ("failed", "CHECKSUM_MISMATCH")
    # With no verified copy left and no local file, the backup is no longer offered for a restore.
    with pytest.raises(DomainError) as caught:
        restores.restore_preview(server=server, backup_filename=record.filename)
    assert caught.value.code.value == "BACKUP_NOT_FOUND"


def test_a_copy_gone_from_its_target_is_refused_before_anything_is_stopped(alice, make_server, take_backup, tmp_path,
                                                                           request):  # noqa: F811
    from tests.offsite.copies import target_row

    server = make_server(alice)
    record = take_backup(server)
    row = target_row(request, "local", tmp_path)
    copy = copy_to(record, row)
    drop_local_file(record)
    (tmp_path / "offsite-folder" / copy.remote_name).unlink()
    with pytest.raises(DomainError) as caught:
        restores.restore_request(server=server, backup_filename=record.filename, actor=alice, enqueue=False)
    assert caught.value.code.value == "BACKUP_NOT_FOUND" and row.name in caught.value.message
    assert not RestoreRequest.objects.exists()


def test_without_local_file_or_verified_copy_there_is_nothing_to_restore(alice, make_server, take_backup, tmp_path,
                                                                         request):  # noqa: F811
    from tests.offsite.copies import target_row

    server = make_server(alice)
    record = take_backup(server)
    copy = copy_to(record, target_row(request, "local", tmp_path))
    OffsiteCopy.objects.filter(pk=copy.pk).update(status="copied")  # not verified: never trusted for a restore
    drop_local_file(record)
    with pytest.raises(DomainError) as caught:
        restores.restore_preview(server=server, backup_filename=record.filename)
    assert caught.value.code.value == "BACKUP_NOT_FOUND"


def test_the_restore_command_restores_from_a_copy(alice, make_server, take_backup, tmp_path, request, capsys):  # noqa: F811
    from tests.offsite.copies import target_row

    server = make_server(alice)
    before = tree(server.path)
    record = take_backup(server)
    copy_to(record, target_row(request, "sftp", tmp_path))
    drop_local_file(record)
    (server.path / "world" / "level.dat").write_bytes(b"griefed")

    call_command("restore", str(server.pk), record.filename, "--yes", "--no-progress")
    out = capsys.readouterr().out
    assert "it will be read from its verified copy on target offsite-sftp" in out
    assert f"Restored {server.name} from {record.filename}" in out
    assert tree(server.path) == before


@pytest.fixture
def small_backup_disk(settings):
    """A small tmpfs as the backup root (as tests/backups/test_disk_full.py)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root")
    root = settings.MCSITE_BACKUP_ROOT
    mounted = []

    def mount(mib: int):
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mib}m", "tmpfs", str(root)],
                              capture_output=True, text=True)
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(root)
        return root

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_full_disk_refuses_a_restore_from_a_copy_before_anything_moves(alice, make_server, take_backup, tmp_path,
                                                                        request, small_backup_disk, monkeypatch):  # noqa: F811
    from tests.offsite.copies import target_row

    server = make_server(alice)
    root = small_backup_disk(200)
    record = take_backup(server)
    copy = copy_to(record, target_row(request, "local", tmp_path))
    drop_local_file(record)
    (server.path / "world" / "after-the-backup.txt").write_text("keep me")
    before = tree(server.path)
    queued = restores.restore_request(server=server, backup_filename=record.filename, actor=alice, enqueue=False)
    free = os.statvfs(root).f_bavail * os.statvfs(root).f_frsize
    with open(root / "filler.bin", "wb") as fh:  # the disk fills before the worker starts
        fh.write(b"\0" * max(0, free - 40 * MiB))
    opened = []  # every read of the copy goes through opened_copy: counted, not changed
    original = copy_source.opened_copy
    monkeypatch.setattr(copy_source, "opened_copy", lambda *a, **k: opened.append(a) or original(*a, **k))
    restore = restore_run(restore_id=queued.pk)
    assert (restore.status, restore.error_code) == ("failed", "INSUFFICIENT_DISK_SPACE"), restore.error_message
    assert "Nothing in the server folder had been changed" in restore.error_message
    assert not opened, "nothing is read from the target before the space check"
    assert not BackupRecord.objects.filter(trigger="safety").exists()
    assert tree(server.path) == before
    assert sorted(p.name for p in server.path.parent.iterdir()) == [server.path.name]
    copy.refresh_from_db()
    assert copy.status == "verified"


def test_the_restore_page_says_which_target_it_reads_from(alice, client, make_server, take_backup, tmp_path,  # noqa: F811
                                                          request):
    from django.urls import reverse

    from tests.offsite.copies import target_row

    server = make_server(alice)
    record = take_backup(server)
    copy_to(record, target_row(request, "local", tmp_path))
    drop_local_file(record)
    client.force_login(alice)
    page = client.get(reverse("restore", args=[server.pk]) + f"?backup={record.filename}")
    assert page.status_code == 200
    assert "it will be read from its verified copy on target offsite-local" in page.content.decode()
