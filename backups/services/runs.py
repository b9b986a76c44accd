"""A backup run, step by step as SPEC §5 says: claim, pre-checks,
consistency, archive, verification, record, retention, events and alerts."""

import logging
import os
import shutil
import socket
import threading
import time
from contextlib import contextmanager
from datetime import timedelta
from datetime import timezone as dt_timezone
from pathlib import Path

from django.db import IntegrityError, transaction
from django.utils import timezone

from backups import engine, events, storage
from backups.alerts import alert_open, alert_resolve, owner_emails, server_subject
from backups.engine.errors import EngineError
from backups.models import ACTIVE_STATUSES, BackupRecord, BackupSettings, RestoreRequest
from backups.services import config as config_service
from mcsite.audit import audit
from mcsite.errors import DomainError, ErrorCode
from mcsite.paths import scrub_paths
from servers.models import Server

logger = logging.getLogger("mcsite.backups")

HEARTBEAT_SECONDS = 15
PROGRESS_WRITE_SECONDS = 1.0
DISK_MARGIN_BYTES = 64 * 1024 * 1024


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
    if enqueue:
        from backups import tasks

        enqueue_after_commit(record, tasks.enqueue_backup)
    return record


def enqueue_after_commit(row, send) -> None:
    """Sends the row's task once its transaction commits (a worker must find
    the row). Outside a transaction that is now: if the broker refused, the
    row was ended as failed, and the caller hears why."""
    sent = []
    transaction.on_commit(lambda: sent.append(send(row)))
    if sent == [False]:  # ran at once (no transaction around us) and the broker refused
        row.refresh_from_db()
        raise DomainError(ErrorCode.INTERNAL_ERROR, row.error_message)


def _claim(*, server: Server, trigger: str, actor, precheck: bool) -> BackupRecord:
    if precheck:  # a scheduled run records its pre-check failure in history instead
        backup_precheck(server=server)
    schedule = getattr(server, "backup_schedule", None) if trigger == BackupRecord.Trigger.SCHEDULED else None
    compression, spec = config_service.effective_options(schedule)
    try:
        with transaction.atomic():
            Server.objects.select_for_update().filter(pk=server.pk).first()  # one claimer per server
            if RestoreRequest.objects.filter(server=server, status__in=ACTIVE_STATUSES).exists():
                raise DomainError(ErrorCode.RESTORE_IN_PROGRESS)
            return BackupRecord.objects.create(
                server=server, owner=server.owner, server_name=server.name, trigger=trigger,
                requested_by=actor if getattr(actor, "is_authenticated", False) else None,
                compression=compression, encrypted=spec is not None,
                key_fingerprint=spec.fingerprint if spec else "", phase="queued",
            )
    except IntegrityError:
        raise DomainError(ErrorCode.BACKUP_IN_PROGRESS) from None


def backup_precheck(*, server: Server, needed_bytes: int | None = None) -> int:
    """The seed's pre-checks, each with its own code and message. Returns the
    size of the folder to archive."""
    folder = server.path
    if not folder.is_dir():
        raise DomainError(ErrorCode.SERVER_DIRECTORY_NOT_FOUND)
    if not os.access(folder, os.R_OK | os.X_OK):
        raise DomainError(ErrorCode.PERMISSION_DENIED)
    source_bytes = folder_size(folder, server.exclude_patterns)
    needed = needed_bytes if needed_bytes is not None else source_bytes
    free = shutil.disk_usage(storage.backup_root()).free
    if free < needed + DISK_MARGIN_BYTES:
        raise DomainError(
            ErrorCode.INSUFFICIENT_DISK_SPACE,
            f"Insufficient disk space: about {needed // 2**20} MiB needed, {free // 2**20} MiB free",
        )
    return source_bytes


def folder_size(folder: Path, exclude_patterns=()) -> int:
    total = 0
    for dirpath, dirnames, filenames in os.walk(folder, onerror=_raise_permission):
        for name in filenames:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except FileNotFoundError:
                continue
            except PermissionError:
                raise DomainError(ErrorCode.PERMISSION_DENIED) from None
    return total


def _raise_permission(error: OSError):
    if isinstance(error, PermissionError):
        raise DomainError(ErrorCode.PERMISSION_DENIED) from None


# --- run ----------------------------------------------------------------------

def backup_run(*, backup_id: int, task_id: str = "", observer=None) -> BackupRecord | None:
    """Runs a queued backup. Moving queued → running by a conditional update
    decides who runs it: a redelivered or duplicated task finds nothing to do.
    `observer(done, total, phase)`, if given, hears progress in this thread
    (a command's progress bar); the record gets it too, throttled."""
    now = timezone.now()
    claimed = BackupRecord.objects.filter(pk=backup_id, status=BackupRecord.Status.QUEUED).update(
        status=BackupRecord.Status.RUNNING, started_at=now, heartbeat_at=now, phase="prechecks",
        task_id=task_id[:64], worker=f"{socket.gethostname()}:{os.getpid()}"[:200],
    )
    if not claimed:
        logger.info("backup_run_skipped backup_id=%s (not queued any more)", backup_id)
        return None
    record = BackupRecord.objects.select_related("server", "server__owner").get(pk=backup_id)
    server = record.server
    events.log_event("backup_started", server=server, backup=record, trigger=record.trigger)
    with _heartbeat(BackupRecord, record.pk):
        try:
            _run(record, server, observer)
        except BaseException as exc:  # noqa: BLE001 — every way out must end the record
            _fail(record, server, exc)
            if not isinstance(exc, Exception):
                raise
    record.refresh_from_db()
    return record


def _run(record: BackupRecord, server: Server, observer=None) -> None:
    from servers import consistency, control

    if server is None:
        raise DomainError(ErrorCode.SERVER_DIRECTORY_NOT_FOUND, "Server was deleted")
    source_bytes = backup_precheck(server=server)
    settings_row = BackupSettings.load()
    spec = None
    if record.encrypted:
        spec = config_service.current_encryption_spec(settings_row)
        if spec is None or spec.fingerprint != record.key_fingerprint:
            spec = next((s for s in config_service.decryption_keyring(settings_row).specs
                         if s.fingerprint == record.key_fingerprint), None)
        if spec is None:
            raise DomainError(ErrorCode.VALIDATION_ERROR, "The encryption secret of this backup is no longer configured")

    dest = _destination(record, server)
    BackupRecord.objects.filter(pk=record.pk).update(
        filename=dest.name, storage_path=storage.relative_path(dest), source_bytes=source_bytes,
        progress_total=source_bytes,
    )
    record.filename = dest.name
    progress = _progress_writer(BackupRecord, record.pk, observer)
    process_spec = server.process_spec()
    started = time.monotonic()

    live = server.backup_mode == Server.BackupMode.LIVE
    # Intent first: if this worker dies while stopping or pausing, the reaper
    # must know to start the server again or to turn saving back on.
    running = control.find_process(process_spec) is not None
    BackupRecord.objects.filter(pk=record.pk).update(
        server_was_running=running, server_stopped_by_backup=running and not live, saves_paused=running and live)
    _set_phase(record, "pausing_saves" if live else "stopping", observer)
    if live:
        guard = consistency.live_save_paused(process_spec, _server_log(server, record))
    else:
        guard = consistency.stopped_for_backup(
            process_spec, _server_log(server, record), on_started=lambda status: _remember_pid(server, status)
        )
    with guard:
        # Remembered so the reaper can start the server again if this worker dies.
        BackupRecord.objects.filter(pk=record.pk).update(phase="archiving")
        _notify(observer, phase="archiving")
        result = engine.create_archive(
            server.path, dest, compression=record.compression, encryption=spec,
            exclude=server.exclude_patterns or (), progress=progress,
        )
    BackupRecord.objects.filter(pk=record.pk).update(server_stopped_by_backup=False, saves_paused=False)

    _set_phase(record, "verifying", observer)
    report = engine.verify_backup(
        dest, expected_sha256=result.sha256, keyring=config_service.decryption_keyring(settings_row),
        check_world=settings_row.verify_world, restore_test=settings_row.restore_test,
    )
    _finish(record, server, result, report, duration=time.monotonic() - started)


def _destination(record: BackupRecord, server: Server) -> Path:
    """server_backup_YYYYMMDD_HHMMSS<suffix>, UTC, unique per server."""
    folder = storage.server_backup_dir(server.pk)
    stamp = (record.started_at or timezone.now()).astimezone(dt_timezone.utc).strftime("%Y%m%d_%H%M%S")
    suffix = engine.backup_suffix(record.compression, record.encrypted)
    taken = set(BackupRecord.objects.filter(server=server).exclude(pk=record.pk).values_list("filename", flat=True))
    for n in range(0, 1000):
        name = f"server_backup_{stamp}{'' if n == 0 else f'_{n}'}{suffix}"
        if name not in taken and not (folder / name).exists():
            return folder / name
    raise DomainError(ErrorCode.INTERNAL_ERROR, "Could not find a free backup file name")


def _finish(record, server, result, report, *, duration: float) -> None:
    verification = verification_dict(report)
    corrupted = any(
        not m.get("ok", False) and not m.get("skipped", False)
        for name, m in verification.get("methods", {}).items() if name in ("checksum", "archive_integrity")
    )
    now = timezone.now()
    fields = dict(
        size_bytes=result.size_bytes, sha256=result.sha256, md5=result.md5, file_count=result.file_count,
        world_name=report.world_name or "", minecraft_version=report.minecraft_version or "",
        finished_at=now, duration_seconds=round(duration, 3), verification=verification, verified_at=now,
        verification_passed=report.ok, quality_score=report.quality_score, quality_level=report.quality_level,
        phase="done", progress_bytes=result.total_bytes, source_bytes=result.total_bytes, heartbeat_at=now,
        warnings=_archive_warnings(result),
    )
    if corrupted:
        fields.update(status=BackupRecord.Status.FAILED, error_code=ErrorCode.BACKUP_CORRUPTED.value,
                      error_message="The backup failed verification right after it was written")
    else:
        fields.update(status=BackupRecord.Status.SUCCEEDED)
    if not BackupRecord.objects.filter(pk=record.pk, status=BackupRecord.Status.RUNNING).update(**fields):
        # The reaper ended this run meanwhile (it thought the worker was gone):
        # its verdict stands, and the file it may have removed is not listed.
        logger.warning("backup_finish_ignored backup_id=%s (no longer running)", record.pk)
        record.refresh_from_db()
        return
    record.refresh_from_db()
    _report_outcome(record, server, report)


def _archive_warnings(result) -> list[str]:
    warnings = []
    if result.changed_files:
        warnings.append(f"{len(result.changed_files)} file(s) changed while being read: "
                        + ", ".join(result.changed_files[:10]))
    if result.vanished_files:
        warnings.append(f"{len(result.vanished_files)} file(s) vanished while being read: "
                        + ", ".join(result.vanished_files[:10]))
    for item in getattr(result, "skipped", [])[:10]:
        warnings.append(f"skipped: {item}")
    return warnings


def _report_outcome(record: BackupRecord, server: Server, report) -> None:
    subject = server_subject(server)
    failed_methods = [name for name, m in report.to_dict().get("methods", {}).items()
                      if not m.get("ok", False) and not m.get("skipped", False)]
    if record.status == BackupRecord.Status.FAILED:
        events.log_event("corruption_detected", server=server, backup=record, methods=",".join(failed_methods))
        events.log_event("backup_failed", server=server, backup=record, code=record.error_code,
                         error=record.error_message)
        alert_open(kind="corruption", subject=f"backup:{record.pk}", title=f"Corrupt backup of {server.name}",
                   body=f"{record.filename} failed {', '.join(failed_methods)} right after it was written.",
                   recipients_extra=owner_emails(server))
        return
    events.log_event("backup_succeeded", server=server, backup=record, size=record.size_bytes,
                     duration=record.duration_seconds, quality=record.quality_score)
    alert_resolve(kind="backup_failed", subject=subject)
    alert_resolve(kind="dead_man", subject=subject)
    if record.verification_passed:
        alert_resolve(kind="verification_failed", subject=subject)
    else:
        events.log_event("verification_failed", server=server, backup=record, methods=",".join(failed_methods))
        alert_open(kind="verification_failed", subject=subject, title=f"Backup verification failed for {server.name}",
                   body=f"{record.filename}: {', '.join(failed_methods)} failed. Quality {record.quality_score} "
                        f"({record.quality_level}).", recipients_extra=owner_emails(server))
    from backups.services.retention import retention_apply

    retention_apply(server=server)


def _fail(record: BackupRecord, server: Server | None, exc: BaseException) -> None:
    code, message = _error_of(exc)
    now = timezone.now()
    started = record.started_at or now
    BackupRecord.objects.filter(pk=record.pk, status__in=ACTIVE_STATUSES).update(
        status=BackupRecord.Status.FAILED, error_code=code, error_message=message[:2000], finished_at=now,
        duration_seconds=round((now - started).total_seconds(), 3), phase="failed", heartbeat_at=now,
    )
    record.refresh_from_db()
    if code == ErrorCode.INTERNAL_ERROR.value:
        logger.error("backup_internal_error backup_id=%s", record.pk, exc_info=exc)
    events.log_event("backup_failed", server=server, backup=record, code=code, error=message)
    if record.trigger == BackupRecord.Trigger.SCHEDULED:
        events.log_event("schedule_execution_failure", server=server, backup=record, code=code, error=message)
    if server is not None:
        alert_open(kind="backup_failed", subject=server_subject(server), title=f"Backup of {server.name} failed",
                   body=f"{code}: {message}", recipients_extra=owner_emails(server))


def _error_of(exc: BaseException) -> tuple[str, str]:
    from servers.control import ServerControlError

    if isinstance(exc, DomainError):
        return exc.code.value, scrub_paths(exc.message)
    if isinstance(exc, EngineError):
        return exc.code, scrub_paths(exc.message)
    if isinstance(exc, ServerControlError):
        return ErrorCode.SERVER_CONTROL_FAILED.value, scrub_paths(str(exc))
    if isinstance(exc, PermissionError):
        return ErrorCode.PERMISSION_DENIED.value, scrub_paths(f"Permission denied: {exc.filename or exc}")
    if isinstance(exc, OSError) and exc.errno == 28:
        return ErrorCode.INSUFFICIENT_DISK_SPACE.value, "Insufficient disk space"
    name = type(exc).__name__
    if name == "SoftTimeLimitExceeded":
        return ErrorCode.TIMEOUT.value, "The backup took longer than the time limit and was stopped"
    return ErrorCode.INTERNAL_ERROR.value, scrub_paths(f"Unexpected error: {name}: {exc}")


# --- helpers ------------------------------------------------------------------

def verification_dict(report) -> dict:
    """The report as stored and shown: per-method results, never a filesystem path."""
    data = report.to_dict()
    data.pop("path", None)
    for method in data.get("methods", {}).values():
        for key in ("errors", "warnings"):
            method[key] = [scrub_paths(str(item)) for item in method.get(key, [])]
    return data


def _set_phase(record: BackupRecord, phase: str, observer=None) -> None:
    BackupRecord.objects.filter(pk=record.pk).update(phase=phase)
    _notify(observer, phase=phase)


def _notify(observer, *, done=None, total=None, phase=None) -> None:
    if observer is not None:
        observer(done, total, phase)


def _remember_pid(server: Server, status) -> None:
    Server.objects.filter(pk=server.pk).update(pid=status.pid, pid_create_time=status.create_time)


def _server_log(server: Server, record: BackupRecord):
    def log(message: str) -> None:
        logger.info("server_control server_id=%s backup_id=%s %s", server.pk, record.pk, message)
    return log


def _progress_writer(model, pk: int, observer=None):
    """A progress callback that writes at most once a second (not per block)."""
    last = [0.0]

    def progress(done: int, total: int) -> None:
        _notify(observer, done=done, total=total)
        now = time.monotonic()
        if now - last[0] >= PROGRESS_WRITE_SECONDS or (total and done >= total):
            last[0] = now
            model.objects.filter(pk=pk).update(progress_bytes=done, progress_total=total, heartbeat_at=timezone.now())

    return progress


@contextmanager
def _heartbeat(model, pk: int):
    """Keeps heartbeat_at fresh while a long step (a slow stop) runs, so the
    reaper can tell a live run from one whose worker died."""
    stop = threading.Event()

    def beat():
        from django.db import connection

        try:
            while not stop.wait(HEARTBEAT_SECONDS):
                try:
                    model.objects.filter(pk=pk, status__in=ACTIVE_STATUSES).update(heartbeat_at=timezone.now())
                except Exception as exc:  # noqa: BLE001 — a busy database must not silence the heartbeat
                    logger.warning("heartbeat_failed %s=%s error=%s", model.__name__, pk, exc)
                    connection.close()
        finally:
            connection.close()

    thread = threading.Thread(target=beat, name=f"heartbeat-{model.__name__}-{pk}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def stale_cutoff() -> timedelta:
    return timedelta(seconds=HEARTBEAT_SECONDS * 8)
