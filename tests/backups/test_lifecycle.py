"""The run lifecycle (backups/services/lifecycle.py) and the reaper's edges:
one closed error mapping, no import circle, partial files of live runs kept,
recovery sent to the server's node, pre-checks that count what is archived."""

import ast
import datetime as dt
import os
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from backups import storage
from backups.engine import errors as engine_errors
from backups.engine.errors import EngineError
from backups.models import BackupRecord, RestoreRequest
from backups.services import lifecycle, restores
from backups.services.maintenance import reap_stale_runs, remove_orphaned_partials
from backups.services.prechecks import backup_precheck, folder_size
from backups.services.restore_run import restore_recover
from backups.services.runs import backup_run, backup_trigger
from mcsite.errors import DomainError, ErrorCode
from servers.models import Server

pytestmark = pytest.mark.django_db
SERVICES = Path(settings.BASE_DIR) / "backups" / "services"


@pytest.mark.parametrize("code", engine_errors.ALL_CODES)
def test_every_engine_code_has_an_api_error_code(code):
    assert code in lifecycle.ENGINE_CODES
    mapped, message = lifecycle.classify(EngineError(code, "what went wrong", path="/srv/secret/world"))
    assert isinstance(mapped, ErrorCode) and "what went wrong" in message and "/srv/secret" not in message
    inside = Path(settings.MCSITE_SERVERS_ROOT) / "survival" / "world" / "level.dat"
    assert lifecycle.classify(EngineError(code, "x", path=str(inside)))[1].endswith("(survival/world/level.dat)")


def test_unknown_failures_are_internal_errors_and_os_errors_have_their_own_codes():
    assert lifecycle.classify(EngineError("SOMETHING_NEW", "x"))[0] == ErrorCode.INTERNAL_ERROR
    assert lifecycle.classify(OSError(28, "No space left on device"))[0] == ErrorCode.INSUFFICIENT_DISK_SPACE
    assert lifecycle.classify(OSError(5, "Input/output error"))[0] == ErrorCode.IO_ERROR
    assert lifecycle.classify(KeyError("x"))[0] == ErrorCode.INTERNAL_ERROR
    assert lifecycle.classify(DomainError(ErrorCode.BACKUP_FAILED), restore=True)[0] == ErrorCode.RESTORE_FAILED


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(module, at function level) for every import in a file."""
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        nested = node.col_offset > 0
        found += [(name, nested) for name in names]
    return found


def test_no_service_imports_the_tasks_and_services_import_each_other_at_module_level_only():
    for path in SERVICES.glob("*.py"):
        for module, nested in _imports(path):
            assert not module.startswith("backups.tasks"), f"{path.name} imports {module}"
            assert not (nested and module.startswith("backups.services")), \
                f"{path.name} imports {module} inside a function (an import circle held together)"


def test_folder_size_and_the_disk_precheck_leave_out_what_is_excluded(alice, make_server):
    server = make_server(alice, world=False)
    (server.path / "logs").mkdir()
    (server.path / "logs" / "huge.log").write_bytes(b"x" * 3_000_000)
    archived = sum(p.stat().st_size for p in server.path.rglob("*") if p.is_file() and "logs" not in p.parts)
    assert folder_size(server.path, ["logs/"]) == archived
    assert backup_precheck(server=server) == archived  # the default patterns exclude logs/


def _running_backup(server, *, filename: str, quiet_for: dt.timedelta) -> BackupRecord:
    long_ago = timezone.now() - quiet_for
    return BackupRecord.objects.create(
        server=server, owner=server.owner, server_name=server.name, status="running", phase="archiving",
        started_at=long_ago, heartbeat_at=timezone.now(), filename=filename,
        storage_path=f"server-{server.pk}/{filename}")


def test_the_partial_file_of_a_live_backup_survives_the_sweep_however_long_its_scan_takes(alice, make_server):
    """The partial file is created before the folder scan; a scan of many
    files can leave it untouched for minutes while the run is alive."""
    server = make_server(alice, world=False)
    live = _running_backup(server, filename="server_backup_20260101_000000.tar.gz",
                           quiet_for=dt.timedelta(minutes=30))
    folder = storage.server_backup_dir(server.pk)
    live_partial = folder / f".partial-{live.filename}-abc123"
    orphan = folder / ".partial-server_backup_20250101_000000.tar.gz-def456"
    for path in (live_partial, orphan):
        path.write_bytes(b"half")
        old = (timezone.now() - dt.timedelta(hours=1)).timestamp()
        os.utime(path, (old, old))

    reap_stale_runs(now=timezone.now() + lifecycle.stale_cutoff() / 2)  # the run's heartbeat is fresh
    assert live_partial.exists() and not orphan.exists()
    live.refresh_from_db()
    assert live.status == "running"
    assert remove_orphaned_partials(older_than=timezone.now()) == 0


def _stale_restore(server, backup, steps) -> RestoreRequest:
    long_ago = timezone.now() - dt.timedelta(minutes=10)
    return RestoreRequest.objects.create(
        server=server, backup=backup, backup_filename=backup.filename, status="running", phase="swapped",
        started_at=long_ago, heartbeat_at=long_ago, server_was_running=False, steps=steps)


def test_the_reaper_sends_a_dead_restores_recovery_to_the_servers_node(alice, make_server, take_backup,
                                                                      monkeypatch):
    server = make_server(alice)
    record = take_backup(server)
    Server.objects.filter(pk=server.pk).update(node="game-host-b")
    server.refresh_from_db()
    # What a worker killed between the two renames leaves: the folder moved aside.
    aside = server.path.with_name(f".{server.path.name}.pre-restore-0badcafe")
    staging = server.path.with_name(f".{server.path.name}.restore-1234abcd")
    staging.mkdir()
    os.rename(server.path, aside)
    restore = _stale_restore(server, record, [
        {"step": "staging", "folder": staging.name},
        {"step": "rename", "source": server.path.name, "destination": aside.name},
        {"step": "rename", "source": staging.name, "destination": server.path.name},
    ])
    sent = []
    monkeypatch.setattr(lifecycle, "send_task", lambda name, *, kwargs, queue: sent.append((name, kwargs, queue)))

    reap_stale_runs()
    assert ("recover_restore", {"restore_id": restore.pk}, "game-host-b") in sent
    assert aside.exists() and not server.path.exists(), "the reaper's host must not touch another node's folder"
    restore.refresh_from_db()
    assert (restore.status, restore.phase) == ("running", "recovery_sent")

    assert restore_recover(restore_id=restore.pk)  # what the task does on game-host-b
    restore.refresh_from_db()
    assert (restore.status, restore.error_code) == ("failed", "WORKER_LOST")
    assert restore.error_message.endswith("the previous files were put back")
    assert (server.path / "world" / "level.dat").exists()
    assert sorted(p.name for p in server.path.parent.iterdir()) == [server.path.name]
    assert not restore_recover(restore_id=restore.pk)  # once only


def test_a_restore_that_failed_before_moving_anything_does_not_claim_to_have_put_files_back(
        alice, make_server, take_backup, monkeypatch):
    server = make_server(alice)
    record = take_backup(server)

    def broken(*args, **kwargs):
        raise EngineError(engine_errors.IO_ERROR, "Input/output error")

    monkeypatch.setattr("backups.services.restore_run.engine.extract_to_staging", broken)
    restore = restores.restore_request(server=server, backup_filename=record.filename, actor=alice, enqueue=False)
    from backups.services.restore_run import restore_run

    restore = restore_run(restore_id=restore.pk)
    assert (restore.status, restore.error_code) == ("failed", "IO_ERROR")
    assert "put back" not in restore.error_message
    assert restore.error_message.endswith("Nothing in the server folder had been changed.")


def test_the_safety_backup_goes_through_the_backup_prechecks(alice, make_server, take_backup, monkeypatch):
    server = make_server(alice)
    record = take_backup(server)
    restore = restores.restore_request(server=server, backup_filename=record.filename, actor=alice, enqueue=False)
    calls = []
    real = backup_precheck

    def counting(**kwargs):
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr("backups.services.runs.backup_precheck", counting)
    from backups.services.restore_run import restore_run

    assert restore_run(restore_id=restore.pk).status == "succeeded"
    assert calls and calls[0]["exclude"] == ()  # the rollback point keeps everything


def test_a_backup_finished_after_the_reaper_gave_up_on_it_keeps_no_file(alice, make_server, monkeypatch):
    """The reaper's verdict stands; the file written meanwhile must not outlive it unlisted."""
    server = make_server(alice, world=False)
    record = backup_trigger(server=server, actor=alice, enqueue=False)
    real_verify = lifecycle.end

    def reaped_meanwhile(row, **kwargs):
        if kwargs.get("status") == "succeeded":
            BackupRecord.objects.filter(pk=row.pk).update(status="failed", error_code="WORKER_LOST")
        return real_verify(row, **kwargs)

    monkeypatch.setattr(lifecycle, "end", reaped_meanwhile)
    record = backup_run(backup_id=record.pk)
    assert (record.status, record.error_code) == ("failed", "WORKER_LOST")
    assert not list(storage.server_backup_dir(server.pk).iterdir())


def test_the_reaper_removes_unrecorded_restore_leftovers_but_keeps_a_moved_aside_world(alice, make_server,
                                                                                      caplog):
    server = make_server(alice, world=False)
    parent = server.path.parent
    staging = parent / f".{server.path.name}.restore-a1b2c3d4"
    unchecked = parent / f".{server.path.name}.failed-restore-0f0f0f0f"
    old_world = parent / f".{server.path.name}.pre-restore-12345678"
    others = parent / ".someone-else.restore-99999999"  # not a folder of this server's
    for folder in (staging, unchecked, old_world, others):
        folder.mkdir()
        (folder / "level.dat").write_bytes(b"x")
        old = (timezone.now() - dt.timedelta(hours=1)).timestamp()
        os.utime(folder, (old, old))

    reap_stale_runs()
    assert not staging.exists() and not unchecked.exists()
    assert old_world.exists() and others.exists()
    assert "restore_leftover_kept" in caplog.text


def test_a_backup_whose_files_changed_while_read_succeeds_and_says_which(alice, make_server, monkeypatch):
    """The warnings used to be joined as strings while the engine reports
    dicts: any backup with a changed, vanished or skipped file crashed."""
    from backups import engine

    server = make_server(alice, world=False)
    real_create = engine.create_archive

    def create(*args, **kwargs):
        result = real_create(*args, **kwargs)
        result.changed_files.append({"path": "world/region/r.0.0.mca", "reason": "file changed while being read"})
        result.skipped.append({"path": "server.sock", "reason": "socket not archived"})
        return result

    monkeypatch.setattr(engine, "create_archive", create)
    record = backup_run(backup_id=backup_trigger(server=server, actor=alice, enqueue=False).pk)
    assert record.status == "succeeded", record.error_message
    assert record.warnings == [
        "1 file(s) changed while being read: world/region/r.0.0.mca (file changed while being read)",
        "not archived: server.sock (socket not archived)",
    ]


def test_a_restore_failing_after_it_started_the_server_puts_the_old_world_back_under_a_stopped_server(
        alice, fake_mc, take_backup, monkeypatch):
    import psutil

    from backups.services import restore_run as module
    from servers import control

    server = fake_mc(alice, "late", started=True, flags=("--read-only-world",))
    record = take_backup(server)
    (server.path / "world" / "after.txt").write_text("kept")
    real_step = module._Run.step

    def step(self, name, **info):
        if name == "committed":
            raise RuntimeError("the database went away")
        return real_step(self, name, **info)

    monkeypatch.setattr(module._Run, "step", step)
    restore = restores.restore_request(server=server, backup_filename=record.filename, actor=alice, enqueue=False)
    restore = module.restore_run(restore_id=restore.pk)
    assert restore.status == "failed" and restore.error_message.endswith("The previous files were put back.")
    assert (server.path / "world" / "after.txt").read_text() == "kept"
    assert sorted(p.name for p in server.path.parent.iterdir()) == [server.path.name]
    server.refresh_from_db()
    status = control.status(server.process_spec())
    assert status.running
    assert psutil.Process(status.pid).cwd() == str(server.path), "the server must run on the folder in place"


@pytest.mark.django_db(transaction=True)
def test_a_slow_recovery_keeps_beating_so_the_next_reaper_tick_cannot_start_a_second_one(
        alice, make_server, take_backup, monkeypatch):
    """Stopping a server can take minutes; two recoveries of one restore
    could move the same folders at once and lose the old world."""
    import time

    from backups.services import restore_run as module

    server = make_server(alice)
    record = take_backup(server)
    restore = _stale_restore(server, record, [])
    monkeypatch.setattr(lifecycle, "HEARTBEAT_SECONDS", 0.1)  # stale after 0.8 s
    second = []

    def slow_repair(*args, **kwargs):
        if not second:  # the first recovery, mid-way: the reaper's next tick comes
            time.sleep(1.5)
            second.append(None)
            second[0] = restore_recover(restore_id=restore.pk,
                                        stale_before=timezone.now() - lifecycle.stale_cutoff())
        return module.UNTOUCHED

    monkeypatch.setattr(module, "repair", slow_repair)
    assert restore_recover(restore_id=restore.pk, stale_before=timezone.now())
    assert second == [False]


def test_a_restore_into_a_missing_folder_that_fails_its_check_removes_what_it_put_there(
        alice, make_server, take_backup, monkeypatch):
    import shutil

    from backups.services import restore_run as module

    server = make_server(alice)
    record = take_backup(server)
    shutil.rmtree(server.path)

    def broken_check(target, result):
        raise RuntimeError("injected failure after the swap")

    monkeypatch.setattr(module, "check_restored_folder", broken_check)
    restore = restores.restore_request(server=server, backup_filename=record.filename, actor=alice, enqueue=False)
    restore = module.restore_run(restore_id=restore.pk)
    assert restore.status == "failed"
    assert restore.error_message.endswith("The restored files were removed (there was no server folder before).")
    assert not server.path.exists() and not list(server.path.parent.iterdir())
