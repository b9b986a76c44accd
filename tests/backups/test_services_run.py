"""A backup run through the service, on the real 1.14.4 world."""

import hashlib
import tarfile

import pytest

from backups import storage
from backups.models import BackupRecord
from backups.services.runs import backup_run, backup_trigger
from mcsite.errors import DomainError

pytestmark = pytest.mark.django_db


def _run(server, **kwargs):
    record = backup_trigger(server=server, actor=server.owner, enqueue=False, **kwargs)
    backup_run(backup_id=record.pk)
    record.refresh_from_db()
    return record


def test_a_manual_backup_is_written_verified_and_recorded(alice, make_server):
    server = make_server(alice)
    record = _run(server)
    assert record.status == "succeeded", (record.error_code, record.error_message)
    assert record.filename.startswith("server_backup_") and record.filename.endswith(".tar.gz")
    path = storage.absolute_path(record.storage_path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == record.sha256
    assert record.verification_passed is True and record.quality_score == 100
    assert record.quality_level == "Excellent"
    assert record.world_name and record.minecraft_version == "1.14.4"
    assert set(record.verification["methods"]) >= {"checksum", "archive_integrity", "world_validation"}
    with tarfile.open(path) as tar:
        names = tar.getnames()
    assert "world/level.dat" in names and "server.properties" in names


def test_a_second_trigger_while_one_is_queued_is_refused(alice, make_server):
    server = make_server(alice)
    backup_trigger(server=server, actor=alice, enqueue=False)
    with pytest.raises(DomainError) as excinfo:
        backup_trigger(server=server, actor=alice, enqueue=False)
    assert excinfo.value.code == "BACKUP_IN_PROGRESS"
    assert BackupRecord.objects.count() == 1


def test_a_missing_directory_is_refused_with_the_seed_message(alice, make_server):
    import shutil

    server = make_server(alice)
    shutil.rmtree(server.path)
    with pytest.raises(DomainError) as excinfo:
        backup_trigger(server=server, actor=alice, enqueue=False)
    assert excinfo.value.code == "SERVER_DIRECTORY_NOT_FOUND"
    assert excinfo.value.message == "Server directory not found"


def test_two_backups_in_the_same_second_get_distinct_names(alice, make_server, monkeypatch):
    from django.utils import timezone

    server = make_server(alice)
    fixed = timezone.now()
    monkeypatch.setattr("backups.services.runs.timezone.now", lambda: fixed)
    first, second = _run(server), _run(server)
    assert first.status == second.status == "succeeded"
    assert first.filename != second.filename


def test_the_gzip_level_setting_reaches_the_archive(alice, make_server, settings):
    """MCSITE_GZIP_LEVEL=1 is the fast level (ISA-L): larger on text, and still an ordinary
    gzip file that verifies; the default is gzip's own 6."""
    server = make_server(alice)
    (server.path / "plugins").mkdir(exist_ok=True)
    (server.path / "plugins" / "joins.txt").write_text("".join(
        f"[12:{i % 60:02d}:{i % 59:02d}] [Server thread/INFO]: Player{i % 97} joined the game\n"
        for i in range(40_000)))
    default = _run(server)
    settings.MCSITE_GZIP_LEVEL = 1
    fast = _run(server)
    assert default.status == fast.status == "succeeded"
    assert fast.quality_score == 100 and fast.verification_passed is True
    assert fast.size_bytes > 1.03 * default.size_bytes  # the same folder: only the level differs
    with tarfile.open(storage.absolute_path(fast.storage_path)) as tar:
        assert tar.extractfile("plugins/joins.txt").read().startswith(b"[12:00:00]")
