"""What happens when parts fail: a broker that refuses, a safety backup that
cannot be written, a queued restore nobody runs, an absolute path in an
error — each ends cleanly, tells the user, and never blocks the server."""

import datetime as dt

import pytest
from django.utils import timezone

from backups import storage
from backups.models import BackupRecord, RestoreRequest
from backups.services import restores
from backups.services.restore_run import restore_run
from backups.services.maintenance import QUEUED_TOO_LONG, reap_stale_runs

pytestmark = pytest.mark.django_db


@pytest.mark.django_db(transaction=True)  # real commits: on_commit runs as in a request
def test_a_refusing_broker_fails_the_trigger_clearly_and_frees_the_server(alice_api, alice, make_server, monkeypatch):
    server = make_server(alice, world=False)

    def refuse(*args, **kwargs):
        raise ConnectionRefusedError("broker down")

    monkeypatch.setattr("backups.services.lifecycle.send_task", refuse)
    response = alice_api.post(f"/api/backups/{server.pk}/trigger")
    assert response.status_code == 500 and "broker" in response.json()["error"]
    record = BackupRecord.objects.get()
    assert record.status == "failed" and record.error_code == "BACKUP_FAILED"
    monkeypatch.setattr("backups.services.lifecycle.send_task", lambda *a, **k: None)
    assert alice_api.post(f"/api/backups/{server.pk}/trigger").status_code == 202  # not blocked


def test_a_safety_backup_that_fails_leaves_no_running_record_nor_file(alice, make_server, take_backup, monkeypatch):
    server = make_server(alice)
    record = take_backup(server)
    real_create = restores.engine.create_archive

    def create_then_fail(source, dest, **kwargs):
        real_create(source, dest, **kwargs)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(restores.engine, "create_archive", create_then_fail)
    restore = restores.restore_request(server=server, backup_filename=record.filename, actor=alice, enqueue=False)
    restore_run(restore_id=restore.pk)
    restore.refresh_from_db()
    assert restore.status == "failed" and restore.error_code == "INSUFFICIENT_DISK_SPACE"
    safety = BackupRecord.objects.get(trigger="safety")
    assert safety.status == "failed" and not safety.locked
    assert not storage.file_present(safety)
    assert not BackupRecord.objects.filter(status__in=["queued", "running"]).exists()
    assert (server.path / "world" / "level.dat").exists()


def test_the_reaper_ends_a_queued_restore_nobody_runs(alice, make_server, take_backup, alice_api):
    server = make_server(alice)
    record = take_backup(server)
    restore = restores.restore_request(server=server, backup_filename=record.filename, actor=alice, enqueue=False)
    RestoreRequest.objects.filter(pk=restore.pk).update(created_at=timezone.now() - QUEUED_TOO_LONG - dt.timedelta(1))
    assert reap_stale_runs()["restores"] == 1
    restore.refresh_from_db()
    assert restore.status == "failed" and restore.error_code == "WORKER_LOST"
    assert alice_api.post(f"/api/backups/{server.pk}/trigger").status_code == 202


def test_error_messages_carry_no_filesystem_path(alice, alice_api, admin_user, make_server, settings):
    server = make_server(alice, world=False)
    server.start_command = "false"  # exits at once: the error quotes the console log
    server.save()
    response = alice_api.post(f"/api/servers/{server.pk}/start")
    assert response.status_code == 409
    body = response.content.decode()
    assert "exited at once" in body
    assert str(settings.MCSITE_SERVERS_ROOT) not in body and "/tmp" not in body


def test_the_soft_time_limit_ends_the_run_removes_the_partial_file_and_restarts_the_server(
        alice, fake_mc, monkeypatch):
    """Celery raises SoftTimeLimitExceeded inside the running task; here it is
    raised from the progress callback, mid-archive, as the signal would."""
    from celery.exceptions import SoftTimeLimitExceeded

    from backups.services import runs
    from servers import control

    server = fake_mc(alice, started=True)
    pid_before = control.status(server.process_spec()).pid
    real_create = runs.engine.create_archive

    def create_until_the_limit(source, dest, *, progress=None, **kwargs):
        def progress_then_limit(done, total):
            if done:
                raise SoftTimeLimitExceeded()
        return real_create(source, dest, progress=progress_then_limit, **kwargs)

    monkeypatch.setattr(runs.engine, "create_archive", create_until_the_limit)
    record = runs.backup_trigger(server=server, actor=alice, enqueue=False)
    runs.backup_run(backup_id=record.pk)
    record.refresh_from_db()
    assert record.status == "failed" and record.error_code == "TIMEOUT"
    assert not any(storage.server_backup_dir(server.pk).iterdir())  # no partial file left
    server.refresh_from_db()
    status = control.status(server.process_spec())
    assert status.running and status.pid != pid_before


def test_a_refused_trigger_is_audited_and_logged(alice_api, alice, make_server, settings):
    import shutil
    from pathlib import Path

    from mcsite.models import AuditEvent

    server = make_server(alice, "refused-world", world=False)
    shutil.rmtree(server.path)
    response = alice_api.post(f"/api/backups/{server.pk}/trigger")
    assert response.json()["code"] == "SERVER_DIRECTORY_NOT_FOUND"
    event = AuditEvent.objects.get(action="backup.trigger")
    assert event.outcome == "failure" and event.detail["code"] == "SERVER_DIRECTORY_NOT_FOUND"
    log = (Path(settings.MCSITE_LOG_DIR) / "app.log").read_text()
    assert any("backup_refused" in line and "server=refused-world" in line for line in log.splitlines())


def test_the_reaper_ends_a_silent_run_removes_its_file_and_starts_the_server(alice, fake_mc):
    """The same repair the integration test proves with a killed worker, here
    without PostgreSQL or Redis: a run whose heartbeat stopped."""
    from backups.services.lifecycle import stale_cutoff
    from servers import control

    server = fake_mc(alice)  # stopped, as a stop-mode backup would have left it
    partial = storage.server_backup_dir(server.pk) / "server_backup_20260101_000000.tar.gz"
    partial.write_bytes(b"half")
    long_ago = timezone.now() - stale_cutoff() - dt.timedelta(seconds=5)
    record = BackupRecord.objects.create(
        server=server, owner=alice, server_name=server.name, status="running", phase="archiving",
        filename=partial.name, storage_path=storage.relative_path(partial), started_at=long_ago,
        heartbeat_at=long_ago, server_was_running=True, server_stopped_by_backup=True)
    result = reap_stale_runs()
    record.refresh_from_db()
    assert (record.status, record.error_code) == ("failed", "WORKER_LOST")
    assert result["backups"] == 1 and result["servers_started"] == 1
    assert not partial.exists()
    server.refresh_from_db()
    assert control.status(server.process_spec()).running
