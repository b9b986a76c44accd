"""`manage.py rollback <server> [<restore_id>]`: undoes the server's latest
succeeded restore (or the one given) with restore's confirmation rules and
exit codes (0 rolled back, 1 failed, 2 unknown, 4 busy, 5 not confirmed)."""

import io

import pytest
from django.core.management import CommandError, call_command

from backups.models import BackupRecord, RestoreRequest

pytestmark = pytest.mark.django_db


def _run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def _refused(*args) -> tuple[int, str, str]:
    out = io.StringIO()
    with pytest.raises(CommandError) as excinfo:
        call_command(*args, stdout=out, stderr=io.StringIO())
    return excinfo.value.returncode, str(excinfo.value), out.getvalue()


@pytest.fixture
def restored(alice, make_server, take_backup):
    """A server restored from its backup; `played.txt` was only in the
    folder the restore replaced (so only the safety backup has it)."""
    server = make_server(alice, "cli-world")
    record = take_backup(server)
    (server.path / "world" / "played.txt").write_text("built a house")
    _run("restore", str(server.pk), record.filename, "--yes", "--no-progress")
    assert not (server.path / "world" / "played.txt").exists()
    return server, RestoreRequest.objects.get(server=server)


def test_rollback_brings_back_the_folder_before_the_latest_restore(restored):
    server, restore = restored
    output = _run("rollback", "cli-world", "--yes", "--no-progress")
    assert (server.path / "world" / "played.txt").read_text() == "built a house"
    restore.refresh_from_db()
    assert restore.status == RestoreRequest.Status.ROLLED_BACK
    rollback = RestoreRequest.objects.get(kind=RestoreRequest.Kind.ROLLBACK)
    assert rollback.status == "succeeded" and rollback.rollback_of == restore
    assert restore.safety_backup.filename in output  # what it brings back, said first
    assert output.index(restore.safety_backup.filename) < output.index("Rolled back")
    assert f"restore #{restore.pk}" in output
    # Nothing left to roll back: the restore is rolled back already.
    code, message, _ = _refused("rollback", "cli-world", "--yes")
    assert code == 2 and "No restore" in message


def test_rollback_of_a_given_restore_and_of_unknown_ones(restored, bob, make_server):
    server, restore = restored
    other = make_server(bob, "bobs-world")
    assert _refused("rollback", "bobs-world", str(restore.pk), "--yes")[0] == 2  # not that server's restore
    assert _refused("rollback", "bobs-world", "--yes")[0] == 2  # no restore at all
    assert _refused("rollback", "cli-world", "999999", "--yes")[0] == 2
    assert _refused("rollback", "cli-world", "not-a-number", "--yes")[0] == 2
    output = _run("rollback", "cli-world", str(restore.pk), "--yes", "--no-progress")
    assert "Rolled back" in output
    assert not RestoreRequest.objects.filter(server=other).exists()


def test_rollback_is_not_done_without_a_yes(restored, monkeypatch):
    server, restore = restored
    prompts = []

    def no_terminal(prompt):
        prompts.append(prompt)
        raise EOFError

    monkeypatch.setattr("builtins.input", no_terminal)
    code, _, output = _refused("rollback", "cli-world")
    assert code == 5 and prompts
    assert restore.safety_backup.filename in output  # told what it would bring back before asking
    monkeypatch.setattr("builtins.input", lambda prompt: "no")
    assert _refused("rollback", "cli-world")[0] == 5
    assert not RestoreRequest.objects.filter(kind=RestoreRequest.Kind.ROLLBACK).exists()
    assert not (server.path / "world" / "played.txt").exists()


def test_rollback_while_a_backup_runs_is_busy(restored, alice):
    server, _ = restored
    BackupRecord.objects.create(server=server, owner=alice, server_name=server.name, status="running")
    assert _refused("rollback", "cli-world", "--yes", "--no-progress")[0] == 4
    assert not RestoreRequest.objects.filter(kind=RestoreRequest.Kind.ROLLBACK).exists()
