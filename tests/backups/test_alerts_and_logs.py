"""Alerts reach a local webhook server exactly once per incident (apprise's
json:// URL, a real HTTP POST), and logs/app.log has a line per event key
naming the server and the backup."""

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from backups.models import BackupRecord
from backups.services.maintenance import dead_man_check, disk_check
from backups.services.restore_run import restore_run
from backups.services.runs import backup_run, backup_trigger

pytestmark = pytest.mark.django_db


@pytest.fixture
def webhook(settings):
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.append(json.loads(body or b"{}"))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.MCSITE_ALERT_URLS = [f"json://127.0.0.1:{server.server_port}/hook"]
    yield received
    server.shutdown()


def _failing_run(server):
    record = backup_trigger(server=server, actor=server.owner, enqueue=False, precheck=False)
    backup_run(backup_id=record.pk)
    record.refresh_from_db()
    return record


def test_a_failing_server_alerts_once_per_incident(alice, make_server, take_backup, webhook):
    server = make_server(alice)
    folder = server.path
    shutil.move(folder, folder.with_name("moved-away"))
    for _ in range(3):
        record = _failing_run(server)
        assert record.status == "failed" and record.error_code == "SERVER_DIRECTORY_NOT_FOUND"
    assert len(webhook) == 1
    assert "survival" in webhook[0]["title"] and "SERVER_DIRECTORY_NOT_FOUND" in webhook[0]["message"]

    shutil.move(folder.with_name("moved-away"), folder)
    take_backup(server)  # resolves the incident
    shutil.move(folder, folder.with_name("moved-away"))
    _failing_run(server)
    assert len(webhook) == 2


def test_disk_and_dead_man_alerts_are_sent_once(alice, make_server, webhook):
    import datetime as dt

    from django.utils import timezone

    from backups.services import schedules

    server = make_server(alice, world=False)
    schedule = schedules.backup_schedule_create(
        server=server, data={"schedule_type": "daily", "schedule_time": dt.time(2)}, actor=alice)
    later = schedule.created_at + dt.timedelta(days=3)
    assert dead_man_check(now=later) == [server.pk]
    assert dead_man_check(now=later + dt.timedelta(hours=1)) == []
    disk_check(disk_percent=85)
    disk_check(disk_percent=86)
    titles = [m["title"] for m in webhook]
    assert sum("No successful backup" in t for t in titles) == 1
    assert sum("Backup disk" in t for t in titles) == 1
    assert timezone.now() < later


def _log_lines() -> list[str]:
    return (Path(django_settings.MCSITE_LOG_DIR) / "app.log").read_text().splitlines()


def test_app_log_has_a_line_per_event_naming_server_and_backup(alice, make_server, take_backup):
    from backups import storage
    from backups.services import restores
    from backups.services.actions import backup_verify
    from backups.services.retention import retention_apply

    server = make_server(alice, "logged-server")
    first = take_backup(server)
    second = take_backup(server)
    restore = restores.restore_request(server=server, backup_filename=second.filename, actor=alice, enqueue=False)
    restore_run(restore_id=restore.pk)
    BackupRecord.objects.filter(pk=first.pk).update(created_at=first.created_at.replace(year=2000))
    retention_apply(server=server, disk_percent=10)
    path = storage.absolute_path(second.storage_path)
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    backup_verify(record=second)
    shutil.rmtree(server.path)
    failed = _failing_run(server)
    disk_check(disk_percent=99)

    lines = _log_lines()
    for key in ("backup_started", "backup_succeeded", "backup_failed", "verification_failed", "corruption_detected",
                "restore_started", "restore_succeeded", "retention_deleted", "disk_usage_high"):
        assert any(f" {key} " in line for line in lines), key
    failed_line = next(line for line in lines if f" backup_failed server_id={server.pk}" in line
                       and f"backup_id={failed.pk}" in line)
    assert "server=logged-server" in failed_line and "SERVER_DIRECTORY_NOT_FOUND" in failed_line
    assert any(f"backup={first.filename}" in line for line in lines if " retention_deleted " in line)


def test_a_scheduled_run_that_fails_logs_schedule_execution_failure(alice, make_server):
    import datetime as dt

    from backups.services import schedules
    from backups.services.scheduled import backup_scheduled_run

    server = make_server(alice, "scheduled-server")
    schedule = schedules.backup_schedule_create(
        server=server, data={"schedule_type": "daily", "schedule_time": dt.time(2)}, actor=alice)
    shutil.rmtree(server.path)
    record = backup_scheduled_run(schedule_id=schedule.pk)
    assert record.status == "failed" and record.trigger == "scheduled"
    assert backup_scheduled_run(schedule_id=999999) is None  # a schedule that is gone never raises
    lines = [line for line in _log_lines() if " schedule_execution_failure " in line]
    assert any("server=scheduled-server" in line for line in lines)
    assert any("schedule_id=999999" in line for line in lines)
