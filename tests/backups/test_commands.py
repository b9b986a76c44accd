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


def test_backup_now_says_why_verification_failed(alice, make_server):
    server = make_server(alice, "bad-world")
    (server.path / "world" / "level.dat").write_bytes(b"not an NBT file")
    out = io.StringIO()
    with pytest.raises(CommandError) as excinfo:
        call_command("backup_now", "bad-world", "--no-progress", stdout=out, stderr=io.StringIO())
    assert excinfo.value.returncode == 3
    record = BackupRecord.objects.get(server=server)
    from backups.services.lifecycle import failed_methods

    failed = failed_methods(record.verification)
    assert failed
    output = out.getvalue()
    for name in failed:
        first_error = record.verification["methods"][name]["errors"][0]
        assert f"{name}: {first_error}" in output
    assert ", ".join(failed) in str(excinfo.value)


def test_restore_keeps_what_backups_exclude_unless_told_to_replace_everything(alice, make_server, take_backup):
    server = make_server(alice)
    (server.path / "logs").mkdir()
    (server.path / "logs" / "latest.log").write_text("before the backup")
    record = take_backup(server)
    _run("restore", str(server.pk), record.filename, "--yes", "--no-progress")
    assert (server.path / "logs" / "latest.log").exists()
    output = _run("restore", str(server.pk), record.filename, "--yes", "--no-progress", "--replace-excluded")
    said = [line for line in output.splitlines() if "Excluded from backups" in line]
    assert said and "logs" in said[0] and "--replace-excluded" in said[0]  # the preview says what goes
    assert not (server.path / "logs").exists()
    assert RestoreRequest.objects.order_by("pk").last().keep_excluded is False
