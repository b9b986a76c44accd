"""Reads: metrics, disk usage, the status of a server's backups. Each uses a
fixed number of queries whatever the number of rows."""

import shutil
from datetime import timedelta

from django.conf import settings
from django.db.models import Avg, Count, Max, Q, Sum
from django.utils import timezone

from backups import scheduling, storage
from backups.models import ACTIVE_STATUSES, BackupRecord, BackupSettings, RestoreRequest, SnapshotRepository
from servers import nodes
from servers.models import Node

WINDOWS = {"24h": timedelta(hours=1 * 24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
_FINISHED = [BackupRecord.Status.SUCCEEDED, BackupRecord.Status.FAILED, BackupRecord.Status.DELETED]


def backup_metrics(*, records=None, now=None) -> dict:
    """Success and verification rates over 24 h / 7 d / 30 d, durations and
    sizes, for a queryset of backups (one server's, a user's, or all). One query."""
    now = now or timezone.now()
    records = (records if records is not None else BackupRecord.objects.all()).exclude(
        trigger=BackupRecord.Trigger.SAFETY)
    aggregates = {}
    for label, span in WINDOWS.items():
        since = Q(created_at__gte=now - span)
        done = since & Q(status__in=_FINISHED)
        # A deleted backup counts as it ended: retention deletes good ones, and
        # a failed one keeps its error code when its file is removed.
        ok = since & (Q(status=BackupRecord.Status.SUCCEEDED) | Q(status=BackupRecord.Status.DELETED, error_code=""))
        aggregates[f"total_{label}"] = Count("id", filter=done)
        aggregates[f"ok_{label}"] = Count("id", filter=ok)
        aggregates[f"verified_{label}"] = Count("id", filter=ok & Q(verification_passed__isnull=False))
        aggregates[f"verified_ok_{label}"] = Count("id", filter=ok & Q(verification_passed=True))
    recent = Q(created_at__gte=now - WINDOWS["30d"], status=BackupRecord.Status.SUCCEEDED)
    aggregates["avg_duration"] = Avg("duration_seconds", filter=recent)
    aggregates["avg_size"] = Avg("size_bytes", filter=recent)
    aggregates["stored_bytes"] = Sum("size_bytes", filter=Q(status__in=[
        BackupRecord.Status.SUCCEEDED, BackupRecord.Status.FAILED]) & (~Q(storage_path="") | ~Q(snapshot_id="")))
    aggregates["stored_count"] = Count("id", filter=Q(status=BackupRecord.Status.SUCCEEDED))
    aggregates["last_success"] = Max("finished_at", filter=Q(status=BackupRecord.Status.SUCCEEDED))
    row = records.aggregate(**aggregates)
    metrics = {}
    for label in WINDOWS:
        total, ok = row[f"total_{label}"], row[f"ok_{label}"]
        verified, verified_ok = row[f"verified_{label}"], row[f"verified_ok_{label}"]
        metrics[f"success_rate_{label}"] = round(100.0 * ok / total, 1) if total else None
        metrics[f"verification_rate_{label}"] = round(100.0 * verified_ok / verified, 1) if verified else None
        metrics[f"backups_{label}"] = total
    metrics["average_duration_seconds_30d"] = round(row["avg_duration"], 2) if row["avg_duration"] else None
    metrics["average_size_bytes_30d"] = int(row["avg_size"]) if row["avg_size"] else None
    metrics["stored_bytes"] = row["stored_bytes"] or 0
    metrics["stored_backups"] = row["stored_count"]
    metrics["last_success_at"] = row["last_success"]
    return metrics


def backup_trend(*, records, limit: int = 60) -> list[dict]:
    """Size and duration of the latest successful backups, oldest first (charts)."""
    rows = (records.filter(status__in=[BackupRecord.Status.SUCCEEDED, BackupRecord.Status.DELETED],
                           size_bytes__isnull=False)
            .exclude(trigger=BackupRecord.Trigger.SAFETY)
            .order_by("-created_at").values("created_at", "size_bytes", "duration_seconds", "quality_score")[:limit])
    return list(reversed(list(rows)))


def _web_tier_only() -> bool:
    """This process serves no game host of its own: the site's disks are the nodes'."""
    from servers.models import Server

    return (not Server.objects.filter(node=settings.MCSITE_NODE).exists()
            and Node.objects.exclude(name=settings.MCSITE_NODE).exists())


def disk_usage(*, server=None) -> dict:
    from backups.services.retention import disk_usage_percent

    remote = _web_tier_only() if server is None else not nodes.is_local(server.node)
    if remote:
        # Another game host's backup disk (all of them for the whole site), as reported (issue #15).
        rows = Node.objects.filter(name=server.node) if server is not None else Node.objects.all()
        total = sum(r.backup_root_total or 0 for r in rows)
        free = sum(r.backup_root_free or 0 for r in rows if r.backup_root_total)
        data = {"total_bytes": total, "used_bytes": total - free, "free_bytes": free,
                "used_percent": round(100.0 * (total - free) / total, 1) if total else 0.0,
                "node": server.node if server is not None else None}
    else:
        usage = shutil.disk_usage(storage.backup_root())
        data = {
            "total_bytes": usage.used + usage.free,  # what we can use: df's size minus root's reserve
            "used_bytes": usage.used,
            "free_bytes": usage.free,
            "used_percent": round(disk_usage_percent(), 1),
        }
    if server is not None:
        # Regular backups and safety backups (restores' rollback points, which
        # expire on their own) are counted and sized apart. One query.
        safety = Q(trigger=BackupRecord.Trigger.SAFETY)
        row = BackupRecord.objects.filter(
            server=server, status__in=[BackupRecord.Status.SUCCEEDED, BackupRecord.Status.FAILED]
        ).exclude(storage_path="").aggregate(
            regular=Sum("size_bytes", filter=~safety), safety=Sum("size_bytes", filter=safety),
            safety_count=Count("id", filter=safety & Q(status=BackupRecord.Status.SUCCEEDED)))
        # An incremental server's repository on this backup root (issue #14): its packs, not its snapshots' sizes.
        repository = SnapshotRepository.objects.filter(server=server, target__isnull=True).values_list(
            "stored_bytes", flat=True).first()
        data["server_backup_bytes"] = (row["regular"] or 0) + (repository or 0)
        data["safety_backup_bytes"] = row["safety"] or 0
        data["safety_backups"] = row["safety_count"]
        data["safety_backup_days"] = (  # a read only: load() would create the settings row
            BackupSettings.objects.filter(pk=1).values_list("safety_backup_days", flat=True).first()
            or BackupSettings._meta.get_field("safety_backup_days").default)
    return data


def backup_status(*, server) -> dict:
    schedule = getattr(server, "backup_schedule", None)
    records = BackupRecord.objects.filter(server=server)
    running = records.filter(status__in=ACTIVE_STATUSES).first()
    last = records.filter(status__in=_FINISHED).exclude(trigger=BackupRecord.Trigger.SAFETY).first()
    last_ok = records.filter(status__in=[BackupRecord.Status.SUCCEEDED]).first()
    restore = RestoreRequest.objects.filter(server=server, status__in=ACTIVE_STATUSES).first()
    return {
        "schedule": schedule,
        "next_run": scheduling.next_run(schedule) if schedule is not None else None,
        "running_backup": running,
        "running_restore": restore,
        "last_backup": last,
        "last_successful_backup": last_ok,
        "metrics": backup_metrics(records=records),
        "disk_usage": disk_usage(server=server),
    }
