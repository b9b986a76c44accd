"""Retention: older than retention_days goes, the newest successful backup
and locked backups always stay; at ≥ 90 % disk only the 3 newest stay.
Disk usage is injected, not faked by filling the disk."""

import datetime as dt

import pytest
from django.utils import timezone

from backups import storage
from backups.models import BackupRecord
from backups.services import schedules
from backups.services.maintenance import disk_check
from backups.services.retention import retention_apply

pytestmark = pytest.mark.django_db


@pytest.fixture
def server(alice, make_server):
    server = make_server(alice, world=False)
    schedules.backup_schedule_create(server=server, data={"schedule_type": "daily", "schedule_time": dt.time(2),
                                                          "retention_days": 7}, actor=alice)
    server.refresh_from_db()
    return server


def _backup(server, days_ago: float, *, status="succeeded", locked=False, trigger="manual"):
    n = BackupRecord.objects.count()
    name = f"server_backup_{n:04d}.tar.gz"
    path = storage.server_backup_dir(server.pk) / name
    path.write_bytes(b"x" * 100)
    return BackupRecord.objects.create(
        server=server, owner=server.owner, server_name=server.name, filename=name,
        storage_path=storage.relative_path(path), status=status, locked=locked, size_bytes=100,
        created_at=timezone.now() - dt.timedelta(days=days_ago), trigger=trigger,
    )


def _alive(*records):
    return [BackupRecord.objects.get(pk=r.pk).status != "deleted" and storage.file_present(r) for r in records]


def test_old_backups_go_and_young_ones_stay(server):
    young, old = _backup(server, 1), _backup(server, 10)
    deleted = retention_apply(server=server, disk_percent=10)
    assert [r.pk for r in deleted] == [old.pk]
    assert _alive(young, old) == [True, False]
    assert BackupRecord.objects.get(pk=old.pk).deleted_at is not None  # history keeps the record


def test_the_newest_successful_backup_is_kept_however_old(server):
    newest_ok = _backup(server, 20)
    failed_newer = _backup(server, 15, status="failed")
    older = _backup(server, 30)
    retention_apply(server=server, disk_percent=10)
    assert _alive(newest_ok, failed_newer, older) == [True, False, False]


def test_a_locked_backup_survives_age_and_emergency(server):
    locked = _backup(server, 100, locked=True)
    recent = [_backup(server, d) for d in (0.1, 0.2, 0.3, 0.4)]
    retention_apply(server=server, disk_percent=95)
    assert _alive(locked) == [True]
    assert _alive(*recent) == [True, True, True, False]


def test_emergency_cleanup_at_90_percent_keeps_the_3_newest(server):
    backups = [_backup(server, d) for d in (0.1, 0.2, 0.3, 0.4, 0.5)]
    assert retention_apply(server=server, disk_percent=89.9) == []
    retention_apply(server=server, disk_percent=90.0)
    assert _alive(*backups) == [True, True, True, False, False]


def test_disk_check_runs_the_emergency_sweep_and_alerts(server, mailoutbox, settings):
    settings.MCSITE_ALERT_EMAILS = ["ops@example.com"]
    backups = [_backup(server, d) for d in (0.1, 0.2, 0.3, 0.4)]
    disk_check(disk_percent=93)
    disk_check(disk_percent=94)
    assert _alive(*backups) == [True, True, True, False]
    subjects = sorted(m.subject for m in mailoutbox)
    assert len(subjects) == 2 and all("Backup disk" in s for s in subjects)  # 80 % and 90 %, once each


def test_disk_usage_counts_like_df_with_root_reserved_blocks(monkeypatch, alice_api, alice, make_server):
    """A 100 GB disk with 40 GB used, 50 GB free and 10 GB reserved for root
    is 44.4 % full for us (df's used / (used + free)), not 40 %."""
    import shutil
    from collections import namedtuple

    from backups.services.retention import disk_usage_percent

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(100 * 10**9, 40 * 10**9, 50 * 10**9))
    assert round(disk_usage_percent(), 1) == 44.4
    server = make_server(alice, world=False)
    disk = alice_api.get(f"/api/backups/{server.pk}/status").json()["data"]["disk_usage"]
    assert (disk["used_percent"], disk["total_bytes"], disk["free_bytes"]) == (44.4, 90 * 10**9, 50 * 10**9)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(100 * 10**9, 80 * 10**9, 9 * 10**9))
    assert disk_usage_percent() >= 89.8  # with the reserve this disk is nearly full: the emergency rule applies


def test_safety_backups_expire_after_their_own_days_unless_locked_and_do_not_count_as_the_kept_one(server):
    """Each restore used to add a locked full-size copy that retention never
    removed. They are rollback points: kept 7 days (a setting), or for good
    when the user locks one; the newest *regular* backup is the one always kept."""
    from backups.services import config

    regular = _backup(server, 20)  # older than retention, but the newest regular one
    fresh_safety = _backup(server, 2, trigger="safety")
    old_safety = _backup(server, 8, trigger="safety")
    kept_safety = _backup(server, 30, trigger="safety", locked=True)
    retention_apply(server=server, disk_percent=10)
    assert _alive(regular, fresh_safety, old_safety, kept_safety) == [True, True, False, True]

    config.settings_checks_set(safety_backup_days=1)
    retention_apply(server=server, disk_percent=10)
    assert _alive(fresh_safety) == [False]


def test_at_the_emergency_threshold_only_the_newest_safety_backup_stays(server):
    regular = [_backup(server, d) for d in (1, 2, 3)]
    newest_safety, older_safety = _backup(server, 0.5, trigger="safety"), _backup(server, 1.5, trigger="safety")
    retention_apply(server=server, disk_percent=95)
    assert _alive(*regular) == [True, True, True], "safety backups do not take the 3 regular places"
    assert _alive(newest_safety, older_safety) == [True, False]


def test_the_status_counts_and_sizes_safety_backups_apart(server, alice_api):
    _backup(server, 1)
    _backup(server, 1, trigger="safety")
    _backup(server, 2, trigger="safety")
    data = alice_api.get(f"/api/backups/{server.pk}/status").json()["data"]
    assert data["metrics"]["stored_backups"] == 1
    disk = data["disk_usage"]
    assert (disk["server_backup_bytes"], disk["safety_backup_bytes"], disk["safety_backups"]) == (100, 200, 2)
    assert disk["safety_backup_days"] == 7


def test_a_backup_a_restore_or_rollback_is_reading_is_never_deleted(server):
    """A rollback takes a new safety backup, then reads the restore's one: at
    the emergency threshold the older one was deleted under it."""
    from backups.models import RestoreRequest

    being_read = _backup(server, 30, trigger="safety")
    newer_safety = _backup(server, 0.1, trigger="safety")
    old_regular = _backup(server, 40)
    _backup(server, 1)
    RestoreRequest.objects.create(server=server, kind="rollback", backup=being_read, status="running",
                                  backup_filename=being_read.filename, safety_backup=newer_safety)
    retention_apply(server=server, disk_percent=95)
    assert _alive(being_read, newer_safety, old_regular) == [True, True, False]
