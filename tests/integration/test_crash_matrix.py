"""The crash matrix (issue #10): a backup or a restore runs as the worker's
task function in a process of its own, which kills itself with SIGKILL at
exactly one step (MCSITE_CRASH_AT, see backups/services/lifecycle.py). Then
the reaper runs, with its clock shifted past the stale timeout instead of
waiting for it, and every promise is checked on the real files and process:

* the server folder is byte for byte the old world, or the restored one once
  the restore had committed;
* no `.<name>.*` folder is left beside it;
* the record's status and message say what really happened;
* the server runs again, as it did before;
* every listed backup is a whole file with its recorded SHA-256, and no
  partial file is left.

The fake Minecraft server runs with --read-only-world, so the world's bytes
change only when mcsite changes them."""

import hashlib
import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from backups import engine, storage
from backups.models import BackupRecord, RestoreRequest
from backups.services import restores
from backups.services.lifecycle import stale_cutoff
from backups.services.maintenance import reap_stale_runs
from backups.services.restore_run import restore_run
from backups.services.runs import backup_trigger
from servers import control
from tests.backups.conftest import fake_mc, take_backup  # noqa: F401  (fixtures)
from tests.integration.conftest import wait_for, worker_database_url

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

READ_ONLY = ("--read-only-world",)


@pytest.fixture
def worker_env(settings, tmp_path):
    settings.MCSITE_RUN_DIR = tmp_path / "run"
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("MCSITE_", "CELERY_", "DATABASE_URL", "CACHE_URL", "PYTEST_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="mcsite.settings_test", DATABASE_URL=worker_database_url(),
        CELERY_BROKER_URL="memory://", CACHE_URL="locmemcache://", MCSITE_SECRET_KEY=settings.SECRET_KEY,
        MCSITE_SERVERS_ROOT=str(settings.MCSITE_SERVERS_ROOT), MCSITE_BACKUP_ROOT=str(settings.MCSITE_BACKUP_ROOT),
        MCSITE_LOG_DIR=str(tmp_path / "logs"), MCSITE_RUN_DIR=str(settings.MCSITE_RUN_DIR), PYTHONUNBUFFERED="1",
    )
    return env


def crash_in_task(env: dict, task: str, crash_at: str, **kwargs) -> None:
    """Runs backups.tasks.<task>(**kwargs) in a new process that SIGKILLs itself at `crash_at`."""
    script = f"import django; django.setup(); from backups import tasks; tasks.{task}(**{kwargs!r})"
    done = subprocess.run([sys.executable, "-c", script], env={**env, "MCSITE_CRASH_AT": crash_at},
                          cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=180)
    assert done.returncode == -signal.SIGKILL, \
        f"{task} did not die at {crash_at} (exit {done.returncode}):\n{done.stderr[-4000:]}"


def reap_later() -> dict:
    return reap_stale_runs(now=timezone.now() + stale_cutoff() + timedelta(seconds=1))


def tree(folder: Path) -> dict[str, str]:
    """Every file, symlink and folder under `folder` (logs/ aside: the server writes it)."""
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if rel == "logs" or rel.startswith("logs/"):
            continue
        if path.is_symlink():
            out[rel] = "link:" + os.readlink(path)
        elif path.is_file():
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            out[rel] = "dir"
    return out


def assert_aftermath(server, *, folder: dict) -> None:
    server.refresh_from_db()
    assert tree(server.path) == folder
    siblings = sorted(p.name for p in Path(settings.MCSITE_SERVERS_ROOT).iterdir())
    assert siblings == [server.directory], f"left beside the server folder: {siblings}"
    status = wait_for(lambda: control.status(server.process_spec()), timeout=15, message="server status")
    assert status.running, "the server was running before and must run again"
    root = storage.backup_root()
    assert not list(root.rglob(".partial-*"))
    listed = set()
    for record in BackupRecord.objects.filter(status=BackupRecord.Status.SUCCEEDED):
        path = storage.absolute_path(record.storage_path)
        assert path.is_file(), f"{record.filename} is listed but missing"
        assert engine.file_digests(path)[0] == record.sha256, f"{record.filename} is not whole"
        listed.add(path)
    unlisted = {p for p in root.rglob("*") if p.is_file()} - listed
    assert not unlisted, f"files no backup lists: {unlisted}"
    assert not BackupRecord.objects.filter(status__in=["queued", "running"]).exists()
    assert not RestoreRequest.objects.filter(status__in=["queued", "running"]).exists()


@pytest.mark.parametrize("crash_at", ["backup_claimed", "backup_scanning", "backup_mid_archive", "backup_renamed"])
def test_a_backup_killed_at_any_step_loses_nothing(crash_at, alice, fake_mc, worker_env):
    server = fake_mc(alice, "crashing", started=True, flags=READ_ONLY)
    before = tree(server.path)
    record = backup_trigger(server=server, actor=alice, enqueue=False)

    crash_in_task(worker_env, "run_backup", crash_at, backup_id=record.pk)
    record.refresh_from_db()
    assert record.status == "running"  # what a killed worker leaves behind
    reaped = reap_later()

    record.refresh_from_db()
    assert reaped["backups"] == 1
    assert (record.status, record.error_code) == ("failed", "WORKER_LOST")
    assert "no file was kept" in record.error_message
    assert_aftermath(server, folder=before)


def _griefed_after_a_backup(alice, fake_mc, take_backup):
    """A running server, a backup of it (world A), then the folder changed (world B)."""
    server = fake_mc(alice, "crashing", started=True, flags=READ_ONLY)
    server.fake.wait_ready()
    record = take_backup(server)
    server.refresh_from_db()
    server.fake.wait_ready()
    world_a = tree(server.path)
    (server.path / "world" / "griefed.txt").write_text("tnt everywhere")
    (server.path / "world" / "level.dat_old").write_bytes(b"not a level any more")
    os.remove(next((server.path / "world" / "region").glob("*.mca")))
    return server, record, world_a, tree(server.path)


@pytest.mark.parametrize("crash_at, committed", [
    ("backup_mid_archive", False),  # mid-safety-backup
    ("restore_mid_extract", False),
    ("restore_between_renames", False),
    ("restore_swapped", False),  # after the second rename, before the check and the commit
    ("restore_committed", True),
])
def test_a_restore_killed_at_any_step_leaves_one_whole_world(crash_at, committed, alice, fake_mc, take_backup,
                                                             worker_env):
    server, record, world_a, world_b = _griefed_after_a_backup(alice, fake_mc, take_backup)
    restore = restores.restore_request(server=server, backup_filename=record.filename, actor=alice, enqueue=False)

    crash_in_task(worker_env, "run_restore", crash_at, restore_id=restore.pk)
    reaped = reap_later()

    restore.refresh_from_db()
    assert reaped["restores"] == 1
    if committed:
        assert (restore.status, restore.error_code) == ("succeeded", "")
        assert_aftermath(server, folder=world_a)
        # The committed restore can be rolled back, back to world B.
        rollback = restores.restore_rollback(restore=restore, actor=alice, enqueue=False)
        assert restore_run(restore_id=rollback.pk).status == "succeeded"
        assert_aftermath(server, folder=world_b)
        return
    assert (restore.status, restore.error_code) == ("failed", "WORKER_LOST")
    moved = crash_at in ("restore_between_renames", "restore_swapped")
    said = "the previous files were put back" if moved else "nothing in the server folder had been changed"
    assert said in restore.error_message
    safety = BackupRecord.objects.get(trigger="safety")
    if crash_at == "backup_mid_archive":
        assert (safety.status, safety.error_code) == ("failed", "WORKER_LOST")
    else:
        assert safety.status == "succeeded"  # the rollback point, kept safety_backup_days
    assert_aftermath(server, folder=world_b)


@pytest.mark.parametrize("crash_at, committed", [
    ("restore_mid_extract", False),
    ("restore_partial_carried", False),  # the rest of the folder linked into the staged one, nothing moved
    ("restore_between_renames", False),
    ("restore_committed", True),
])
def test_a_partial_restore_killed_at_any_step_leaves_one_whole_world(crash_at, committed, alice, fake_mc,
                                                                     take_backup, worker_env):
    """Only the nether is restored: killed before the commit the folder is
    world B whole; after it, world B with world A's nether."""
    server = fake_mc(alice, "crashing", started=True, flags=READ_ONLY)
    server.fake.wait_ready()
    record = take_backup(server)
    server.refresh_from_db()
    server.fake.wait_ready()
    nether_a = {k: v for k, v in tree(server.path).items() if k.startswith("world/DIM-1")}
    (server.path / "world" / "griefed.txt").write_text("tnt everywhere")
    for region in (server.path / "world" / "DIM-1" / "region").glob("*.mca"):
        region.write_bytes(b"griefed nether")
    world_b = tree(server.path)
    restore = restores.restore_request(server=server, backup_filename=record.filename, actor=alice, enqueue=False,
                                       paths=["world/DIM-1"])

    crash_in_task(worker_env, "run_restore", crash_at, restore_id=restore.pk)
    reaped = reap_later()

    restore.refresh_from_db()
    assert reaped["restores"] == 1
    if committed:
        assert (restore.status, restore.error_code) == ("succeeded", "")
        expected = {k: v for k, v in world_b.items() if not k.startswith("world/DIM-1")} | nether_a
        assert_aftermath(server, folder=expected)
        return
    assert (restore.status, restore.error_code) == ("failed", "WORKER_LOST")
    assert_aftermath(server, folder=world_b)
