"""kill -9 of whole incremental runs (issue #14): the worker's own task
function, in a process of its own, SIGKILLs itself at one step of a
snapshot (mid-read, a pack written, the index written, the snapshot written
but not yet verified) or of a prune (a pack marked, a marked pack deleted).
Then the reaper runs (its clock shifted past the stale timeout) and:

* the record says WORKER_LOST, the server runs again (a snapshot is named
  on its record before it is written, so none is left that no record knows);
* the repository's ``check`` passes;
* every earlier snapshot restores byte for byte, and the repository holds
  exactly the snapshots the records list;
* the next snapshot and the next prunes work (a dead process's lock does
  not block them for ever)."""

import datetime as dt
import itertools
import os
from pathlib import Path

import pytest
from django.utils import timezone

from backups.models import BackupRecord, BackupSchedule, SnapshotRepository
from backups.services import snapshots
from backups.services.runs import backup_trigger
from servers import control
from tests.backups.conftest import fake_mc, take_backup  # noqa: F401  (fixtures)
from tests.integration.conftest import wait_for
from tests.integration.test_crash_matrix import READ_ONLY, crash_in_task, reap_later, tree, worker_env  # noqa: F401

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def assert_repository_whole(server, tmp_path) -> None:
    row = SnapshotRepository.objects.get(server=server)
    listed = dict(BackupRecord.objects.filter(repository=row, status="succeeded").values_list("snapshot_id", "pk"))
    with snapshots.opened(row) as repo:
        report = repo.check(read_data=True)
        assert report["ok"], report
        assert set(repo.snapshots()) == set(listed), "the repository holds exactly the snapshots on record"
        for snapshot_id in listed:
            out = tmp_path / f"restored-{next(RESTORES)}"
            repo.restore(snapshot_id, out)
            assert tree(out) == WORLDS[snapshot_id], "an earlier snapshot restores byte for byte"


WORLDS: dict = {}
RESTORES = itertools.count()


def snapshot(server, take):
    world = tree(server.path)
    record = take(server)
    WORLDS[record.snapshot_id] = world
    return record


@pytest.mark.parametrize("crash_at", ["backup_mid_archive", "repo-pack-written", "repo-index-written", "backup_snapshot_named",
                                      "backup_snapshot_written"])
def test_a_snapshot_killed_at_any_step_loses_nothing(crash_at, alice, fake_mc, worker_env, take_backup, tmp_path,
                                                     monkeypatch):
    server = fake_mc(alice, "crashing", started=True, flags=READ_ONLY)
    snapshots.repository_enable(server=server, actor=alice)
    server.refresh_from_db()
    snapshot(server, take_backup)
    # new data for the killed run to write (the fake server's world is read-only: mcsite adds a file)
    (server.path / "plugins").mkdir(exist_ok=True)
    (server.path / "plugins" / "map.bin").write_bytes(os.urandom(2_000_000))
    record = backup_trigger(server=server, actor=alice, enqueue=False)

    crash_in_task(worker_env, "run_backup", crash_at, backup_id=record.pk)
    record.refresh_from_db()
    assert record.status == "running"
    assert reap_later()["backups"] == 1
    record.refresh_from_db()
    assert (record.status, record.error_code) == ("failed", "WORKER_LOST")
    status = wait_for(lambda: control.status(server.process_spec()), timeout=15, message="server status")
    assert status.running, "the server was running before and must run again"
    assert_repository_whole(server, tmp_path)

    # The next snapshot and prune work: the dead process's lock does not hold them up.
    later = snapshot(server, take_backup)
    assert later.verification_passed
    row = SnapshotRepository.objects.get(server=server)
    snapshots.repository_prune(row)
    snapshots.repository_prune(row)
    assert_repository_whole(server, tmp_path)


@pytest.mark.parametrize("crash_at", ["repo-pack-marked", "repo-index-rewritten", "repo-pack-deleted"])
def test_a_prune_killed_at_any_step_loses_nothing(crash_at, alice, fake_mc, worker_env, take_backup, tmp_path):
    server = fake_mc(alice, "pruned", started=True, flags=READ_ONLY)
    snapshots.repository_enable(server=server, actor=alice)
    BackupSchedule.objects.create(server=server, enabled=False, schedule_time=dt.time(3, 0), keep_last=1)
    server.refresh_from_db()
    (server.path / "old-map.bin").write_bytes(os.urandom(3_000_000))
    first = snapshot(server, take_backup)
    (server.path / "old-map.bin").unlink()
    BackupRecord.objects.filter(pk=first.pk).update(created_at=timezone.now() - dt.timedelta(days=40))
    second = snapshot(server, take_backup)  # retention forgets the first; its prune marks the old map's packs
    first.refresh_from_db()
    assert first.status == "deleted"
    row = SnapshotRepository.objects.get(server=server)
    if crash_at == "repo-pack-marked":
        # make the mark the dead process's step: forget and mark again from scratch
        with snapshots.opened(row) as repo:
            for name in repo.store.list("pending"):
                repo.store.delete(name)

    crash_in_task(worker_env, "prune_repositories", crash_at, fan_out=False)
    assert_repository_whole(server, tmp_path)
    snapshots.repository_prune(row)
    snapshots.repository_prune(row)
    assert_repository_whole(server, tmp_path)
    row.refresh_from_db()
    root = Path(worker_env["MCSITE_BACKUP_ROOT"]) / row.location
    packed = sum(p.stat().st_size for p in (root / "data").rglob("*") if p.is_file())
    assert packed < 3_000_000, "the old map's data is gone once the prunes finished"
    assert second.snapshot_id in WORLDS
