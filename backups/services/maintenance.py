"""What beat runs on its own: the reaper (a worker that died mid-run), the
disk monitor, and the dead-man check ("no successful backup in 2× the
schedule's period")."""

import logging
import os
from datetime import timedelta
from pathlib import Path

from django.db.models import Max
from django.utils import timezone

from backups import events, scheduling, storage
from backups.alerts import alert_open, alert_resolve, owner_emails, server_subject
from backups.models import BackupRecord, BackupSchedule, BackupSettings, RestoreRequest
from backups.services.retention import disk_usage_percent
from backups.services.runs import stale_cutoff
from mcsite.errors import ErrorCode

logger = logging.getLogger("mcsite.backups")

QUEUED_TOO_LONG = timedelta(hours=6)
PARTIAL_PREFIX = ".partial-"


def reap_stale_runs(*, now=None) -> dict:
    """Ends runs whose worker stopped beating as WORKER_LOST, removes what
    they left half-written, and starts servers a dead backup had stopped."""
    from backups.services.restores import restore_recover

    now = now or timezone.now()
    cutoff = now - stale_cutoff()
    reaped = {"backups": 0, "restores": 0, "servers_started": 0}
    stale = BackupRecord.objects.filter(status=BackupRecord.Status.RUNNING, heartbeat_at__lt=cutoff)
    never_started = BackupRecord.objects.filter(status=BackupRecord.Status.QUEUED, created_at__lt=now - QUEUED_TOO_LONG)
    for record in list(stale.select_related("server")) + list(never_started.select_related("server")):
        message = ("The worker running this backup stopped (killed or crashed); no file was kept"
                   if record.status == BackupRecord.Status.RUNNING else "The backup was queued but never started")
        ended = BackupRecord.objects.filter(pk=record.pk, status=record.status).update(
            status=BackupRecord.Status.FAILED, error_code=ErrorCode.WORKER_LOST.value, error_message=message,
            finished_at=now, phase="failed",
        )
        if not ended:
            continue
        reaped["backups"] += 1
        storage.remove_backup_file(record)
        record.refresh_from_db()
        events.log_event("backup_failed", server=record.server, backup=record, code="WORKER_LOST", error=message)
        if record.server is not None:  # a lost backup is a failed backup (SPEC §9)
            alert_open(kind="backup_failed", subject=server_subject(record.server),
                       title=f"Backup of {record.server.name} failed", body=f"WORKER_LOST: {message}",
                       recipients_extra=owner_emails(record.server))
        if record.server is not None and record.server_stopped_by_backup:
            if on_node(record.server, "start_server_after_lost_run",
                       reason=f"backup {record.pk} stopped it and its worker died"):
                reaped["servers_started"] += 1
            BackupRecord.objects.filter(pk=record.pk).update(server_stopped_by_backup=False)
        if record.server is not None and record.saves_paused:
            on_node(record.server, "resume_saves")
            BackupRecord.objects.filter(pk=record.pk).update(saves_paused=False)
    for restore in RestoreRequest.objects.filter(status=RestoreRequest.Status.RUNNING, heartbeat_at__lt=cutoff):
        if restore_recover(restore=restore, now=now):
            reaped["restores"] += 1
    for restore in RestoreRequest.objects.filter(status=RestoreRequest.Status.QUEUED,
                                                 created_at__lt=now - QUEUED_TOO_LONG):
        if RestoreRequest.objects.filter(pk=restore.pk, status=RestoreRequest.Status.QUEUED).update(
                status=RestoreRequest.Status.FAILED, error_code=ErrorCode.WORKER_LOST.value, finished_at=now,
                error_message="The restore was queued but never started; nothing was changed", phase="failed"):
            reaped["restores"] += 1
            events.log_event("restore_failed", server=restore.server, restore_id=restore.pk, code="WORKER_LOST")
    remove_orphaned_partials(older_than=now - stale_cutoff())
    from django.conf import settings

    from backups import tasks
    from servers.models import Server

    for node in set(Server.objects.values_list("node", flat=True)) - {settings.MCSITE_NODE}:
        tasks.sweep_partial_files.apply_async(queue=node)  # each host cleans its own disk
    return reaped


def on_node(server, action: str, **kwargs) -> bool:
    """Runs a server-side action where the server lives: here when this
    process serves the server's node, else as a task on that node's queue
    (its folder and process are on that host, not on the reaper's)."""
    from django.conf import settings

    if server.node == settings.MCSITE_NODE:
        return bool(_LOCAL_ACTIONS[action](server, **kwargs))
    from backups import tasks

    getattr(tasks, action).apply_async(kwargs={"server_id": server.pk, **kwargs}, queue=server.node)
    return False


def start_server(server, *, reason: str) -> bool:
    from servers import control
    from servers.models import Server

    spec = server.process_spec()
    try:
        if control.find_process(spec) is not None:
            return False
        status = control.start(spec, lambda m: logger.info("server_control server_id=%s %s", server.pk, m))
    except Exception as exc:  # noqa: BLE001
        logger.error("server_restart_failed server_id=%s reason=%s error=%s", server.pk, reason, exc)
        alert_open(kind="server_down", subject=server_subject(server), title=f"{server.name} could not be started",
                   body=f"{reason}; starting it again failed: {exc}", recipients_extra=owner_emails(server))
        return False
    Server.objects.filter(pk=server.pk).update(pid=status.pid, pid_create_time=status.create_time)
    logger.info("server_restarted server_id=%s reason=%s pid=%s", server.pk, reason, status.pid)
    return True


def saves_back_on(server) -> None:
    """A live backup's worker died between save-off and save-on: turn saving on."""
    from servers import control
    from servers.rcon import RconClient, RconError

    spec = server.process_spec()
    if control.find_process(spec) is None or not spec.rcon_password:
        return
    try:
        with RconClient(spec.rcon_host, spec.rcon_port, spec.rcon_password, timeout=10) as rcon:
            reply = rcon.command("save-on")
        logger.info("server_saves_resumed server_id=%s reply=%r", server.pk, reply.strip())
    except RconError as exc:
        logger.error("server_save_on_failed server_id=%s error=%s", server.pk, exc)
        alert_open(kind="saves_paused", subject=server_subject(server), title=f"World saving is off on {server.name}",
                   body=f"A live backup stopped before it could send save-on, and save-on failed: {exc}",
                   recipients_extra=owner_emails(server))


def remove_orphaned_partials(*, older_than) -> int:
    removed = 0
    root = storage.backup_root()
    limit = older_than.timestamp()
    for folder in root.iterdir():
        if not folder.is_dir():
            continue
        for path in folder.glob(f"{PARTIAL_PREFIX}*"):
            try:
                if path.stat().st_mtime < limit:
                    os.unlink(path)
                    removed += 1
            except FileNotFoundError:
                continue
    return removed


def disk_check(*, disk_percent: float | None = None) -> float:
    """Alerts at ≥ 80 % and ≥ 90 % backup disk usage (one alert per incident),
    and runs the emergency retention at the emergency threshold."""
    settings_row = BackupSettings.load()
    percent = disk_usage_percent() if disk_percent is None else disk_percent
    root: Path = storage.backup_root()
    for threshold in (settings_row.disk_warning_percent, settings_row.disk_emergency_percent):
        kind = f"disk_usage_{threshold}"
        if percent >= threshold:
            if alert_open(kind=kind, subject="site", title=f"Backup disk {percent:.0f}% full",
                          body=f"The backup disk ({root}) is {percent:.1f}% used (threshold {threshold}%)."):
                events.log_event("disk_usage_high", percent=round(percent, 1), threshold=threshold)
        else:
            alert_resolve(kind=kind, subject="site")
    if percent >= settings_row.disk_emergency_percent:
        from backups.services.retention import retention_sweep

        retention_sweep(disk_percent=percent)
    return percent


def dead_man_check(*, now=None) -> list[int]:
    """Opens an alert for each enabled schedule whose server has had no
    successful backup for twice the schedule's period."""
    now = now or timezone.now()
    alerted = []
    schedules = BackupSchedule.objects.filter(enabled=True).select_related("server", "server__owner").annotate(
        last_ok=Max("server__backups__created_at", filter=_succeeded())
    )
    for schedule in schedules:
        reference = schedule.last_ok or schedule.created_at
        limit = 2 * scheduling.period(schedule)
        subject = server_subject(schedule.server)
        if now - reference > limit:
            last = schedule.last_ok.isoformat() if schedule.last_ok else "never"
            if alert_open(kind="dead_man", subject=subject,
                          title=f"No successful backup of {schedule.server.name}",
                          body=f"No successful backup of {schedule.server.name} in 2× its {schedule.schedule_type} "
                               f"period (last successful backup: {last}).",
                          recipients_extra=owner_emails(schedule.server)):
                alerted.append(schedule.server.pk)
                events.log_event("schedule_execution_failure", server=schedule.server, reason="no_successful_backup",
                                 last_success=last)
        else:
            alert_resolve(kind="dead_man", subject=subject)
    return alerted


def _succeeded():
    from django.db.models import Q

    return Q(server__backups__status=BackupRecord.Status.SUCCEEDED)


_LOCAL_ACTIONS = {"start_server_after_lost_run": start_server, "resume_saves": saves_back_on}
