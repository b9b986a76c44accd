"""Skipping backups nobody needs (issue #12): with skip_unchanged, a
scheduled backup of a server where nothing changed since the last
successful backup and nobody is online ends "skipped" with the reason in
words and no file; a touched region file, a deleted file, a player online
or no earlier backup means a real backup. Skips count neither way in the
success rate and retention never sees them."""

import datetime as dt
import os
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from backups.engine.changes import first_change
from backups.models import BackupRecord
from backups.selectors import backup_metrics
from backups.services import schedules
from backups.services.retention import retention_apply
from backups.services.scheduled import backup_scheduled_run
from backups.services.skipping import TIME_SLACK

pytestmark = pytest.mark.django_db


def _schedule(server, *, skip_unchanged=True):
    return schedules.backup_schedule_create(
        server=server, data={"schedule_type": "hourly", "schedule_time": dt.time(0, 0), "interval_hours": 1,
                             "skip_unchanged": skip_unchanged}, actor=server.owner)


def _settle():
    """Files written just now count as changed for a backup started within
    the same second (file systems with whole-second times): let it pass."""
    time.sleep(TIME_SLACK.total_seconds() + 0.1)


def _backup_files(server) -> list[str]:
    folder = Path(django_settings.MCSITE_BACKUP_ROOT) / f"server-{server.pk}"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_an_unchanged_stopped_server_is_skipped_with_the_reason_and_no_file(
        alice, alice_api, client, make_server, take_backup):
    server = make_server(alice)
    schedule = _schedule(server)
    _settle()
    baseline = take_backup(server)
    files = _backup_files(server)
    # What backups leave out (logs/) may change: it is not in a backup.
    (server.path / "logs").mkdir()
    (server.path / "logs" / "latest.log").write_text("[Server thread/INFO]: Done\n")

    first = backup_scheduled_run(schedule_id=schedule.pk)
    second = backup_scheduled_run(schedule_id=schedule.pk)
    for record in (first, second):
        record.refresh_from_db()
        assert (record.status, record.trigger, record.filename, record.storage_path) == ("skipped", "scheduled", "", "")
        when = baseline.started_at.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M")  # test zone: UTC
        assert record.skip_reason == (f"Nothing changed since the backup of {when} and the server was stopped "
                                      "(no player online)")
    assert _backup_files(server) == files
    log = (Path(django_settings.MCSITE_LOG_DIR) / "app.log").read_text()
    assert f"backup_skipped server_id={server.pk}" in log

    # Neither a success nor a failure; retention has nothing to do with them.
    metrics = backup_metrics(records=BackupRecord.objects.filter(server=server))
    assert (metrics["backups_24h"], metrics["success_rate_24h"]) == (1, 100.0)
    retention_apply(server=server)
    assert BackupRecord.objects.filter(server=server, status="skipped").count() == 2

    history = alice_api.get(f"/api/backups/{server.pk}/history").json()["data"]
    assert [(row["status"], row["skip_reason"]) for row in history[:2]] == [("skipped", second.skip_reason)] * 2
    client.force_login(alice)
    page = client.get(f"/backup/{server.pk}").content.decode()
    assert "Skipped" in page and second.skip_reason in page


def test_a_touched_region_file_is_backed_up(alice, make_server, take_backup):
    server = make_server(alice)
    schedule = _schedule(server)
    _settle()
    take_backup(server)
    os.utime(server.path / "world" / "region" / "r.1.3.mca")  # written, same size
    record = backup_scheduled_run(schedule_id=schedule.pk)
    assert (record.status, record.skip_reason) == ("succeeded", "")


def test_a_deleted_file_is_backed_up(alice, make_server, take_backup):
    server = make_server(alice)
    schedule = _schedule(server)
    _settle()
    take_backup(server)
    (server.path / "world" / "level.dat_old").unlink()
    assert backup_scheduled_run(schedule_id=schedule.pk).status == "succeeded"


def test_without_a_previous_successful_backup_it_never_skips(alice, make_server):
    server = make_server(alice)
    schedule = _schedule(server)
    _settle()
    assert backup_scheduled_run(schedule_id=schedule.pk).status == "succeeded"


def test_a_schedule_without_skip_unchanged_backs_up_anyway(alice, make_server, take_backup):
    server = make_server(alice)
    schedule = _schedule(server, skip_unchanged=False)
    _settle()
    take_backup(server)
    assert backup_scheduled_run(schedule_id=schedule.pk).status == "succeeded"


def test_a_player_online_means_a_backup(alice, fake_mc, take_backup):
    # A running server that writes nothing (live backups: save-off/flush/save-on).
    server = fake_mc(alice, started=True, backup_mode="live", flags=("--players", "alice", "--read-only-world"))
    schedule = _schedule(server)
    _settle()
    take_backup(server)
    record = backup_scheduled_run(schedule_id=schedule.pk)
    assert (record.status, record.skip_reason) == ("succeeded", "")

    with server.fake.rcon() as rcon:
        rcon.command("fake-players ")  # everyone left
    record = backup_scheduled_run(schedule_id=schedule.pk)
    assert record.status == "skipped"
    assert record.skip_reason.endswith("and no player was online")


def test_the_change_walk_reads_no_file_and_stops_at_the_first_change(tmp_path, monkeypatch):
    root = tmp_path / "folder"
    for name in ("a", "b", "c"):
        (root / name).mkdir(parents=True)
        (root / name / "file.dat").write_bytes(b"x" * 10)
    (root / "skip.tmp").write_bytes(b"excluded")
    since = time.time() + 5  # every file is older
    assert first_change(root, ["*.tmp"], since=since, file_count=3) is None
    assert "files" in first_change(root, (), since=since, file_count=3)  # skip.tmp is a 4th file then

    since = time.time()
    time.sleep(0.01)
    (root / "a" / "file.dat").write_bytes(b"y" * 10)
    scanned = []
    real_scandir = os.scandir

    def counting_scandir(path):
        scanned.append(os.path.relpath(path, root))
        return real_scandir(path)

    def no_open(*args, **kwargs):
        raise AssertionError("the change walk opened a file")

    monkeypatch.setattr("backups.engine.changes.os.scandir", counting_scandir)
    monkeypatch.setattr("backups.engine.changes.os.open", no_open, raising=False)
    monkeypatch.setattr("builtins.open", no_open)
    assert first_change(root, ["*.tmp"], since=since, file_count=3) == "a/file.dat (file) was modified"
    assert scanned == [".", "a"]  # b and c were never looked at
