"""Incremental backups through the whole site (issue #14): a server switched
to incremental gets snapshots in its own repository — through the same run,
verification, restore (whole, one dimension), rollback, retention and
download as archives."""

import datetime as dt
import gzip
import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest
from django.utils import timezone

from backups.models import BackupRecord, RestoreRequest, SnapshotRepository
from backups.services import restores, retention, snapshots
from backups.services.actions import backup_verify
from backups.services.restore_run import restore_run
from mcsite.errors import DomainError, ErrorCode

pytestmark = pytest.mark.django_db


def tree(folder: Path) -> dict[str, str]:
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_file() and not path.is_symlink():
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        elif path.is_dir():
            out[rel] = "dir"
    return out


def under(snapshot: dict, prefix: str) -> dict:
    return {k: v for k, v in snapshot.items() if k == prefix or k.startswith(prefix + "/")}


def outside(snapshot: dict, prefix: str) -> dict:
    return {k: v for k, v in snapshot.items() if not (k == prefix or k.startswith(prefix + "/"))}


@pytest.fixture
def incremental(alice, make_server):
    server = make_server(alice)
    snapshots.repository_enable(server=server, actor=alice)
    server.refresh_from_db()
    return server


def restore(server, record, paths=None):
    row = restores.restore_request(server=server, backup_filename=record.filename, actor=server.owner,
                                   enqueue=False, paths=paths)
    restore_run(restore_id=row.pk)
    row.refresh_from_db()
    return row


def test_a_snapshot_is_a_verified_backup_named_and_checksummed_as_the_issue_says(incremental, take_backup, settings):
    record = take_backup(incremental)
    assert record.filename.startswith("snapshot_") and len(record.filename) == len("snapshot_20260101_120000")
    assert record.storage_path == "" and record.is_snapshot
    assert record.sha256 == record.snapshot_id and len(record.sha256) == 64
    assert record.verification_passed and record.quality_score == 100
    assert record.verification["methods"]["world_validation"]["ok"]
    assert record.world_name and record.minecraft_version == "1.14.4"
    assert record.encrypted and record.compression == "zstd"
    assert record.size_bytes > 0 and record.source_bytes > 0
    repo = SnapshotRepository.objects.get(server=incremental)
    assert repo.repo_uid and repo.stored_bytes == pytest.approx(record.size_bytes, rel=0.05)
    folder = Path(settings.MCSITE_BACKUP_ROOT) / repo.location
    assert (folder / "config").is_file() and list((folder / "snapshots").iterdir())
    # The repository opens with the sealed key alone (no database needed beyond it), and every blob is sealed:
    world_bytes = (incremental.path / "world" / "level.dat").read_bytes()
    for pack in (folder / "data").rglob("*"):
        if pack.is_file():
            assert world_bytes[:64] not in pack.read_bytes()


def test_an_unchanged_world_adds_almost_nothing_and_is_not_read_again(incremental, take_backup):
    first = take_backup(incremental)
    second = take_backup(incremental)
    assert second.files_unchanged == second.file_count == first.file_count
    assert second.size_bytes < first.source_bytes * 0.01
    assert second.verification_passed
    repo = SnapshotRepository.objects.get(server=incremental)
    assert repo.logical_bytes == first.source_bytes + second.source_bytes
    assert repo.dedup_ratio >= 1.9


def test_restore_of_last_tuesdays_snapshot_is_byte_for_byte_with_a_safety_snapshot_and_rollback(
        incremental, take_backup):
    tuesday = tree(incremental.path)
    record = take_backup(incremental)
    region = sorted((incremental.path / "world" / "region").glob("*.mca"))[0]
    region.write_bytes(region.read_bytes()[:8192] + b"griefed")
    (incremental.path / "notes.txt").write_text("after tuesday")
    played = tree(incremental.path)

    row = restore(incremental, record)
    assert row.status == "succeeded", (row.error_code, row.error_message)
    assert tree(incremental.path) == tuesday
    safety = row.safety_backup
    assert safety.is_snapshot and safety.filename.startswith("snapshot_") and safety.filename.endswith("_safety")

    back = restores.restore_rollback(restore=row, actor=incremental.owner, enqueue=False)
    restore_run(restore_id=back.pk)
    back.refresh_from_db()
    assert back.status == "succeeded", (back.error_code, back.error_message)
    assert tree(incremental.path) == played


def test_only_the_nether_comes_back_from_a_snapshot(incremental, take_backup):
    at_backup = tree(incremental.path)
    record = take_backup(incremental)
    nether = sorted((incremental.path / "world" / "DIM-1" / "region").glob("*.mca"))
    nether[0].write_bytes(b"griefed nether")
    overworld = sorted((incremental.path / "world" / "region").glob("*.mca"))[0]
    overworld.write_bytes(overworld.read_bytes()[:4096] + b"a day of building")
    before = tree(incremental.path)

    row = restore(incremental, record, paths=["world/DIM-1"])
    assert row.status == "succeeded", (row.error_code, row.error_message)
    after = tree(incremental.path)
    assert under(after, "world/DIM-1") == under(at_backup, "world/DIM-1")
    assert outside(after, "world/DIM-1") == outside(before, "world/DIM-1")


def test_a_path_the_snapshot_does_not_hold_is_refused_before_anything_runs(incremental, take_backup):
    record = take_backup(incremental)
    with pytest.raises(DomainError) as caught:
        restores.restore_request(server=incremental, backup_filename=record.filename, actor=incremental.owner,
                                 enqueue=False, paths=["world/DIM42"])
    assert caught.value.code == ErrorCode.VALIDATION_ERROR
    assert not RestoreRequest.objects.exists()


def _damage_a_pack(settings, server, *, data_only: bool = False) -> None:
    """A flipped byte in every pack (``data_only``: in every pack that holds no file's blob list)."""
    repo = SnapshotRepository.objects.get(server=server)
    packs = sorted(p for p in (Path(settings.MCSITE_BACKUP_ROOT) / repo.location / "data").rglob("*") if p.is_file())
    if data_only:
        with snapshots.opened(repo) as opened_repo:
            lists = {opened_repo.pack_of(opened_repo.list_id(f)) for sid in opened_repo.snapshots()
                     for f in opened_repo.snapshot(sid)["files"] if "list" in f}
        packs = [p for p in packs if p.name not in lists]
    for pack in packs:
        data = bytearray(pack.read_bytes())
        data[len(data) // 3] ^= 0xFF
        pack.write_bytes(bytes(data))


def test_a_damaged_pack_fails_verification_and_the_restore_leaves_the_folder_untouched(
        incremental, take_backup, settings):
    record = take_backup(incremental)
    (incremental.path / "notes.txt").write_text("current")
    before = tree(incremental.path)
    _damage_a_pack(settings, incremental, data_only=True)

    report_record = backup_verify(record=record, actor=incremental.owner)
    assert not report_record.verification_passed
    errors = report_record.verification["methods"]["archive_integrity"]["errors"]
    assert errors and any("world/" in e for e in errors)

    row = restore(incremental, record)  # the blob lists read: the data is found damaged while it is written
    assert row.status == "failed" and row.error_code == "BACKUP_CORRUPTED"
    assert tree(incremental.path) == before

    _damage_a_pack(settings, incremental)  # now the blob lists too: refused before anything is queued
    with pytest.raises(DomainError) as caught:
        restores.restore_request(server=incremental, backup_filename=record.filename, actor=incremental.owner,
                                 enqueue=False)
    assert caught.value.code == ErrorCode.BACKUP_CORRUPTED
    assert tree(incremental.path) == before


def test_a_deleted_pack_is_refused_before_the_server_is_touched(incremental, take_backup, settings):
    record = take_backup(incremental)
    repo = SnapshotRepository.objects.get(server=incremental)
    for pack in (Path(settings.MCSITE_BACKUP_ROOT) / repo.location / "data").rglob("*"):
        if pack.is_file():
            pack.unlink()
    with pytest.raises(DomainError) as caught:
        restores.restore_request(server=incremental, backup_filename=record.filename, actor=incremental.owner,
                                 enqueue=False)
    assert caught.value.code == ErrorCode.BACKUP_CORRUPTED


def test_retention_forgets_old_snapshots_prunes_their_data_and_the_rest_still_restore(
        incremental, take_backup, django_capture_on_commit_callbacks):
    schedule_retention(incremental, keep_last=1)
    (incremental.path / "old-map.bin").write_bytes(os.urandom(3_000_000))  # data only the first snapshot has
    first = take_backup(incremental)
    BackupRecord.objects.filter(pk=first.pk).update(created_at=timezone.now() - dt.timedelta(days=40))  # past 30 days
    stored_with_both = SnapshotRepository.objects.get(server=incremental).stored_bytes
    (incremental.path / "old-map.bin").unlink()
    with django_capture_on_commit_callbacks(execute=True):
        second = take_backup(incremental)
    first.refresh_from_db()
    assert first.status == "deleted"
    repo = SnapshotRepository.objects.get(server=incremental)
    with snapshots.opened(repo) as opened_repo:
        assert opened_repo.snapshots() == [second.snapshot_id]
    assert repo.pruned_at is not None
    assert repo.stored_bytes < stored_with_both - 2_900_000  # the old map's data is let go
    assert repo.logical_bytes == second.source_bytes
    world = tree(incremental.path)
    (incremental.path / "notes.txt").write_text("later")
    row = restore(incremental, second)
    assert row.status == "succeeded", (row.error_code, row.error_message)
    assert tree(incremental.path) == world


def schedule_retention(server, **rules):
    from backups.models import BackupSchedule

    BackupSchedule.objects.update_or_create(server=server, defaults={"enabled": False, "schedule_time": dt.time(3, 0),
                                                                     **rules})
    server.refresh_from_db()


def test_switching_back_to_archives_keeps_the_snapshots_restorable(incremental, take_backup):
    snapshot = take_backup(incremental)
    snapshots.repository_disable(server=incremental, actor=incremental.owner)
    incremental.refresh_from_db()
    archive = take_backup(incremental)
    assert not archive.is_snapshot and archive.filename.startswith("server_backup_") and archive.storage_path
    world = tree(incremental.path)
    (incremental.path / "notes.txt").write_text("later")
    row = restore(incremental, snapshot)
    assert row.status == "succeeded", (row.error_code, row.error_message)
    assert tree(incremental.path) == world


def test_the_download_of_a_snapshot_is_an_ordinary_tar_gz_of_the_world(incremental, take_backup, alice_api):
    record = take_backup(incremental)
    response = alice_api.get(f"/api/backups/{incremental.pk}/backups/{record.pk}/download")
    assert response.status_code == 200, response.content
    assert response["Content-Disposition"].endswith(f'{record.filename}.tar.gz"')
    data = b"".join(response.streaming_content)
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))) as tar:
        got = {m.name: hashlib.sha256(tar.extractfile(m).read()).hexdigest() for m in tar.getmembers() if m.isfile()}
    want = {k: v for k, v in tree(incremental.path).items() if v != "dir"}
    assert got == want


def test_the_repository_on_a_storage_target(alice, make_server, take_backup, tmp_path):
    from backups.services.targets import target_save

    (tmp_path / "nas").mkdir()
    target = target_save(kind="local", name="nas", settings={"path": str(tmp_path / "nas")}, actor=None)
    server = make_server(alice)
    snapshots.repository_enable(server=server, target=target, actor=alice)
    server.refresh_from_db()
    world = tree(server.path)
    record = take_backup(server)
    assert list((tmp_path / "nas").rglob("config"))
    (server.path / "notes.txt").write_text("later")
    row = restore(server, record)
    assert row.status == "succeeded", (row.error_code, row.error_message)
    assert tree(server.path) == world
    assert BackupRecord.objects.filter(server=server, copies__isnull=False).count() == 0  # no off-site copy of a snapshot


# --- the API ------------------------------------------------------------------------

def test_the_api_switches_a_server_to_incremental_and_shows_what_the_repository_saves(
        alice, make_server, alice_api, take_backup):
    server = make_server(alice)
    url = f"/api/backups/{server.pk}/format"
    body = alice_api.get(url).json()
    assert body["success"] and body["data"] == {"format": "archive", "repository": None}

    response = alice_api.put(url, {"format": "incremental"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["data"]["format"] == "incremental"
    first = take_backup(server)
    take_backup(server)
    data = alice_api.get(url).json()["data"]
    repo = data["repository"]
    assert repo["snapshots"] == 2 and repo["location"] == "backup root" and repo["target"] is None
    assert repo["stored_bytes"] > 0 and repo["world_bytes"] == 2 * first.source_bytes and repo["dedup_ratio"] >= 1.9

    listed = alice_api.get(f"/api/backups/{server.pk}/backups/{first.pk}").json()["data"]
    assert listed["format"] == "snapshot" and listed["filename"] == first.filename
    assert listed["checksum"] == f"sha256:{first.snapshot_id}"
    assert listed["snapshot"]["added_bytes"] == listed["size"] and listed["snapshot"]["world_bytes"] == first.source_bytes

    back = alice_api.put(url, {"format": "archive"}, format="json").json()["data"]
    assert back["format"] == "archive" and back["repository"]["snapshots"] == 2 and not back["repository"]["active"]


@pytest.mark.parametrize("body, code, status", [
    ({"format": "tape"}, "VALIDATION_ERROR", 400),
    ({"format": "incremental", "extra": 1}, "VALIDATION_ERROR", 400),
    ({"format": "incremental", "repository_target": "nas"}, "PERMISSION_DENIED", 403),
    ({"format": "archive", "repository_target": "nas"}, "VALIDATION_ERROR", 400),
])
def test_bad_format_requests_are_refused_and_change_nothing(alice, make_server, alice_api, body, code, status):
    server = make_server(alice)
    response = alice_api.put(f"/api/backups/{server.pk}/format", body, format="json")
    assert response.status_code == status, response.content
    assert response.json()["code"] == code and not response.json()["success"]
    assert not SnapshotRepository.objects.exists()


def test_another_users_server_format_is_not_found(alice, bob_api, make_server):
    server = make_server(alice)
    response = bob_api.put(f"/api/backups/{server.pk}/format", {"format": "incremental"}, format="json")
    assert response.status_code == 404
    assert not SnapshotRepository.objects.exists()


def test_an_admin_puts_the_repository_on_a_storage_target_and_it_stays_there_once_it_holds_snapshots(
        alice, make_server, admin_api, alice_api, take_backup, tmp_path):
    from backups.services.targets import target_save

    (tmp_path / "nas").mkdir()
    target_save(kind="local", name="nas", settings={"path": str(tmp_path / "nas")}, actor=None)
    server = make_server(alice)
    url = f"/api/backups/{server.pk}/format"
    response = admin_api.put(url, {"format": "incremental", "repository_target": "nas"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["data"]["repository"]["target"] == "nas"
    take_backup(server)
    # the owner switching off and on keeps the admin's target
    alice_api.put(url, {"format": "archive"}, format="json")
    again = alice_api.put(url, {"format": "incremental"}, format="json").json()["data"]
    assert again["repository"]["target"] == "nas" and again["repository"]["snapshots"] == 1
    moved = admin_api.put(url, {"format": "incremental", "repository_target": None}, format="json")
    assert moved.status_code == 200  # null: keep where it is
    assert SnapshotRepository.objects.get(server=server).target.name == "nas"


# --- the page -----------------------------------------------------------------------

def test_the_page_switches_to_incremental_and_shows_the_repository_and_the_snapshots(alice, make_server, client,
                                                                                      take_backup):
    server = make_server(alice)
    client.force_login(alice)
    page = client.get(f"/backup/{server.pk}")
    assert b'name="format" value="archive" checked' in page.content
    response = client.post(f"/backup/{server.pk}/format", {"format": "incremental"})
    assert response.status_code == 302
    first = take_backup(server)
    take_backup(server)
    page = client.get(f"/backup/{server.pk}").content.decode()
    assert 'name="format" value="incremental" checked' in page
    assert first.filename in page and "Download .tar.gz" in page and "snapshot" in page
    assert "Deduplication" in page and "× — saves" in page
    response = client.post(f"/backup/{server.pk}/format", {"format": "tape"}, follow=True)
    assert "format is &quot;archive&quot; or &quot;incremental&quot;" in response.content.decode()
    assert SnapshotRepository.objects.get(server=server).active


# --- keys: rotation, export, and the repository without the database -----------------

def _packs(settings, server) -> dict:
    repo = SnapshotRepository.objects.get(server=server)
    root = Path(settings.MCSITE_BACKUP_ROOT) / repo.location
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in (root / "data").rglob("*") if p.is_file()}


def test_key_rotation_rewraps_the_repository_key_and_never_touches_a_blob(incremental, take_backup, settings):
    from backups.repo.repository import LocalStore, Repository, RepositoryError

    record = take_backup(incremental)
    packs = _packs(settings, incremental)
    row = SnapshotRepository.objects.get(server=incremental)
    old_kek = row.kek
    snapshots.repository_rotate_key(row=row, actor=incremental.owner)
    row.refresh_from_db()
    assert row.kek != old_kek
    store = LocalStore(Path(settings.MCSITE_BACKUP_ROOT) / row.location)
    with pytest.raises(RepositoryError):
        Repository.open_with(store, old_kek)
    assert Repository.open_with(store, row.kek).snapshots() == [record.snapshot_id]
    assert _packs(settings, incremental) == packs  # not one blob encrypted again
    world = tree(incremental.path)
    (incremental.path / "notes.txt").write_text("later")
    assert restore(incremental, record).status == "succeeded"
    assert tree(incremental.path) == world


def test_the_keys_export_carries_every_repository_key_and_asks_for_a_new_export_after_a_change(incremental):
    from backups.services import keys

    assert keys.export_needed()
    document = keys.export_document()
    row = SnapshotRepository.objects.get(server=incremental)
    [entry] = document["repositories"]
    assert entry["location"] == row.location and entry["target"] is None
    import base64
    assert base64.b64decode(entry["key"]) == row.kek
    keys.record_export(document)
    assert not keys.export_needed()
    snapshots.repository_rotate_key(row=row)
    assert keys.export_needed()


def test_after_the_database_is_lost_import_backups_brings_back_the_snapshots_from_the_target(
        alice, make_server, take_backup, tmp_path):
    import json

    from django.core.management import call_command

    from backups.services import keys
    from backups.services.targets import target_save

    (tmp_path / "nas").mkdir()
    target = target_save(kind="local", name="nas", settings={"path": str(tmp_path / "nas")}, actor=None)
    server = make_server(alice)
    snapshots.repository_enable(server=server, target=target, actor=alice)
    tuesday = tree(server.path)
    first = take_backup(server)
    (server.path / "notes.txt").write_text("wednesday")
    second = take_backup(server)
    keys_file = tmp_path / "keys.json"
    keys_file.write_text(json.dumps(keys.export_document()))
    expected = {(first.filename, first.snapshot_id), (second.filename, second.snapshot_id)}

    BackupRecord.objects.all().delete()  # the database is lost (the server is made again with its folder)
    SnapshotRepository.objects.all().delete()

    out = io.StringIO()
    call_command("import_backups", "--target", "nas", stdout=out)
    assert "no key in the keys file opens this repository" in out.getvalue()
    assert not BackupRecord.objects.exists()
    call_command("import_backups", "--target", "nas", "--keys-file", str(keys_file), stdout=out)
    got = set(BackupRecord.objects.filter(server=server).values_list("filename", "snapshot_id"))
    assert got == expected
    call_command("import_backups", "--target", "nas", "--keys-file", str(keys_file), stdout=out)  # idempotent
    assert BackupRecord.objects.count() == 2

    old = BackupRecord.objects.get(snapshot_id=first.snapshot_id)
    assert backup_verify(record=old).verification_passed
    row = restore(server, old)
    assert row.status == "succeeded", (row.error_code, row.error_message)
    assert tree(server.path) == tuesday


def test_the_repository_reads_with_the_keys_export_alone_no_django_no_database(incremental, take_backup, settings,
                                                                               tmp_path):
    import json
    import subprocess
    import sys

    from backups.services import keys

    world = tree(incremental.path)
    record = take_backup(incremental)
    keys_file = tmp_path / "keys.json"
    keys_file.write_text(json.dumps(keys.export_document()))
    folder = Path(settings.MCSITE_BACKUP_ROOT) / SnapshotRepository.objects.get(server=incremental).location
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(Path(settings.BASE_DIR))}  # no Django settings, no database

    def run(*args):
        return subprocess.run([sys.executable, "-m", "backups.repo", *args, "--keys-file", str(keys_file)],
                              env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)

    listed = run("snapshots", str(folder))
    assert listed.returncode == 0, listed.stderr
    assert record.snapshot_id in listed.stdout and record.filename in listed.stdout
    assert run("check", str(folder), "--read-data").returncode == 0
    done = run("restore", str(folder), record.filename, str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert tree(tmp_path / "out") == world
    nether = run("restore", str(folder), record.snapshot_id[:10], str(tmp_path / "nether"), "--only", "world/DIM-1")
    assert nether.returncode == 0, nether.stderr
    assert tree(tmp_path / "nether" / "world" / "DIM-1") == {
        k.removeprefix("world/DIM-1/"): v for k, v in world.items() if k.startswith("world/DIM-1/")}
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"repositories": [{"key": "A" * 43 + "="}]}))
    refused = subprocess.run([sys.executable, "-m", "backups.repo", "snapshots", str(folder), "--keys-file", str(other)],
                             env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "no key" in refused.stderr
    _damage_a_pack(settings, incremental)
    damaged = run("check", str(folder), "--read-data")
    assert damaged.returncode == 1 and "world/" in damaged.stdout


def test_the_daily_recheck_reads_old_snapshots_again_and_alerts_when_one_went_bad(incremental, take_backup,
                                                                                   settings):
    from backups.models import AlertIncident
    from backups.services import recheck

    record = take_backup(incremental)
    BackupRecord.objects.filter(pk=record.pk).update(verified_at=timezone.now() - dt.timedelta(days=60))
    assert list(recheck.recheck_candidates()) == [BackupRecord.objects.get(pk=record.pk)]
    assert recheck.backup_recheck_by_id(backup_id=record.pk).verification_passed

    BackupRecord.objects.filter(pk=record.pk).update(rechecked_at=timezone.now() - dt.timedelta(days=60))
    _damage_a_pack(settings, incremental)
    rechecked = recheck.backup_recheck_by_id(backup_id=record.pk)
    assert rechecked.verification_passed is False
    assert AlertIncident.objects.filter(kind=recheck.ALERT_KIND, resolved_at__isnull=True).exists()


def test_the_status_counts_the_repository_as_the_servers_backup_bytes(incremental, take_backup, alice_api):
    take_backup(incremental)
    disk = alice_api.get(f"/api/backups/{incremental.pk}/status").json()["data"]["disk_usage"]
    assert disk["server_backup_bytes"] == SnapshotRepository.objects.get(server=incremental).stored_bytes > 0


# --- snapshots count wherever backups are listed or counted ----------------------------

def test_snapshots_are_listed_as_restorable_and_verified_by_the_command(incremental, take_backup, alice_api):
    from django.core.management import call_command

    record = take_backup(incremental)
    available = alice_api.get(f"/api/backups/{incremental.pk}/available").json()["data"]
    assert [b["filename"] for b in available] == [record.filename]
    out = io.StringIO()
    call_command("verify_backups", "--server", incremental.name, "--no-progress", stdout=out)
    assert f"ok   {incremental.name}/{record.filename}" in out.getvalue()


def test_the_server_pages_count_snapshots(incremental, take_backup, client, alice):
    take_backup(incremental)
    client.force_login(alice)
    page = client.get(f"/servers/{incremental.pk}/delete/").content.decode()
    assert "<strong>1</strong> stored backup " in page
    [row] = client.get("/servers/").context["rows"]
    assert row["backup_bytes"] > 0


def test_a_repository_copied_along_with_a_moved_server_is_adopted_and_one_left_behind_is_said(
        incremental, take_backup, settings):
    import shutil

    from backups.services.runs import backup_run, backup_trigger

    first = take_backup(incremental)
    row = SnapshotRepository.objects.get(server=incremental)
    SnapshotRepository.objects.filter(pk=row.pk).update(node="old-host")  # the server came from another host
    folder = Path(settings.MCSITE_BACKUP_ROOT) / row.location
    shutil.move(folder, folder.with_name("elsewhere"))  # its repository did not come along
    record = backup_trigger(server=incremental, actor=incremental.owner, enqueue=False)
    backup_run(backup_id=record.pk)
    record.refresh_from_db()
    assert record.status == "failed" and "old-host" in record.error_message and row.location in record.error_message

    shutil.move(folder.with_name("elsewhere"), folder)  # copied to the same place on this host
    second = take_backup(incremental)
    row.refresh_from_db()
    assert row.node == settings.MCSITE_NODE and second.files_unchanged == second.file_count
    assert BackupRecord.objects.get(pk=first.pk).node == settings.MCSITE_NODE


def test_choosing_incremental_again_after_a_move_starts_a_new_repository_and_keeps_the_old_listed(
        incremental, take_backup):
    first = take_backup(incremental)
    old = SnapshotRepository.objects.get(server=incremental)
    SnapshotRepository.objects.filter(pk=old.pk).update(node="old-host")
    snapshots.repository_enable(server=incremental, actor=incremental.owner)
    new = SnapshotRepository.objects.get(server=incremental)
    assert new.pk != old.pk and new.node == incremental.node and new.location != old.location
    second = take_backup(incremental)
    assert second.repository_id == new.pk and second.files_unchanged == 0  # a repository of its own
    first.refresh_from_db()
    assert first.repository_id == old.pk and first.status == "succeeded"


def test_backup_now_full_read_reads_every_file_once_and_archives_refuse_it(incremental, take_backup, alice,
                                                                           make_server):
    from django.core.management import CommandError, call_command

    take_backup(incremental)
    out = io.StringIO()
    call_command("backup_now", incremental.name, "--full-read", "--no-progress", stdout=out)
    full = BackupRecord.objects.filter(server=incremental).first()
    assert full.files_unchanged == 0 and full.size_bytes < 100_000, "every file read, nothing new stored"
    assert not SnapshotRepository.objects.get(server=incremental).full_read_next
    again = take_backup(incremental)
    assert again.files_unchanged == again.file_count  # the one after trusts the metadata again
    archive = make_server(alice, "creative")
    with pytest.raises(CommandError) as refused:
        call_command("backup_now", archive.name, "--full-read", "--no-progress", stdout=out)
    assert refused.value.returncode == 2 and "archives" in str(refused.value)


def test_a_vanished_repository_is_said_not_silently_replaced_and_incremental_again_starts_anew(
        incremental, take_backup, settings):
    import shutil

    from backups.services.runs import backup_run, backup_trigger

    first = take_backup(incremental)
    row = SnapshotRepository.objects.get(server=incremental)
    shutil.rmtree(Path(settings.MCSITE_BACKUP_ROOT) / row.location)  # a wiped disk
    record = backup_trigger(server=incremental, actor=incremental.owner, enqueue=False)
    backup_run(backup_id=record.pk)
    record.refresh_from_db()
    assert record.status == "failed" and "missing" in record.error_message and row.location in record.error_message
    assert not (Path(settings.MCSITE_BACKUP_ROOT) / row.location).exists(), "nothing was made in its place"

    snapshots.repository_enable(server=incremental, actor=incremental.owner)
    fresh = take_backup(incremental)
    assert fresh.repository_id != row.pk and fresh.files_unchanged == 0
    first.refresh_from_db()
    assert first.repository_id == row.pk


def test_the_admin_lists_repositories_and_its_actions_rotate_prune_and_ask_a_full_read(incremental, take_backup,
                                                                                        admin_user, client):
    take_backup(incremental)
    row = SnapshotRepository.objects.get(server=incremental)
    kek = row.kek
    client.force_login(admin_user)
    listing = client.get("/admin/backups/snapshotrepository/").content.decode()
    assert incremental.name in listing and "×" in listing  # the dedup ratio
    url = "/admin/backups/snapshotrepository/"
    for action in ("rotate_key", "full_read_next"):
        response = client.post(url, {"action": action, "_selected_action": [row.pk]})
        assert response.status_code == 302
    row.refresh_from_db()
    assert row.kek != kek and row.full_read_next
    assert take_backup(incremental).files_unchanged == 0  # the full read happened, with the rotated key


def test_the_admins_prune_now_is_queued_on_the_repositorys_node_not_run_in_the_request(
        incremental, take_backup, admin_user, client, monkeypatch, settings):
    from backups import tasks
    from mcsite.models import AuditEvent
    from mcsite.celery import app

    take_backup(incremental)
    row = SnapshotRepository.objects.get(server=incremental)
    sent = []
    monkeypatch.setattr(app, "send_task", lambda name, kwargs=None, queue=None, **options: sent.append(
        (name, queue, kwargs)))
    client.force_login(admin_user)
    response = client.post("/admin/backups/snapshotrepository/", {"action": "prune_now", "_selected_action": [row.pk]},
                           follow=True)
    assert f"Prune queued for {row} (on {settings.MCSITE_NODE})" in response.content.decode()
    assert sent == [("backups.tasks.prune_repository", settings.MCSITE_NODE, {"repository_id": row.pk})]
    row.refresh_from_db()
    assert row.pruned_at is None  # the web request only queued it
    assert AuditEvent.objects.filter(action="repository.prune_requested", actor=admin_user).count() == 1

    result = tasks.prune_repository(**sent[0][2])  # what the node's worker runs
    row.refresh_from_db()
    assert row.pruned_at is not None and isinstance(result, dict)
    assert take_backup(incremental).status == "succeeded"  # and the repository still takes snapshots

    # a repository on another game host's backup root goes to that host's queue
    SnapshotRepository.objects.filter(pk=row.pk).update(node="game-b")
    client.post("/admin/backups/snapshotrepository/", {"action": "prune_now", "_selected_action": [row.pk]})
    assert sent[-1] == ("backups.tasks.prune_repository", "game-b", {"repository_id": row.pk})
    # a broker that refuses is said, and nothing is recorded as requested
    monkeypatch.setattr(app, "send_task", lambda *a, **k: (_ for _ in ()).throw(ConnectionError("down")))
    response = client.post("/admin/backups/snapshotrepository/", {"action": "prune_now", "_selected_action": [row.pk]},
                           follow=True)
    assert "Could not queue the prune: the broker did not accept it (ConnectionError)" in response.content.decode()
    assert AuditEvent.objects.filter(action="repository.prune_requested").count() == 2
    # a row deleted before the worker got to it is nothing to do
    assert tasks.prune_repository(repository_id=10**9) is None
