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


def _backup(server, days_ago: float, *, status="succeeded", locked=False):
    n = BackupRecord.objects.count()
    name = f"server_backup_{n:04d}.tar.gz"
    path = storage.server_backup_dir(server.pk) / name
    path.write_bytes(b"x" * 100)
    return BackupRecord.objects.create(
        server=server, owner=server.owner, server_name=server.name, filename=name,
        storage_path=storage.relative_path(path), status=status, locked=locked, size_bytes=100,
        created_at=timezone.now() - dt.timedelta(days=days_ago),
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
