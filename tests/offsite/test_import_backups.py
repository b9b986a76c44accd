"""Disaster recovery without the database (issue #13 item 5): backups copied
to a target; then the database is flushed and the local backup root emptied,
as after losing the disk. A new install with the same target runs
`import_backups --target`, which lists every backup again from the JSON
sidecars (twice: nothing new), and a restore from the target brings the
world back byte for byte."""

import json
import shutil

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from backups import offsite_layout, storage
from backups.models import BackupRecord, OffsiteCopy, StorageTarget
from backups.offsite import open_target
from backups.services import restores
from backups.services.restore_run import restore_run
from servers.models import Server
from tests.backups.conftest import take_backup  # noqa: F401 (fixture)
from tests.conftest import _user, owners_group
from tests.offsite.copies import copy_to, target, target_row, tree  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    from io import StringIO

    out = StringIO()
    call_command("import_backups", *args, stdout=out)
    return out.getvalue()


def lose_everything(target_row_: StorageTarget) -> dict:
    """Flushes the database and empties the backup root; returns what the
    admin of the new install types in again for the target."""
    kept = {"name": target_row_.name, "kind": target_row_.kind, "settings": dict(target_row_.settings),
            "secrets": target_row_.secrets}
    call_command("flush", interactive=False, verbosity=0)
    shutil.rmtree(storage.backup_root())
    storage.backup_root()
    assert not BackupRecord.objects.exists() and not Server.objects.exists()
    return kept


def new_install(kept: dict) -> StorageTarget:
    owners_group()
    row = StorageTarget(name=kept["name"], kind=kept["kind"], settings=kept["settings"])
    row.secrets = kept["secrets"]
    row.save()
    return row


@pytest.mark.django_db(transaction=True)  # the database is really flushed, as a new install's is empty
def test_import_backups_rebuilds_the_records_and_a_restore_from_the_target_works(
        alice, make_server, take_backup, target):  # noqa: F811
    survival = make_server(alice, "survival")
    world_before = tree(survival.path)
    first = take_backup(survival)
    (survival.path / "world" / "played-on.txt").write_text("played on after the first backup")
    second = take_backup(survival)
    creative = make_server(alice, "creative")
    third = take_backup(creative)
    originals = {(r.server.directory, r.filename): (r.sha256, r.size_bytes, r.file_count, r.source_bytes, r.world_name,
                              r.minecraft_version, r.compression, r.created_at)
                 for r in (first, second, third)}
    for record in (first, second, third):
        copy_to(record, target)
    survival_folder = survival.directory

    kept = lose_everything(target)
    # The world on the new machine is broken (or gone); the server folder is where it was.
    (survival.path / "world" / "level.dat").write_bytes(b"a broken world")
    (survival.path / "world" / "played-on.txt").unlink()
    row = new_install(kept)
    owner = _user("alice")
    server = Server.objects.create(owner=owner, name="survival", directory=survival_folder)  # recreated by the admin
    # creative is not recreated: its backup comes back as one of a deleted server, owned by --owner.

    dry = run("--target", row.name, "--owner", "alice", "--dry-run")
    assert dry.count("would be imported") == 4 and not BackupRecord.objects.exists()

    out = run("--target", row.name, "--owner", "alice")
    assert "3 imported, 0 added to existing records, 0 already known, 0 skipped" in out, out
    records = {(r.server.directory if r.server else r.server_directory, r.filename): r
               for r in BackupRecord.objects.select_related("server")}
    assert set(records) == set(originals)
    for key, record in records.items():
        assert (record.sha256, record.size_bytes, record.file_count, record.source_bytes, record.world_name,
                record.minecraft_version, record.compression, record.created_at) == originals[key]
        assert record.status == "succeeded" and record.storage_path == "" and record.local_removed_at is not None
        assert f"{record.filename}: imported (backup id {record.pk})" in out
    assert records[(survival_folder, first.filename)].server == server
    assert records[(survival_folder, second.filename)].server == server
    detached = records[(creative.directory, third.filename)]
    assert (detached.server, detached.owner, detached.server_directory, detached.server_name) == (
        None, owner, creative.directory, "creative")
    assert OffsiteCopy.objects.filter(target=row, status="verified").count() == 3

    again = run("--target", row.name, "--owner", "alice")
    assert "0 imported, 0 added to existing records, 3 already known, 0 skipped" in again, again
    assert BackupRecord.objects.count() == 3 and OffsiteCopy.objects.count() == 3

    # The API lists them again as restorable, and the first one restores from the target.
    from tests.conftest import _client

    listed = _client(owner).get(f"/api/backups/{server.pk}/available").json()
    assert sorted(b["filename"] for b in listed["data"]) == sorted([first.filename, second.filename]), listed
    restore = restores.restore_request(server=server, backup_filename=first.filename, actor=owner, enqueue=False)
    restore_run(restore_id=restore.pk)
    restore.refresh_from_db()
    assert restore.status == "succeeded", (restore.error_code, restore.error_message)
    assert tree(server.path) == world_before


def test_a_local_file_still_there_is_used_and_an_existing_record_only_gains_its_copy(alice, make_server, take_backup,  # noqa: F811
                                                                                    tmp_path, request):
    server = make_server(alice)
    record = take_backup(server)
    row = target_row(request, "local", tmp_path)
    copy_to(record, row)
    OffsiteCopy.objects.all().delete()  # the record survived, its copy row did not

    out = run("--target", row.name)
    assert "1 added to existing records" in out and BackupRecord.objects.count() == 1
    assert OffsiteCopy.objects.get().backup_id == record.pk

    # A database lost but the backup root kept: the record points at the local file again.
    BackupRecord.objects.all().delete()
    out = run("--target", row.name)
    imported = BackupRecord.objects.get()
    assert "the local file is there" in out
    assert imported.storage_path == record.storage_path and imported.local_removed_at is None
    assert storage.file_present(imported)


def test_bad_sidecars_are_skipped_with_the_reason_and_change_nothing(alice, make_server, take_backup, tmp_path,  # noqa: F811
                                                                     request):
    server = make_server(alice)
    record = take_backup(server)
    row = target_row(request, "local", tmp_path)
    copy = copy_to(record, row)
    name = copy.remote_name
    folder = tmp_path / "offsite-folder"
    good = json.loads((folder / offsite_layout.sidecar_name(name)).read_text())
    OffsiteCopy.objects.all().delete()
    BackupRecord.objects.all().delete()
    with open_target(row.config()) as remote:
        remote.put_small(f"{server.directory}/garbage.tar.gz.json", b"{not json")
        remote.put_small(f"{server.directory}/orphan.tar.gz", b"no sidecar")
        # A sidecar that claims another server's folder for the archive beside it.
        moved = dict(good, server_directory="someone-else")
        shutil.copy(folder / name, folder / server.directory / "elsewhere.tar.gz")
        remote.put_small(f"{server.directory}/elsewhere.tar.gz.json", offsite_layout.sidecar_bytes(
            dict(moved, filename="elsewhere.tar.gz")))
        # A sidecar whose size does not match its archive.
        shutil.copy(folder / name, folder / server.directory / "short.tar.gz")
        remote.put_small(f"{server.directory}/short.tar.gz.json", offsite_layout.sidecar_bytes(
            dict(good, filename="short.tar.gz", size_bytes=good["size_bytes"] + 1)))

    out = run("--target", row.name)
    assert "garbage.tar.gz.json: skipped — unreadable sidecar" in out
    assert "orphan.tar.gz: skipped — no sidecar beside it" in out
    assert "elsewhere.tar.gz: skipped — the sidecar describes someone-else/elsewhere.tar.gz" in out
    assert "short.tar.gz: skipped — the archive is" in out
    assert "1 imported" in out and "4 skipped" in out
    assert list(BackupRecord.objects.values_list("filename", flat=True)) == [record.filename]


def test_unknown_target_or_owner_is_exit_code_2(db):
    with pytest.raises(CommandError) as caught:
        run("--target", "nowhere")
    assert caught.value.returncode == 2 and "No storage target 'nowhere'" in str(caught.value)
    StorageTarget.objects.create(name="somewhere", kind="local", settings={"path": "/nonexistent-mcsite"})
    with pytest.raises(CommandError) as caught:
        run("--target", "somewhere", "--owner", "nobody")
    assert caught.value.returncode == 2
    with pytest.raises(CommandError) as caught:
        run("--target", "somewhere")
    assert caught.value.returncode == 1


def test_a_kept_backup_only_on_a_target_is_listed_on_the_servers_page(alice, client, make_server, take_backup,  # noqa: F811
                                                                       tmp_path, request):
    from servers.services import server_delete

    server = make_server(alice, "creative")
    record = take_backup(server)
    copy_to(record, target_row(request, "local", tmp_path))
    server_delete(server=server, delete_backups=False, actor=alice)
    storage.absolute_path(record.storage_path).unlink()
    BackupRecord.objects.filter(pk=record.pk).update(storage_path="")
    client.force_login(alice)
    page = client.get("/servers/").content.decode()
    assert record.filename in page and f"/api/backups/detached/{record.pk}/download" in page
