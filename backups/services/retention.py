"""Retention (SPEC §5.7): delete backups older than retention_days, but
always keep the newest successful backup and never delete a locked one.
When the backup disk is ≥ the emergency threshold (90 %), keep only the 3
newest backups per server. Deletion removes the file and marks the record
deleted; history keeps it.

A restore's safety backup (its rollback point) is outside those rules: it is
kept for BackupSettings.safety_backup_days (7 by default) unless the user
locks it, and at the emergency threshold only the newest one per server is
kept."""

import shutil
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from backups import events, storage
from backups.models import ACTIVE_STATUSES, BackupRecord, BackupSettings, RestoreRequest

DEFAULT_RETENTION_DAYS = 30
EMERGENCY_KEEP = 3
_HAS_FILE = {"status__in": [BackupRecord.Status.SUCCEEDED, BackupRecord.Status.FAILED]}


def disk_usage_percent() -> float:
    """As df reports it: blocks reserved for root are neither used nor
    available to us, so the disk is full at used / (used + free) = 100 %."""
    usage = shutil.disk_usage(storage.backup_root())
    usable = usage.used + usage.free
    return 100.0 * usage.used / usable if usable else 0.0


def retention_apply(*, server, disk_percent: float | None = None, now=None) -> list[BackupRecord]:
    """Applies the server's retention; returns the backups it deleted.
    `disk_percent` is the backup disk's usage (measured when not given)."""
    now = now or timezone.now()
    schedule = getattr(server, "backup_schedule", None)
    retention_days = schedule.retention_days if schedule is not None else DEFAULT_RETENTION_DAYS
    disk_percent = disk_usage_percent() if disk_percent is None else disk_percent
    config = BackupSettings.load()
    emergency = disk_percent >= config.disk_emergency_percent

    with transaction.atomic():
        records = list(
            BackupRecord.objects.select_for_update().filter(server=server, **_HAS_FILE).order_by("-created_at", "-id")
        )
        safety = [r for r in records if r.trigger == BackupRecord.Trigger.SAFETY]
        regular = [r for r in records if r.trigger != BackupRecord.Trigger.SAFETY]
        newest_ok = next((r for r in regular if r.status == BackupRecord.Status.SUCCEEDED), None)
        doomed = _doomed(regular, keep=newest_ok, cutoff=now - timedelta(days=retention_days),
                         quota=EMERGENCY_KEEP if emergency else None)
        doomed += _doomed(safety, keep=None, cutoff=now - timedelta(days=config.safety_backup_days),
                          quota=1 if emergency else None)
        # A backup a restore or rollback is reading right now stays, whatever its age.
        in_use = set()
        for backup_id, safety_id in RestoreRequest.objects.filter(
                server=server, status__in=ACTIVE_STATUSES).values_list("backup_id", "safety_backup_id"):
            in_use.update({backup_id, safety_id})
        doomed = [(record, reason) for record, reason in doomed if record.pk not in in_use]
        for record, reason in doomed:
            _delete(record, reason=reason, retention_days=retention_days, disk_percent=disk_percent)
    return [record for record, _ in doomed]


def _doomed(records: list, *, keep, cutoff, quota: int | None) -> list[tuple]:
    """(record, reason) for each of `records` (newest first) past `cutoff`, or
    beyond the newest `quota` at the emergency threshold; never a locked one
    nor `keep`."""
    doomed = []
    for position, record in enumerate(records):
        if record.locked or record is keep:
            continue
        too_old = record.created_at < cutoff
        over_emergency_quota = quota is not None and position >= quota
        if too_old or over_emergency_quota:
            doomed.append((record, "emergency" if over_emergency_quota and not too_old else "age"))
    return doomed


def retention_sweep(*, disk_percent: float | None = None) -> int:
    """Every server, e.g. hourly from beat: catches servers whose last backup
    was long ago and the emergency rule across the whole disk."""
    from servers.models import Server

    disk_percent = disk_usage_percent() if disk_percent is None else disk_percent
    deleted = 0
    for server in Server.objects.select_related("backup_schedule"):
        deleted += len(retention_apply(server=server, disk_percent=disk_percent))
    return deleted


def _delete(record: BackupRecord, *, reason: str, retention_days: int, disk_percent: float) -> None:
    storage.remove_backup_file(record)
    record.status = BackupRecord.Status.DELETED
    record.deleted_at = timezone.now()
    record.save(update_fields=["status", "deleted_at"])
    events.log_event(
        "retention_deleted", server=record.server, backup=record, reason=reason,
        retention_days=retention_days, disk_percent=round(disk_percent, 1),
    )
