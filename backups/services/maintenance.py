"""What beat runs on its own: the reaper (a worker that died mid-run), the
disk monitor, and the dead-man check ("the last two expected runs neither
succeeded nor were skipped", at most one alert a day per server)."""

import logging
import os
import shutil
import socket
from glob import escape as glob_escape
from datetime import timedelta
from itertools import islice
from pathlib import Path

from django.conf import settings
from django.db.models import Max
from django.utils import timezone

from backups import events, scheduling, storage
from backups.alerts import alert_open, alert_resolve, owner_emails, server_subject
from backups.models import (ACTIVE_STATUSES, AlertIncident, BackupRecord, BackupSchedule, BackupSettings,
                            RestoreRequest)
from backups.services import files, lifecycle
from backups.services.lifecycle import stale_cutoff
from backups.services.offsite import reap_stale_copies
from backups.services.restore_run import restore_recover
from backups.services.retention import disk_usage_percent, retention_sweep
from mcsite.errors import ErrorCode
from servers import control
from servers.nodes import down_nodes, known_nodes
from servers.models import Server
from servers.rcon import RconClient, RconError

logger = logging.getLogger("mcsite.backups")

QUEUED_TOO_LONG = timedelta(hours=6)
PARTIAL_PREFIX = ".partial-"


def reap_stale_runs(*, now=None, node: str | None = None, silent_for: timedelta | None = None) -> dict:
    """Ends runs whose worker stopped beating as WORKER_LOST, and has what
    they left put right where it lives — on the server's node: half-written
    files removed, servers a dead backup had stopped started, saving turned
    back on, restored folders recovered from their recorded steps.

    Runs on a node that is down are left alone (issue #15): nothing of its
    host can be put right from elsewhere, and the node reaps its own runs
    when its worker starts again (``node``: only that node's runs, silent
    for ``silent_for``)."""
    now = now or timezone.now()
    cutoff = now - (silent_for or stale_cutoff())
    reaped = {"backups": 0, "restores": 0, "servers_started": 0}
    stale = BackupRecord.objects.filter(status=BackupRecord.Status.RUNNING, heartbeat_at__lt=cutoff)
    restores = RestoreRequest.objects.filter(status=RestoreRequest.Status.RUNNING, heartbeat_at__lt=cutoff)
    if node is not None:
        stale, restores = stale.filter(server__node=node), restores.filter(server__node=node)
    else:
        down = down_nodes()  # as they are now (a test may pass a `now` ahead of the clock)
        stale, restores = stale.exclude(server__node__in=down), restores.exclude(server__node__in=down)
    # A run waiting for its players' countdown (not_before) gets the same grace from then on.
    never_started = BackupRecord.objects.filter(status=BackupRecord.Status.QUEUED, created_at__lt=now - QUEUED_TOO_LONG
                                                ).exclude(not_before__gte=now - QUEUED_TOO_LONG)
    for record in list(stale.select_related("server")) + list(never_started.select_related("server")):
        running = record.status == BackupRecord.Status.RUNNING
        message = ("The worker running this backup stopped (killed or crashed); no file was kept"
                   if running else "The backup was queued but never started")
        if not lifecycle.end(record, status=BackupRecord.Status.FAILED, code=ErrorCode.WORKER_LOST, message=message,
                             only_from=(record.status,), locked=False):
            continue
        reaped["backups"] += 1
        server = record.server
        events.log_event("backup_failed", server=server, backup=record, code="WORKER_LOST", error=message)
        if server is None:
            files.discard_here(record)
            continue
        if record.storage_path or record.snapshot_id:  # the partial file, or a snapshot written but not verified
            on_node(server, "remove_lost_backup_file", backup_id=record.pk)
        if record.trigger != BackupRecord.Trigger.SAFETY:  # a lost backup is a failed backup (SPEC §9)
            alert_open(kind="backup_failed", subject=server_subject(server),
                       title=f"Backup of {server.name} failed", body=f"WORKER_LOST: {message}",
                       recipients_extra=owner_emails(server))
        if record.server_stopped_by_backup:
            if on_node(server, "start_server_after_lost_run",
                       reason=f"backup {record.pk} stopped it and its worker died"):
                reaped["servers_started"] += 1
            BackupRecord.objects.filter(pk=record.pk).update(server_stopped_by_backup=False)
        if record.saves_paused:
            on_node(server, "resume_saves")
            BackupRecord.objects.filter(pk=record.pk).update(saves_paused=False)
    for restore in restores.select_related("server"):
        if restore.server.node == settings.MCSITE_NODE:
            reaped["restores"] += restore_recover(restore_id=restore.pk, stale_before=cutoff)
        elif RestoreRequest.objects.filter(pk=restore.pk, status=RestoreRequest.Status.RUNNING,
                                           heartbeat_at__lt=cutoff).update(phase="recovery_sent", heartbeat_at=now):
            # Sent again after another silent period if that node's worker is down too.
            lifecycle.send_task("recover_restore", kwargs={"restore_id": restore.pk}, queue=restore.server.node)
    for restore in RestoreRequest.objects.filter(status=RestoreRequest.Status.QUEUED,
                                                 created_at__lt=now - QUEUED_TOO_LONG):
        if lifecycle.end(restore, status=RestoreRequest.Status.FAILED, code=ErrorCode.WORKER_LOST,
                         message="The restore was queued but never started; nothing was changed",
                         only_from=(RestoreRequest.Status.QUEUED,)):
            reaped["restores"] += 1
            events.log_event("restore_failed", server=restore.server, restore_id=restore.pk, code="WORKER_LOST")
    reaped["copies"] = reap_stale_copies(now=now)  # off-site copies whose worker died: sent again
    remove_orphaned_partials(older_than=cutoff)
    remove_restore_leftovers(older_than=cutoff)
    if node is None:
        to_other_nodes("sweep_partial_files")  # each host cleans its own disk
    return reaped


def reap_own_runs_on_start() -> dict:
    """A node's worker starts: its runs whose worker is gone (the process
    that ran them on this host no longer exists, or they have been silent
    for two heartbeats) are ended and put right here, on their own host —
    also when the node was down for less than the reaper's usual wait."""
    import psutil

    host = socket.gethostname()
    silent = timezone.now() - stale_cutoff() - timedelta(seconds=1)
    mine = BackupRecord.objects.filter(status=BackupRecord.Status.RUNNING, server__node=settings.MCSITE_NODE)
    for pk, worker in mine.values_list("pk", "worker"):
        name, _, pid = worker.rpartition(":")
        if name == host and pid.isdigit() and not psutil.pid_exists(int(pid)):
            BackupRecord.objects.filter(pk=pk).update(heartbeat_at=silent)  # its process is gone: as silent as can be
    reaped = reap_stale_runs(node=settings.MCSITE_NODE, silent_for=timedelta(seconds=2 * lifecycle.HEARTBEAT_SECONDS))
    reaped["partials"] = remove_orphaned_partials(older_than=timezone.now())  # only those of runs that are over
    return reaped


def to_other_nodes(task: str) -> list[str]:
    """Sends a node-local system task (its disk, its servers) to every other
    node's queue, with ``fan_out=False`` where the task takes it."""
    sent = []
    for node in sorted(set(known_nodes()) - {settings.MCSITE_NODE}):
        kwargs = {} if task == "sweep_partial_files" else {"fan_out": False}
        try:
            lifecycle.send_task(task, kwargs=kwargs, queue=node)
            sent.append(node)
        except Exception as exc:  # noqa: BLE001 — the next period sends it again
            logger.error("node_task_send_failed task=%s node=%s error=%s", task, node, type(exc).__name__)
    return sent


def on_node(server, action: str, **kwargs) -> bool:
    """Runs a server-side action where the server lives: here when this
    process serves the server's node, else as a task on that node's queue
    (its folder, process and disk are on that host, not on the reaper's)."""
    if server.node == settings.MCSITE_NODE:
        return bool(_LOCAL_ACTIONS[action](server, **kwargs))
    lifecycle.send_task(action, kwargs={"server_id": server.pk, **kwargs}, queue=server.node)
    return False


def run_on_this_node(action: str, *, server_id: int, **kwargs):
    """The task side of on_node."""
    server = Server.objects.filter(pk=server_id).first()
    return _LOCAL_ACTIONS[action](server, **kwargs) if server is not None else None


def remove_lost_backup_file(server, *, backup_id: int) -> bool:
    record = BackupRecord.objects.filter(pk=backup_id, status=BackupRecord.Status.FAILED).first()
    return record is not None and files.discard_here(record)


def start_server(server, *, reason: str) -> bool:
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


def remove_orphaned_partials(*, older_than=None) -> int:
    """Half-written archives of runs that are over, on this host's disk.
    A partial file of a run still queued or running is never touched, how
    old it is notwithstanding: it is created before the folder scan, which
    can take minutes on a folder of many files."""
    older_than = older_than or timezone.now() - stale_cutoff()
    live = {(f"server-{server_id}", name) for server_id, name in BackupRecord.objects.filter(
        status__in=ACTIVE_STATUSES).exclude(filename="").values_list("server_id", "filename")}
    removed = 0
    limit = older_than.timestamp()
    for folder in storage.backup_root().iterdir():
        if not folder.is_dir():
            continue
        for path in folder.glob(f"{PARTIAL_PREFIX}*"):
            if any((folder.name, name) in live for name in _partial_owners(path.name)):
                continue
            try:
                if path.stat().st_mtime < limit:
                    os.unlink(path)
                    removed += 1
            except FileNotFoundError:
                continue
    return removed


LEFTOVER_LABELS = ("restore", "failed-restore")  # a half extraction; a restored folder nobody checked


def remove_restore_leftovers(*, older_than=None) -> list[str]:
    """Folders a restore leaves beside a server folder of this node when its
    recovery could not run (mcsite versions before recorded staging
    folders): `.<name>.restore-*` is a half extraction and
    `.<name>.failed-restore-*` a restored folder that never passed its check.
    Neither holds anything that is not in a backup. A folder of a server
    whose restore is still active is left alone, and so is a
    `.<name>.pre-restore-*` folder, which may be the only copy of a world:
    it is logged (restore_leftover_kept) for an administrator to look at."""
    limit = (older_than or timezone.now() - stale_cutoff()).timestamp()
    busy = set(RestoreRequest.objects.filter(status__in=ACTIVE_STATUSES).values_list("server_id", flat=True))
    removed = []
    for server in Server.objects.filter(node=settings.MCSITE_NODE).exclude(pk__in=busy):
        parent, name = server.path.parent, server.path.name
        for folder in parent.glob(f".{glob_escape(name)}.*-*"):
            label = folder.name[len(name) + 2:].rsplit("-", 1)[0]
            try:
                if not folder.is_dir() or folder.is_symlink() or folder.stat().st_mtime >= limit:
                    continue
            except FileNotFoundError:
                continue
            if label in LEFTOVER_LABELS:
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder.name)
                logger.warning("restore_leftover_removed server_id=%s folder=%s", server.pk, folder.name)
            elif label in ("pre-restore", "previous"):
                logger.warning("restore_leftover_kept server_id=%s folder=%s (may hold the only copy of a world)",
                               server.pk, folder.name)
    return removed


def _partial_owners(partial: str) -> list[str]:
    """Backup names a partial file may belong to: `.partial-<name>-<random>`."""
    body = partial[len(PARTIAL_PREFIX):]
    return [body[:i] for i in range(len(body)) if body[i] == "-"]


def disk_check(*, disk_percent: float | None = None) -> float:
    """Alerts at ≥ 80 % and ≥ 90 % backup disk usage (one alert per incident),
    and runs the emergency retention at the emergency threshold."""
    settings_row = BackupSettings.load()
    percent = disk_usage_percent() if disk_percent is None else disk_percent
    root: Path = storage.backup_root()
    node = settings.MCSITE_NODE
    subject = f"disk:{node}"  # one incident per game host's backup disk (issue #15)
    for threshold in (settings_row.disk_warning_percent, settings_row.disk_emergency_percent):
        kind = f"disk_usage_{threshold}"
        if percent >= threshold:
            if alert_open(kind=kind, subject=subject, title=f"Backup disk {percent:.0f}% full on {node}",
                          body=f"The backup disk ({root}) of game host {node} is {percent:.1f}% used "
                               f"(threshold {threshold}%)."):
                events.log_event("disk_usage_high", percent=round(percent, 1), threshold=threshold, node=node)
        else:
            alert_resolve(kind=kind, subject=subject)
    if percent >= settings_row.disk_emergency_percent:
        retention_sweep(disk_percent=percent)
    return percent


DEAD_MAN_GRACE = timedelta(minutes=15)  # a run due at 03:00 may still be queued or starting at 03:10
DEAD_MAN_REPEAT = timedelta(hours=24)


def dead_man_check(*, now=None) -> list[int]:
    """Opens an alert for each enabled schedule whose last two expected runs
    (scheduling.iter_runs) neither succeeded nor were skipped: nothing
    healthy — a success, or a skip because nothing changed (the last
    backup still holds the world) — since before both were due, and the
    second one due more than DEAD_MAN_GRACE ago with no backup of the server
    under way. Runs expected before the schedule was last changed do not
    count. At most one alert a day per server: not when a dead-man incident
    of the server opened in the last 24 hours, even one resolved since."""
    now = now or timezone.now()
    alerted = []
    schedules = BackupSchedule.objects.filter(enabled=True).select_related("server", "server__owner").annotate(
        last_ok=Max("server__backups__created_at", filter=_succeeded()),
        last_healthy=Max("server__backups__created_at", filter=_healthy()),
    )
    busy = set(BackupRecord.objects.filter(status__in=ACTIVE_STATUSES).values_list("server_id", flat=True))
    for schedule in schedules:
        server = schedule.server
        subject = server_subject(server)
        since = max(filter(None, (schedule.last_healthy, schedule.created_at, schedule.updated_at)))
        missed = list(islice(scheduling.iter_runs(schedule, after=since), 2))
        if len(missed) < 2 or now - missed[1] < DEAD_MAN_GRACE:
            alert_resolve(kind="dead_man", subject=subject)
            continue
        if server.pk in busy:  # the second run may still be under way
            continue
        if AlertIncident.objects.filter(kind="dead_man", subject=subject, opened_at__gt=now - DEAD_MAN_REPEAT).exists():
            continue
        last = schedule.last_ok.isoformat() if schedule.last_ok else "never"
        missed_words = " and ".join(f"{run:%Y-%m-%d %H:%M}" for run in missed)
        if alert_open(kind="dead_man", subject=subject, title=f"No successful backup of {server.name}",
                      body=f"The last two scheduled backups of {server.name} ({missed_words}, "
                           f"{settings.MCSITE_TIME_ZONE}) neither succeeded nor were skipped "
                           f"(last successful backup: {last}).",
                      recipients_extra=owner_emails(server)):
            # The day counts from the check's own now (the same as the clock's, except in tests).
            AlertIncident.objects.filter(kind="dead_man", subject=subject, resolved_at__isnull=True).update(opened_at=now)
            alerted.append(server.pk)
            events.log_event("schedule_execution_failure", server=server, reason="no_successful_backup",
                             last_success=last)
    return alerted


def _succeeded():
    from django.db.models import Q

    return Q(server__backups__status=BackupRecord.Status.SUCCEEDED)


def _healthy():
    """A success (also one retention deleted since) or a skip, not a restore's safety backup."""
    from django.db.models import Q

    return ((Q(server__backups__status__in=[BackupRecord.Status.SUCCEEDED, BackupRecord.Status.SKIPPED])
             | Q(server__backups__status=BackupRecord.Status.DELETED, server__backups__error_code=""))
            & ~Q(server__backups__trigger=BackupRecord.Trigger.SAFETY))


_LOCAL_ACTIONS = {"start_server_after_lost_run": start_server, "resume_saves": saves_back_on,
                  "remove_lost_backup_file": remove_lost_backup_file}
