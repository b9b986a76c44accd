"""A backup run, step by step as SPEC §5 says: claim, pre-checks,
consistency, archive, verification, record, retention, events and alerts.
The lifecycle (claim, heartbeat, progress, ending, error codes) is
lifecycle.py's; the safety backup of a restore is this same pipeline."""

import logging
import os
import socket
import time
from contextlib import nullcontext
from datetime import timezone as dt_timezone
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from backups import engine, events, storage
from backups.alerts import alert_open, alert_resolve, owner_emails, server_subject
from backups.models import ACTIVE_STATUSES, BackupRecord, BackupSettings, RestoreRequest
from backups.services import config as config_service
from backups.services import announce, files, lifecycle, snapshots
from backups.services.contents import contents_store
from backups.services.offsite import copies_queue
from backups.services.prechecks import backup_precheck, trigger_precheck
from backups.services.retention import retention_apply
from mcsite.audit import audit
from mcsite.errors import DomainError, ErrorCode
from servers import consistency, control, nodes
from servers.models import Server

logger = logging.getLogger("mcsite.backups")

SAFETY = BackupRecord.Trigger.SAFETY


# --- claim --------------------------------------------------------------------

def backup_trigger(*, server: Server, trigger: str = BackupRecord.Trigger.MANUAL, actor=None,
                   request=None, source: str = "api", enqueue: bool = True, precheck: bool = True) -> BackupRecord:
    """Queues a backup. Inserting the queued record is the claim: the partial
    unique constraint lets one queued/running backup exist per server, so a
    second trigger gets BACKUP_IN_PROGRESS whichever worker or web process
    it came from. The pre-checks run here too, so a user hears at once."""
    try:
        record = _claim(server=server, trigger=trigger, actor=actor, precheck=precheck)
    except DomainError as exc:
        if trigger != BackupRecord.Trigger.SCHEDULED:  # a scheduled refusal is logged by its caller
            audit(actor=actor, action="backup.trigger", obj=server, request=request, source=source,
                  outcome="failure", detail={"code": exc.code.value, "error": exc.message})
            events.log_event("backup_refused", server=server, code=exc.code.value, error=exc.message)
        raise
    if trigger != BackupRecord.Trigger.SCHEDULED or actor is not None:
        audit(actor=actor, action="backup.trigger", obj=record, request=request, source=source,
              detail={"server_id": server.pk, "trigger": trigger})
    if enqueue and not nodes.is_local(server.node):
        # Another game host (issue #15): its worker tells the players (RCON from that host), then queues the run.
        lifecycle.queue_after_commit(record, "start_backup", event="backup_failed")
    elif enqueue:
        # Players warned first: the run then waits in the broker, not in a worker.
        wait = _announce(record, server) if trigger != SAFETY else 0
        lifecycle.queue_after_commit(record, "run_backup", event="backup_failed", countdown=wait or None)
    return record


def backup_start_on_node(*, backup_id: int) -> None:
    """On the server's node, for a backup triggered elsewhere: the players'
    warning, then the run (after the countdown, as backup_trigger does)."""
    record = BackupRecord.objects.select_related("server").filter(pk=backup_id, status=BackupRecord.Status.QUEUED).first()
    if record is None or record.server is None:
        return
    wait = _announce(record, record.server)
    lifecycle.send_task("run_backup", kwargs={"backup_id": record.pk}, queue=record.server.node,
                        countdown=wait or None)


def _announce(record: BackupRecord, server: Server) -> int:
    try:
        return announce.backup_announce(record=record, server=server)
    except Exception:  # noqa: BLE001 — telling the players never stops a backup
        logger.exception("announce_failed server_id=%s", server.pk)
        return 0


def _claim(*, server: Server, trigger: str, actor, precheck: bool) -> BackupRecord:
    if precheck:  # a scheduled run records its pre-check failure in history instead
        trigger_precheck(server=server)
    schedule = getattr(server, "backup_schedule", None) if trigger == BackupRecord.Trigger.SCHEDULED else None
    compression, spec = config_service.effective_options(schedule)
    repository = snapshots.repository_of(server)
    if repository is not None and repository.active:  # incremental (issue #14): always zstd, always encrypted
        format_fields = dict(repository=repository, compression="zstd", encrypted=True)
    else:
        format_fields = dict(compression=compression, encrypted=spec is not None,
                             key_fingerprint=spec.fingerprint if spec else "")
    try:
        with transaction.atomic():
            Server.objects.select_for_update().filter(pk=server.pk).first()  # one claimer per server
            if trigger != SAFETY and RestoreRequest.objects.filter(server=server, status__in=ACTIVE_STATUSES).exists():
                raise DomainError(ErrorCode.RESTORE_IN_PROGRESS)
            return BackupRecord.objects.create(
                server=server, owner=server.owner, server_name=server.name, trigger=trigger, node=server.node,
                requested_by=actor if getattr(actor, "is_authenticated", False) else None,
                phase="queued", **format_fields,
            )
    except IntegrityError:
        raise DomainError(ErrorCode.BACKUP_IN_PROGRESS) from None


# --- run ----------------------------------------------------------------------

def backup_run(*, backup_id: int, task_id: str = "", observer=None) -> BackupRecord | None:
    """Runs a queued backup. Moving queued → running by a conditional update
    decides who runs it: a redelivered or duplicated task finds nothing to do.
    `observer(done, total, phase)`, if given, hears progress in this thread
    (a command's progress bar); the record gets it too, throttled."""
    worker = f"{socket.gethostname()}:{os.getpid()}"[:200]
    if not lifecycle.claim(BackupRecord, backup_id, task_id=task_id, phase="prechecks", worker=worker):
        logger.info("backup_run_skipped backup_id=%s (not queued any more)", backup_id)
        return None
    lifecycle.checkpoint("backup_claimed")
    record = BackupRecord.objects.select_related("server", "server__owner").get(pk=backup_id)
    server = record.server
    events.log_event("backup_started", server=server, backup=record, trigger=record.trigger)
    with lifecycle.heartbeat(BackupRecord, record.pk):
        try:
            _take(record, server, observer)
        except BaseException as exc:  # noqa: BLE001 — every way out must end the record
            _fail(record, server, exc)
            if not isinstance(exc, Exception):
                raise
    record.refresh_from_db()
    if record.not_before is not None:  # the players were told: say it is over
        announce.backup_announce_done(backup_id=record.pk)
    return record


def backup_safety_take(*, server: Server, observer=None) -> BackupRecord:
    """The rollback point of a restore (or a rollback): a backup of the folder
    as it is now, of everything (no exclude patterns), through the ordinary
    pipeline (pre-checks, archive, verification). The restore has stopped
    the server already. It expires after BackupSettings.safety_backup_days
    unless the user locks it (retention.py). Returns the ended record."""
    record = backup_trigger(server=server, trigger=SAFETY, source="restore", enqueue=False, precheck=False)
    return backup_run(backup_id=record.pk, observer=observer)


def _take(record: BackupRecord, server: Server, observer=None) -> None:
    if server is None:
        raise DomainError(ErrorCode.SERVER_DIRECTORY_NOT_FOUND, "Server was deleted")
    safety = record.trigger == SAFETY
    exclude = () if safety else (server.exclude_patterns or ())
    source_bytes = backup_precheck(server=server, exclude=exclude)
    settings_row = BackupSettings.load()
    if record.repository_id is not None:
        return _take_snapshot(record, server, exclude=exclude, source_bytes=source_bytes, settings_row=settings_row,
                              observer=observer)
    spec = config_service.encryption_spec_for(record, settings_row)
    dest = _destination(record, server)
    # Named before it is written: whoever ends this record can remove its file,
    # and the reaper knows the partial file is a live run's.
    BackupRecord.objects.filter(pk=record.pk).update(
        filename=dest.name, storage_path=storage.relative_path(dest), source_bytes=source_bytes,
        progress_total=source_bytes,
    )
    record.filename, record.storage_path = dest.name, storage.relative_path(dest)
    progress = lifecycle.progress_writer(BackupRecord, record.pk, observer)
    started = time.monotonic()
    guard = nullcontext() if safety else _consistency(record, server, observer)
    with guard:
        lifecycle.set_phase(BackupRecord, record.pk, "archiving", observer)
        result = engine.create_archive(
            server.path, dest, compression=record.compression, encryption=spec, exclude=exclude,
            level=settings.MCSITE_GZIP_LEVEL if record.compression == "gzip" else None,
            progress=lifecycle.checkpoint_once_moving(progress, "backup_mid_archive"),
            on_step=lambda step: lifecycle.checkpoint(f"backup_{step}"),
        )
    BackupRecord.objects.filter(pk=record.pk).update(server_stopped_by_backup=False, saves_paused=False)

    # Verification reports its own bytes: the archive read back.
    lifecycle.set_phase(BackupRecord, record.pk, "verifying", observer, progress_bytes=0,
                        progress_total=result.size_bytes)
    report = engine.verify_backup(
        dest, expected_sha256=result.sha256, keyring=config_service.decryption_keyring(settings_row),
        check_world=settings_row.verify_world, restore_test=settings_row.restore_test,
        progress=lifecycle.progress_writer(BackupRecord, record.pk, observer),
    )
    _finish(record, server, result, report, duration=time.monotonic() - started)


def _take_snapshot(record: BackupRecord, server: Server, *, exclude, source_bytes: int, settings_row,
                   observer) -> None:
    """An incremental backup (issue #14): the same steps as an archive —
    consistency, progress, verification, record — into the server's
    repository instead of a new file."""
    name = snapshots.snapshot_filename(record)
    BackupRecord.objects.filter(pk=record.pk).update(filename=name, source_bytes=source_bytes,
                                                     progress_total=source_bytes)
    record.filename = name
    progress = lifecycle.progress_writer(BackupRecord, record.pk, observer)
    moving = lifecycle.checkpoint_once_moving(progress, "backup_mid_archive")
    started = time.monotonic()
    guard = nullcontext() if record.trigger == SAFETY else _consistency(record, server, observer)
    with guard:
        lifecycle.set_phase(BackupRecord, record.pk, "archiving", observer)
        result = snapshots.snapshot_take(record, record.repository, server.path, exclude=exclude,
                                         progress=lambda done: moving(done, max(source_bytes, done)))
    BackupRecord.objects.filter(pk=record.pk).update(server_stopped_by_backup=False, saves_paused=False,
                                                     snapshot_id=result.snapshot_id,
                                                     files_unchanged=result.files_unchanged)
    record.snapshot_id = result.snapshot_id
    lifecycle.checkpoint("backup_snapshot_written")
    lifecycle.set_phase(BackupRecord, record.pk, "verifying", observer, progress_bytes=0,
                        progress_total=result.total_bytes)
    report = snapshots.snapshot_verify(record, check_world=settings_row.verify_world)
    _finish(record, server, result, report, duration=time.monotonic() - started)
    snapshots.refresh_totals(record.repository)


def _consistency(record: BackupRecord, server: Server, observer):
    """Stop or pause saving around the archive step. Intent first: if this
    worker dies while stopping or pausing, the reaper must know to start the
    server again or to turn saving back on."""
    spec = server.process_spec()
    live = server.backup_mode == Server.BackupMode.LIVE
    running = control.find_process(spec) is not None
    BackupRecord.objects.filter(pk=record.pk).update(
        server_was_running=running, server_stopped_by_backup=running and not live, saves_paused=running and live)
    lifecycle.set_phase(BackupRecord, record.pk, "pausing_saves" if live else "stopping", observer)
    log = _server_log(server, record)
    if live:
        return consistency.live_save_paused(spec, log)
    return consistency.stopped_for_backup(spec, log, on_started=lambda status: _remember_pid(server, status))


def _destination(record: BackupRecord, server: Server) -> Path:
    """server_backup_YYYYMMDD_HHMMSS<suffix>, UTC, unique per server."""
    folder = storage.server_backup_dir(server.pk)
    stamp = (record.started_at or timezone.now()).astimezone(dt_timezone.utc).strftime("%Y%m%d_%H%M%S")
    tag = "_safety" if record.trigger == SAFETY else ""
    suffix = engine.backup_suffix(record.compression, record.encrypted)
    taken = set(BackupRecord.objects.filter(server=server).exclude(pk=record.pk).values_list("filename", flat=True))
    for n in range(0, 1000):
        name = f"server_backup_{stamp}{tag}{'' if n == 0 else f'_{n}'}{suffix}"
        if name not in taken and not (folder / name).exists():
            return folder / name
    raise DomainError(ErrorCode.INTERNAL_ERROR, "Could not find a free backup file name")


def _finish(record, server, result, report, *, duration: float) -> None:
    fields = lifecycle.verification_fields(report)
    fields.update(
        size_bytes=result.size_bytes, sha256=result.sha256, md5=result.md5, file_count=result.file_count,
        duration_seconds=round(duration, 3), progress_bytes=result.total_bytes, source_bytes=result.total_bytes,
        warnings=[*_earlier_warnings(record), *result.warnings()],
    )
    if lifecycle.is_corrupt(fields["verification"]):
        ended = lifecycle.end(record, status=BackupRecord.Status.FAILED, code=ErrorCode.BACKUP_CORRUPTED,
                              message="The backup failed verification right after it was written", **fields)
    else:
        ended = lifecycle.end(record, status=BackupRecord.Status.SUCCEEDED, **fields)
    if not ended:
        # The reaper ended this run meanwhile (it thought the worker was gone):
        # its verdict stands, so the file must not outlive it unlisted.
        logger.warning("backup_finish_ignored backup_id=%s (no longer running)", record.pk)
        files.discard_here(record)
        return
    contents_store(record=record, report=report)  # the file list read back, to browse without decompressing
    if record.status == BackupRecord.Status.FAILED and record.trigger == SAFETY:
        files.discard_here(record)  # an unverifiable rollback point is no rollback point
    _report_outcome(record, server)


def _report_outcome(record: BackupRecord, server: Server) -> None:
    subject = server_subject(server)
    failed = lifecycle.failed_methods(record.verification)
    if record.status == BackupRecord.Status.FAILED:
        events.log_event("corruption_detected", server=server, backup=record, methods=",".join(failed))
        events.log_event("backup_failed", server=server, backup=record, code=record.error_code,
                         error=record.error_message)
        alert_open(kind="corruption", subject=f"backup:{record.pk}", title=f"Corrupt backup of {server.name}",
                   body=f"{record.filename} failed {', '.join(failed)} right after it was written.",
                   recipients_extra=owner_emails(server))
        return
    events.log_event("backup_succeeded", server=server, backup=record, size=record.size_bytes,
                     duration=record.duration_seconds, quality=record.quality_score, trigger=record.trigger)
    if record.trigger == SAFETY:
        return  # a restore's rollback point says nothing about the schedule's health
    alert_resolve(kind="backup_failed", subject=subject)
    alert_resolve(kind="dead_man", subject=subject)
    if record.verification_passed:
        alert_resolve(kind="verification_failed", subject=subject)
    else:
        events.log_event("verification_failed", server=server, backup=record, methods=",".join(failed))
        alert_open(kind="verification_failed", subject=subject, title=f"Backup verification failed for {server.name}",
                   body=f"{record.filename}: {', '.join(failed)} failed. Quality {record.quality_score} "
                        f"({record.quality_level}).", recipients_extra=owner_emails(server))
    copies_queue(record)  # one copy per target of the server's policy, once verified (issue #13)
    retention_apply(server=server)


def _fail(record: BackupRecord, server: Server | None, exc: BaseException) -> None:
    code, message = lifecycle.classify(exc)
    ended = lifecycle.end(record, status=BackupRecord.Status.FAILED, code=code, message=message, locked=False)
    if (record.storage_path or record.snapshot_id) and record.status == BackupRecord.Status.FAILED:
        files.discard_here(record)  # a failed run keeps no file (the engine removed its partial)
    if not ended:
        if record.status == BackupRecord.Status.SUCCEEDED:  # it failed after its record was written
            logger.error("backup_after_success_error backup_id=%s", record.pk, exc_info=exc)
        return
    if code == ErrorCode.INTERNAL_ERROR:
        logger.error("backup_internal_error backup_id=%s", record.pk, exc_info=exc)
    events.log_event("backup_failed", server=server, backup=record, code=code.value, error=message)
    if record.trigger == BackupRecord.Trigger.SCHEDULED:
        events.log_event("schedule_execution_failure", server=server, backup=record, code=code.value, error=message)
    if server is not None and record.trigger != SAFETY:  # a failed safety backup fails its restore, which alerts
        alert_open(kind="backup_failed", subject=server_subject(server), title=f"Backup of {server.name} failed",
                   body=f"{code.value}: {message}", recipients_extra=owner_emails(server))


# --- helpers ------------------------------------------------------------------

def _earlier_warnings(record: BackupRecord) -> list:
    """Warnings written before the archive (players not told, announce.py)."""
    return BackupRecord.objects.filter(pk=record.pk).values_list("warnings", flat=True).first() or []


def _remember_pid(server: Server, status) -> None:
    Server.objects.filter(pk=server.pk).update(pid=status.pid, pid_create_time=status.create_time)


def _server_log(server: Server, record: BackupRecord):
    def log(message: str) -> None:
        logger.info("server_control server_id=%s backup_id=%s %s", server.pk, record.pk, message)
    return log
