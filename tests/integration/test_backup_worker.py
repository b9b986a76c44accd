"""Backups through a real Celery worker (issue #5): one run per server under
concurrent triggers, a worker killed mid-backup, and the stop and live
consistency modes against a running fake Minecraft server."""

import os
import re
import signal
import threading
import time
from datetime import timedelta

from django.db import connections
from django.utils import timezone
from tests.conftest import issue_token
from rest_framework.test import APIClient

from backups import storage
from backups.models import AlertIncident, BackupRecord
from backups.services.maintenance import reap_stale_runs
from backups.services.lifecycle import stale_cutoff
from servers import control
from tests.integration.conftest import INTEGRATION, add_bulk, wait_finished, wait_for

pytestmark = INTEGRATION


def trigger(api, server) -> int:
    response = api.post(f"/api/backups/{server.pk}/trigger")
    assert response.status_code == 202, response.json()
    return response.json()["data"]["id"]


def status_of(server):
    server.refresh_from_db()
    return control.status(server.process_spec())


def world_snapshot(folder) -> dict:
    return {path: path.stat().st_mtime_ns for path in folder.rglob("*") if path.is_file()}


def test_twenty_concurrent_triggers_queue_one_backup_and_run_it_once(celery_site, alice, make_server):
    server = make_server(alice)
    token = issue_token(alice)
    start = threading.Barrier(20)
    results = []

    def post():
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        try:
            start.wait(timeout=30)
            response = client.post(f"/api/backups/{server.pk}/trigger")
            results.append((response.status_code, response.json().get("code")))
        except Exception as exc:  # noqa: BLE001 — reported by the assertion below
            results.append(("error", repr(exc)))
        finally:
            connections.close_all()  # each thread had its own connection

    threads = [threading.Thread(target=post) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(results, key=str) == sorted([(202, None)] + [(409, "BACKUP_IN_PROGRESS")] * 19, key=str)
    # The worker starts once every trigger has answered: a backup of this small
    # world takes a fraction of a second, and a trigger arriving after it
    # finished would rightly start a second one (one at a time, not one ever).
    celery_site.start_worker()
    record = BackupRecord.objects.get(server=server)
    record = wait_finished(record.pk)
    assert (record.status, record.error_code) == ("succeeded", "")
    assert record.verification_passed is True
    assert BackupRecord.objects.filter(server=server).count() == 1
    log = celery_site.log("worker")
    assert len(re.findall(r"Task backups\.tasks\.run_backup\[[^\]]+\] received", log)) == 1
    assert "backup_run_skipped" not in log


def test_worker_killed_mid_backup_ends_worker_lost_and_server_runs_again(celery_site, alice, alice_api,
                                                                          fake_mc):
    server = fake_mc(alice, started=True)  # backup_mode "stop"
    add_bulk(server.path, 160)  # about 7 s of gzip: time to kill it mid-archive
    first_pid = status_of(server).pid
    assert first_pid
    worker = celery_site.start_worker()

    backup_id = trigger(alice_api, server)
    archiving = BackupRecord.objects.filter(pk=backup_id, phase="archiving", progress_bytes__gt=0)
    wait_for(archiving.exists, timeout=60, interval=0.05, message="the backup to be archiving")
    os.killpg(worker.pid, signal.SIGKILL)  # the worker and its prefork child, mid-archive
    worker.wait(timeout=10)

    record = BackupRecord.objects.get(pk=backup_id)
    assert record.status == "running" and record.server_stopped_by_backup
    backup_dir = storage.server_backup_dir(server.pk)
    assert list(backup_dir.glob(".partial-*")), "the kill should have left a half-written file"
    assert not status_of(server).running, "the server was stopped for the backup"

    reaped = reap_stale_runs(now=timezone.now() + stale_cutoff() + timedelta(seconds=1))

    assert reaped["backups"] == 1 and reaped["servers_started"] == 1
    record.refresh_from_db()
    assert (record.status, record.error_code, record.phase) == ("failed", "WORKER_LOST", "failed")
    assert not record.server_stopped_by_backup
    assert AlertIncident.objects.filter(kind="backup_failed", subject=f"server:{server.pk}",
                                        resolved_at=None).exists(), "a lost backup is a failed backup: alert"
    assert list(backup_dir.iterdir()) == [], "neither a partial nor a final file may remain"
    available = alice_api.get(f"/api/backups/{server.pk}/available").json()["data"]
    assert available == []
    history = alice_api.get(f"/api/backups/{server.pk}/history").json()["data"]
    assert [(b["id"], b["status"]) for b in history] == [(backup_id, "failed")]
    server.fake.wait_ready()
    restarted = status_of(server)
    assert restarted.running and restarted.pid != first_pid


def test_stop_mode_backup_stops_the_server_while_archiving_and_starts_it_again(celery_site, alice, alice_api,
                                                                             fake_mc):
    server = fake_mc(alice, started=True, backup_mode="stop")
    add_bulk(server.path, 96)  # a few seconds of archiving to look at
    first_pid = status_of(server).pid
    celery_site.start_worker()

    backup_id = trigger(alice_api, server)
    seen_while_archiving = []
    while True:
        time.sleep(0.02)
        before = BackupRecord.objects.get(pk=backup_id)
        if before.status not in ("queued", "running"):
            break
        if before.phase != "archiving":
            continue
        running = control.status(server.process_spec()).running
        after = BackupRecord.objects.get(pk=backup_id)
        # Counts only when archiving was still under way after the look: the
        # final progress write (done == total) comes before the restart.
        if after.phase == "archiving" and 0 < after.progress_bytes < after.progress_total:
            seen_while_archiving.append(running)

    record = wait_finished(backup_id)
    assert (record.status, record.verification_passed) == ("succeeded", True), record.error_message
    assert seen_while_archiving and not any(seen_while_archiving), seen_while_archiving
    assert not record.server_stopped_by_backup and record.server_was_running
    restarted = status_of(server)
    assert restarted.running and restarted.pid != first_pid


def test_live_mode_backup_keeps_the_server_running_and_turns_saving_back_on(celery_site, alice, alice_api,
                                                                            fake_mc, tmp_path):
    server = fake_mc(alice, started=True, backup_mode="live")
    first_pid = status_of(server).pid
    celery_site.start_worker()

    backup_id = trigger(alice_api, server)
    record = wait_finished(backup_id)

    assert (record.status, record.verification_passed) == ("succeeded", True), record.error_message
    assert record.server_was_running and not record.server_stopped_by_backup
    assert status_of(server).pid == first_pid
    app_log = (tmp_path / "logs" / "app.log").read_text()
    assert f"backup_id={backup_id} save-off:" in app_log
    assert f"backup_id={backup_id} save-on: Automatic saving is now enabled" in app_log
    after_backup = world_snapshot(server.fake.world)
    wait_for(lambda: world_snapshot(server.fake.world) != after_backup, timeout=5,
             message="the fake to write its world again (saving on)")
    with server.fake.rcon() as rcon:
        assert rcon.command("save-on").strip() == "Saving is already turned on"


def test_a_workers_thread_count_is_unchanged_after_five_encrypted_backups(celery_site, alice, alice_api,
                                                                         make_server):
    """Each encrypted backup used to leave one writer thread alive in the
    worker process for good (workers are never recycled)."""
    import psutil

    from backups.engine import generate_key
    from backups.services import config

    config.settings_encryption_set(enabled=True, key=generate_key(), actor=alice)
    server = make_server(alice, world=False)
    worker = celery_site.start_worker()

    def pool_threads() -> int:
        """The pool child's threads once the count holds still for a second:
        a record reads "succeeded" while its task still finishes (contents,
        copies, retention) and its heartbeat thread stops, so a count taken
        at once can catch that thread on its way out. A leaked thread stays."""
        def count() -> int:
            children = psutil.Process(worker.pid).children(recursive=True)
            assert len(children) == 1, "one prefork child (concurrency 1)"
            return children[0].num_threads()

        deadline = time.monotonic() + 30
        last = count()
        while time.monotonic() < deadline:
            time.sleep(1)
            now = count()
            if now == last:
                return now
            last = now
        return last

    first = wait_finished(trigger(alice_api, server))  # the pool child has done one of each step
    assert first.status == "succeeded" and first.encrypted, first.error_message
    before = pool_threads()
    for _ in range(5):
        record = wait_finished(trigger(alice_api, server))
        assert (record.status, record.encrypted) == ("succeeded", True), record.error_message
    assert pool_threads() == before
