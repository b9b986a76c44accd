"""backup_now, verify_backups and restore: what they print and exit codes
scripts can trust."""

import io
import shutil

import pytest
from django.core.management import CommandError, call_command

from backups import storage
from backups.models import BackupRecord, RestoreRequest

pytestmark = pytest.mark.django_db


def _run(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue()


def _exit_code(*args) -> int:
    with pytest.raises(CommandError) as excinfo:
        _run(*args)
    return excinfo.value.returncode


def test_backup_now_backs_up_and_verifies(alice, make_server):
    server = make_server(alice, "cli-world")
    output = _run("backup_now", "cli-world")
    record = BackupRecord.objects.get(server=server)
    assert record.status == "succeeded" and record.filename in output
    assert "quality 100 (Excellent)" in output


def test_backup_now_exit_codes(alice, make_server):
    assert _exit_code("backup_now", "no-such-server") == 2
    server = make_server(alice, "gone")
    shutil.rmtree(server.path)
    assert _exit_code("backup_now", str(server.pk)) == 1
    server.path.mkdir()
    BackupRecord.objects.create(server=server, owner=alice, server_name="gone", status="running")
    assert _exit_code("backup_now", str(server.pk)) == 4


def test_verify_backups_passes_then_fails_on_a_flipped_byte(alice, make_server, take_backup):
    server = make_server(alice)
    record = take_backup(server)
    assert "All 1 backups verified" in _run("verify_backups", "--server", str(server.pk))
    path = storage.absolute_path(record.storage_path)
    data = bytearray(path.read_bytes())
    data[-100] ^= 0x10
    path.write_bytes(bytes(data))
    assert _exit_code("verify_backups", "--server", str(server.pk)) == 1
    record.refresh_from_db()
    assert record.verification_passed is False


def test_restore_command_restores_with_yes_and_refuses_unknown_names(alice, make_server, take_backup):
    server = make_server(alice)
    record = take_backup(server)
    (server.path / "world" / "level.dat").write_bytes(b"broken")
    output = _run("restore", str(server.pk), record.filename, "--yes")
    assert "Restored" in output and "1.14.4" in output
    assert (server.path / "world" / "level.dat").read_bytes() != b"broken"
    assert RestoreRequest.objects.get().status == "succeeded"
    assert _exit_code("restore", str(server.pk), "../../etc/passwd", "--yes") == 2


def test_restore_preview_changes_nothing(alice, make_server, take_backup):
    server = make_server(alice)
    record = take_backup(server)
    output = _run("restore", str(server.pk), record.filename, "--preview")
    assert "files" in output and not RestoreRequest.objects.exists()


def test_restore_without_an_answer_is_not_confirmed(alice, make_server, take_backup, monkeypatch):
    def no_terminal(prompt):
        raise EOFError

    server = make_server(alice)
    record = take_backup(server)
    monkeypatch.setattr("builtins.input", no_terminal)
    assert _exit_code("restore", str(server.pk), record.filename) == 5
    assert not RestoreRequest.objects.exists()
