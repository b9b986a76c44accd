"""One way to name a server in every command: its name in any case, its
folder (relative to the servers root) or its id; an ambiguous name lists
the candidates, an unknown one suggests close matches; both exit 2."""

import io

import pytest
from django.core.management import CommandError, call_command

from backups.models import BackupRecord
from servers.models import Server

pytestmark = pytest.mark.django_db


def _refused(*args) -> CommandError:
    with pytest.raises(CommandError) as excinfo:
        call_command(*args, stdout=io.StringIO(), stderr=io.StringIO())
    return excinfo.value


@pytest.fixture
def named(make_server_dir):
    """A server whose name and folder differ (in case or altogether)."""

    def make(owner, name: str, folder: str) -> Server:
        make_server_dir(folder)
        return Server.objects.create(owner=owner, name=name, directory=folder)

    return make


def test_backup_now_finds_a_server_by_its_name_in_another_case(alice, named):
    server = named(alice, "Survival", "survival")
    out = io.StringIO()
    call_command("backup_now", "survival", "--no-progress", stdout=out, stderr=io.StringIO())
    assert BackupRecord.objects.get(server=server).status == "succeeded"
    assert "Backup succeeded" in out.getvalue()


@pytest.mark.parametrize("given", ["Survival", "SURVIVAL", "survival", "smp-1", "smp-1/", "./smp-1", "id"])
def test_a_server_is_found_by_name_folder_or_id(alice, named, given):
    from backups.management.lookup import server_arg

    server = named(alice, "Survival", "smp-1")
    named(alice, "Creative", "creative")
    assert server_arg(str(server.pk) if given == "id" else given) == server


def test_a_server_is_found_by_its_absolute_folder(alice, named, settings):
    from backups.management.lookup import server_arg

    server = named(alice, "Survival", "smp-1")
    assert server_arg(str(settings.MCSITE_SERVERS_ROOT / "smp-1")) == server


def test_two_servers_named_alike_are_listed_with_ids_and_owners(alice, bob, named):
    mine = named(alice, "Survival", "alice-survival")
    theirs = named(bob, "survival", "bob-survival")
    error = _refused("backup_now", "survival")
    assert error.returncode == 2
    message = str(error)
    assert "Several servers" in message
    assert f"id {mine.pk}" in message and f"id {theirs.pk}" in message
    assert "alice" in message and "bob" in message
    assert not BackupRecord.objects.exists()


def test_an_unknown_server_suggests_close_matches(alice, named):
    named(alice, "Survival", "smp-1")
    error = _refused("backup_now", "survivl")
    assert error.returncode == 2
    assert "No server 'survivl'" in str(error)
    assert "Did you mean" in str(error) and "Survival" in str(error)
    error = _refused("backup_now", "smp1")
    assert error.returncode == 2 and "smp-1" in str(error)
    error = _refused("backup_now", "nothing-like-it")
    assert error.returncode == 2 and "Did you mean" not in str(error)


def test_every_command_that_takes_a_server_uses_the_same_lookup(alice, bob, named, take_backup):
    server = named(alice, "Survival", "survival")
    record = take_backup(server)
    out = io.StringIO()
    call_command("verify_backups", "--server", "SURVIVAL", "--no-progress", stdout=out, stderr=io.StringIO())
    assert "All 1 backups verified" in out.getvalue()
    out = io.StringIO()
    call_command("restore", "survival", record.filename, "--preview", stdout=out, stderr=io.StringIO())
    assert record.filename in out.getvalue()
    named(bob, "SURVIVAL", "bob-world")
    for args in (("verify_backups", "--server", "survival"), ("restore", "survival", record.filename, "--yes"),
                 ("rollback", "survival", "--yes")):
        error = _refused(*args)
        assert error.returncode == 2 and "Several servers" in str(error), args
    assert _refused("rollback", "survivl", "--yes").returncode == 2
