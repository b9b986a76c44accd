"""Restore (SPEC §7): preview, confirm, the staged run with its safety
backup, and rollback. The server folder is only ever replaced by renames on
its own filesystem, with the previous folder kept until the new one is in
place and the server is back, so any failure — including a dead worker —
can put the previous files back."""

import logging
import os
import shutil
import stat
import time
import uuid
from datetime import timedelta
from pathlib import Path

from django.db import IntegrityError, transaction
from django.utils import timezone

from backups import engine, events, storage
from backups.alerts import alert_open, owner_emails, server_subject
from backups.engine.errors import EngineError
from backups.models import ACTIVE_STATUSES, BackupRecord, BackupSettings, RestoreRequest
from backups.services import config as config_service
from backups.services.runs import (
    _error_of,
    _heartbeat,
    _notify,
    _progress_writer,
    enqueue_after_commit,
    verification_dict,
)
from mcsite.audit import audit
from mcsite.errors import DomainError, ErrorCode
from servers.models import Server

logger = logging.getLogger("mcsite.backups")
OLD_BACKUP_DAYS = 7
_RESTORABLE = (BackupRecord.Status.SUCCEEDED,)


def restorable_backup(*, server: Server, backup_filename) -> BackupRecord:
    """One of this server's own backups, by its file name; anything else —
    a path, `..`, another server's file, a deleted one — is BACKUP_NOT_FOUND."""
    if not isinstance(backup_filename, str) or not backup_filename or "/" in backup_filename or "\\" in backup_filename:
        raise DomainError(ErrorCode.BACKUP_NOT_FOUND)
    record = BackupRecord.objects.filter(server=server, filename=backup_filename, status__in=_RESTORABLE).first()
    if record is None or not storage.file_present(record):
        raise DomainError(ErrorCode.BACKUP_NOT_FOUND)
    return record


def _domain(exc: EngineError) -> DomainError:
    code = exc.code if exc.code in ErrorCode.__members__ else ErrorCode.BACKUP_CORRUPTED.value
    return DomainError(ErrorCode(code), exc.message)


def restore_preview(*, server: Server, backup_filename) -> dict:
    """What a restore would do, reading the backup's real contents. Changes nothing."""
    from servers import control

    record = restorable_backup(server=server, backup_filename=backup_filename)
    _require_key(record)
    contents = _contents(record)
    running = control.status(server.process_spec()).running
    needed = contents["total_bytes"]
    free = shutil.disk_usage(server.path.parent).free
    warnings = []
    if running:
        warnings.append("The server is running and will be stopped during the restore, then started again.")
    if server.path.exists() and any(server.path.iterdir()):
        warnings.append("The current files in the server folder will be replaced. A safety backup is taken first, "
                        "so the restore can be rolled back.")
        skipped = [p for p in (server.exclude_patterns or []) if (server.path / p.rstrip("/")).exists()]
        if skipped:
            warnings.append(f"Excluded from backups, so not in this one: {', '.join(skipped)}. After the restore "
                            "they are only in the safety backup.")
    age = timezone.now() - record.taken_at
    if age > timedelta(days=OLD_BACKUP_DAYS):
        warnings.append(f"This backup is {age.days} days old: changes made since then will be lost.")
    if record.verification_passed is None:
        warnings.append("This backup has not been verified.")
    elif record.verification_passed is False:
        warnings.append(f"This backup failed verification (quality {record.quality_score}, {record.quality_level}).")
    if needed + 64 * 2**20 > free:
        warnings.append(f"Not enough free space: about {needed // 2**20} MiB needed, {free // 2**20} MiB free.")
    if not contents["world_name"]:
        warnings.append("No Minecraft world (level.dat) was found in this backup.")
    return {
        "backup": record,
        "contents": contents,
        "space": {"needed_bytes": needed, "free_bytes": free},
        "server_running": running,
        "warnings": warnings,
    }


def _contents(record: BackupRecord) -> dict:
    """What the backup holds. Verification read the archived copy (level.dat
    included) and recorded it; only a backup without that record is read
    again now — a preview should not decompress a whole world each time."""
    worlds = (record.verification or {}).get("worlds")
    if record.file_count is not None and worlds is not None and record.source_bytes is not None:
        return {"file_count": record.file_count, "total_bytes": record.source_bytes,
                "world_name": record.world_name or None, "minecraft_version": record.minecraft_version or None,
                "worlds": worlds}
    try:
        info = engine.inspect_archive(storage.absolute_path(record.storage_path),
                                      keyring=config_service.decryption_keyring())
    except EngineError as exc:
        raise _domain(exc) from None
    return {"file_count": info.file_count, "total_bytes": int(info.total_bytes or 0),
            "world_name": info.world_name or None, "minecraft_version": info.minecraft_version or None,
            "worlds": list(info.worlds or [])}


def _require_key(record: BackupRecord) -> None:
    """An encrypted backup whose key or password is no longer configured
    cannot be restored: say so before anything is stopped."""
    if record.encrypted and record.key_fingerprint:
        known = {spec.fingerprint for spec in config_service.decryption_keyring().specs}
        if record.key_fingerprint not in known:
            raise DomainError(ErrorCode.DECRYPTION_FAILED,
                              "This backup was encrypted with a key or password that is no longer configured")


def restore_request(*, server: Server, backup_filename, actor, request=None, source: str = "api",
                    enqueue: bool = True) -> RestoreRequest:
    """Confirms a restore: refuses a corrupt backup before touching anything,
    claims the server (one backup or restore at a time) and queues the run."""
    record = restorable_backup(server=server, backup_filename=backup_filename)
    _require_key(record)
    _require_intact(record, server)
    return _claim_and_queue(server=server, backup=record, kind=RestoreRequest.Kind.RESTORE, actor=actor,
                            request=request, source=source, enqueue=enqueue)


def restore_rollback(*, restore: RestoreRequest, actor, request=None, source: str = "api",
                     enqueue: bool = True) -> RestoreRequest:
    """Undoes a finished restore by restoring its safety backup."""
    if restore.kind != RestoreRequest.Kind.RESTORE or restore.status != RestoreRequest.Status.SUCCEEDED:
        raise DomainError(ErrorCode.VALIDATION_ERROR, "Only a finished restore can be rolled back")
    safety = restore.safety_backup
    if safety is None or safety.status != BackupRecord.Status.SUCCEEDED or not storage.file_present(safety):
        raise DomainError(ErrorCode.BACKUP_NOT_FOUND, "The safety backup of this restore is not available")
    _require_intact(safety, restore.server)
    return _claim_and_queue(server=restore.server, backup=safety, kind=RestoreRequest.Kind.ROLLBACK, actor=actor,
                            request=request, source=source, rollback_of=restore, enqueue=enqueue)


def _require_intact(record: BackupRecord, server: Server) -> None:
    sha256, _ = engine.file_digests(storage.absolute_path(record.storage_path))
    if record.sha256 and sha256 != record.sha256:
        events.log_event("corruption_detected", server=server, backup=record, method="checksum")
        alert_open(kind="corruption", subject=f"backup:{record.pk}", title=f"Corrupt backup {record.filename}",
                   body=f"{record.filename} of {server.name} no longer matches its SHA-256; it cannot be restored.",
                   recipients_extra=owner_emails(server))
        raise DomainError(ErrorCode.BACKUP_CORRUPTED, "Backup is corrupted: its checksum no longer matches")


def _claim_and_queue(*, server, backup, kind, actor, request, source, rollback_of=None, enqueue=True) -> RestoreRequest:
    try:
        with transaction.atomic():
            Server.objects.select_for_update().filter(pk=server.pk).first()
            if BackupRecord.objects.filter(server=server, status__in=ACTIVE_STATUSES).exists():
                raise DomainError(ErrorCode.BACKUP_IN_PROGRESS)
            restore = RestoreRequest.objects.create(
                server=server, kind=kind, backup=backup, backup_filename=backup.filename, rollback_of=rollback_of,
                requested_by=actor if getattr(actor, "is_authenticated", False) else None, phase="queued",
            )
    except IntegrityError:
        raise DomainError(ErrorCode.RESTORE_IN_PROGRESS) from None
    audit(actor=actor, action=f"restore.{kind}", obj=restore, request=request, source=source,
          detail={"server_id": server.pk, "backup": backup.filename})
    if enqueue:
        from backups import tasks

        enqueue_after_commit(restore, tasks.enqueue_restore)
    return restore


# --- the run --------------------------------------------------------------------

def restore_run(*, restore_id: int, task_id: str = "", observer=None) -> RestoreRequest | None:
    now = timezone.now()
    claimed = RestoreRequest.objects.filter(pk=restore_id, status=RestoreRequest.Status.QUEUED).update(
        status=RestoreRequest.Status.RUNNING, started_at=now, heartbeat_at=now, task_id=task_id[:64], phase="checking",
    )
    if not claimed:
        return None
    restore = RestoreRequest.objects.select_related("server", "backup", "rollback_of").get(pk=restore_id)
    events.log_event("restore_started", server=restore.server, backup=restore.backup, restore_id=restore.pk,
                     kind=restore.kind)
    with _heartbeat(RestoreRequest, restore.pk):
        _Run(restore, observer).execute()
    restore.refresh_from_db()
    return restore


class _Run:
    """One restore run; `steps` is persisted so a crash can be undone."""

    def __init__(self, restore: RestoreRequest, observer=None):
        self.restore = restore
        self.observer = observer
        self.server = restore.server
        self.target = self.server.path
        self.staging: Path | None = None
        self.previous: Path | None = None
        self.was_running = False

    def step(self, name: str, **info) -> None:
        entry = {"step": name, "at": timezone.now().isoformat(), **info}
        self.restore.steps = [*self.restore.steps, entry]
        RestoreRequest.objects.filter(pk=self.restore.pk).update(steps=self.restore.steps, phase=name)
        _notify(self.observer, phase=name)

    def execute(self) -> None:
        try:
            self._execute()
        except BaseException as exc:  # noqa: BLE001 — every way out must leave the old files in place
            self._undo()
            self._fail(exc)
            if not isinstance(exc, Exception):
                raise

    def _execute(self) -> None:
        from servers import control

        backup = self.restore.backup
        if backup is None or not storage.file_present(backup):
            raise DomainError(ErrorCode.BACKUP_NOT_FOUND)
        _require_intact(backup, self.server)
        spec = self.server.process_spec()
        # Intent first, so a worker that dies while stopping still gets the server started again.
        self.was_running = control.find_process(spec) is not None
        RestoreRequest.objects.filter(pk=self.restore.pk).update(server_was_running=self.was_running)
        outcome = control.stop(spec, self._log)
        self.was_running = self.was_running or outcome.was_running
        self.step("stopped", was_running=self.was_running)

        if self.restore.kind == RestoreRequest.Kind.RESTORE and self.target.exists():
            safety = self._safety_backup()
            self.restore.safety_backup = safety
            RestoreRequest.objects.filter(pk=self.restore.pk).update(safety_backup=safety)
            self.step("safety_backup", backup_id=safety.pk, filename=safety.filename)

        self.step("extracting")
        result = engine.extract_to_staging(
            storage.absolute_path(backup.storage_path), self.target,
            keyring=config_service.decryption_keyring(), progress=_progress_writer(RestoreRequest, self.restore.pk, self.observer),
        )
        self.staging = Path(result.staging_dir)
        self.step("extracted", staging=self.staging.name, file_count=result.file_count)
        RestoreRequest.objects.filter(pk=self.restore.pk).update(file_count=result.file_count)

        self._swap()
        check_restored_folder(self.target, result)
        if self.was_running:
            status = control.start(self.server.process_spec(), self._log)
            Server.objects.filter(pk=self.server.pk).update(pid=status.pid, pid_create_time=status.create_time)
            self.step("started", pid=status.pid)
        # From here on the restored folder is the server's: a crash while the
        # old folder is removed must not bring the old one back half-deleted.
        self.step("committed")
        previous, self.previous = self.previous, None
        if previous is not None:
            shutil.rmtree(previous, ignore_errors=True)
        self._succeed()

    def _safety_backup(self) -> BackupRecord:
        """A locked, verified backup of the folder as it is now: the rollback point.
        It keeps everything (no exclude patterns), so a rollback is exact."""
        config = BackupSettings.load()
        compression, spec = config_service.effective_options(None, config)
        record = BackupRecord.objects.create(
            server=self.server, owner=self.server.owner, server_name=self.server.name,
            trigger=BackupRecord.Trigger.SAFETY, status=BackupRecord.Status.RUNNING, started_at=timezone.now(),
            heartbeat_at=timezone.now(), compression=compression, encrypted=spec is not None,
            key_fingerprint=spec.fingerprint if spec else "", locked=True, phase="archiving",
        )
        started = time.monotonic()
        dest = storage.server_backup_dir(self.server.pk) / (
            f"server_backup_{timezone.now():%Y%m%d_%H%M%S}_pre_restore_{self.restore.pk}"
            f"{engine.backup_suffix(compression, spec is not None)}")
        # Named before it is written, so whoever ends this record can remove its file.
        BackupRecord.objects.filter(pk=record.pk).update(filename=dest.name, storage_path=storage.relative_path(dest))
        try:
            with _heartbeat(BackupRecord, record.pk):
                result = engine.create_archive(self.target, dest, compression=compression, encryption=spec,
                                               progress=_progress_writer(BackupRecord, record.pk, self.observer))
                report = engine.verify_backup(dest, expected_sha256=result.sha256,
                                              keyring=config_service.decryption_keyring(config), check_world=True)
            if not report.to_dict()["methods"].get("archive_integrity", {}).get("ok"):
                raise DomainError(ErrorCode.BACKUP_CORRUPTED,
                                  "The safety backup could not be verified; nothing was changed")
        except BaseException as exc:
            code, message = _error_of(exc)
            storage.remove_backup_file(BackupRecord(storage_path=storage.relative_path(dest)))
            BackupRecord.objects.filter(pk=record.pk).update(
                status=BackupRecord.Status.FAILED, error_code=code, error_message=message, finished_at=timezone.now(),
                locked=False, phase="failed")
            raise
        now = timezone.now()
        BackupRecord.objects.filter(pk=record.pk).update(
            status=BackupRecord.Status.SUCCEEDED, filename=dest.name, storage_path=storage.relative_path(dest),
            size_bytes=result.size_bytes, sha256=result.sha256, md5=result.md5, file_count=result.file_count,
            source_bytes=result.total_bytes, finished_at=now, duration_seconds=round(time.monotonic() - started, 3),
            verification=verification_dict(report), verified_at=now, verification_passed=report.ok,
            quality_score=report.quality_score, quality_level=report.quality_level, phase="done",
            world_name=report.world_name or "", minecraft_version=report.minecraft_version or "",
        )
        record.refresh_from_db()
        events.log_event("backup_succeeded", server=self.server, backup=record, trigger="safety")
        return record

    def _swap(self) -> None:
        """Old folder aside, staged folder in: two renames in one directory."""
        if self.target.exists():
            _copy_folder_identity(self.target, self.staging)
            self.previous = self.target.with_name(f".{self.target.name}.pre-restore-{uuid.uuid4().hex[:8]}")
            self.step("moving_aside", previous=self.previous.name)
            os.rename(self.target, self.previous)
        os.rename(self.staging, self.target)
        self.staging = None
        self.step("swapped")

    def _undo(self) -> None:
        if self.staging is not None and self.staging.exists():
            shutil.rmtree(self.staging, ignore_errors=True)
        if self.previous is not None and self.previous.exists():
            if self.target.exists():
                shutil.rmtree(self.target, ignore_errors=True)
            os.rename(self.previous, self.target)
            self.step("previous_files_back")
        if self.was_running:
            from servers import control

            try:
                if control.find_process(self.server.process_spec()) is None:
                    status = control.start(self.server.process_spec(), self._log)
                    Server.objects.filter(pk=self.server.pk).update(pid=status.pid, pid_create_time=status.create_time)
                    self.step("started_again", pid=status.pid)
            except Exception as exc:  # noqa: BLE001
                self.step("start_failed", error=str(exc))
                alert_open(kind="server_down", subject=server_subject(self.server),
                           title=f"{self.server.name} could not be started after a failed restore",
                           body=str(exc), recipients_extra=owner_emails(self.server))

    def _succeed(self) -> None:
        now = timezone.now()
        RestoreRequest.objects.filter(pk=self.restore.pk).update(
            status=RestoreRequest.Status.SUCCEEDED, finished_at=now, phase="done", heartbeat_at=now)
        if self.restore.kind == RestoreRequest.Kind.ROLLBACK and self.restore.rollback_of_id:
            RestoreRequest.objects.filter(pk=self.restore.rollback_of_id).update(status=RestoreRequest.Status.ROLLED_BACK)
        events.log_event("restore_succeeded", server=self.server, backup=self.restore.backup,
                         restore_id=self.restore.pk, kind=self.restore.kind)

    def _fail(self, exc: BaseException) -> None:
        code, message = _error_of(exc)
        if code == ErrorCode.BACKUP_FAILED.value:
            code = ErrorCode.RESTORE_FAILED.value
        if code == ErrorCode.INTERNAL_ERROR.value:
            logger.error("restore_internal_error restore_id=%s", self.restore.pk, exc_info=exc)
        RestoreRequest.objects.filter(pk=self.restore.pk).update(
            status=RestoreRequest.Status.FAILED, error_code=code, error_message=message[:2000],
            finished_at=timezone.now(), phase="failed")
        events.log_event("restore_failed", server=self.server, backup=self.restore.backup,
                         restore_id=self.restore.pk, code=code, error=message)
        alert_open(kind="restore_failed", subject=f"restore:{self.restore.pk}",
                   title=f"Restore of {self.server.name} failed",
                   body=f"{code}: {message}. The previous files were put back.",
                   recipients_extra=owner_emails(self.server))

    def _log(self, message: str) -> None:
        logger.info("server_control server_id=%s restore_id=%s %s", self.server.pk, self.restore.pk, message)


def _copy_folder_identity(source: Path, dest: Path) -> None:
    """The staged folder takes the server folder's mode and owner, so the
    swap does not leave a private 0700 folder the server user cannot read."""
    info = source.stat()
    os.chmod(dest, stat.S_IMODE(info.st_mode))
    if os.geteuid() == 0:
        os.chown(dest, info.st_uid, info.st_gid)


def check_restored_folder(target: Path, result) -> None:
    """The last look before the server starts on the restored files: the
    folder holds what the extraction counted."""
    count = sum(len(files) for _, _, files in os.walk(target))
    if count < result.file_count:
        raise DomainError(ErrorCode.RESTORE_FAILED, f"Restored folder holds {count} files, expected {result.file_count}")


def restore_recover(*, restore: RestoreRequest, now=None) -> bool:
    """For the reaper: a restore whose worker died. Puts the previous folder
    back if it was moved aside, removes staging, restarts the server."""
    ended = RestoreRequest.objects.filter(pk=restore.pk, status=RestoreRequest.Status.RUNNING).update(
        status=RestoreRequest.Status.FAILED, error_code=ErrorCode.WORKER_LOST.value,
        error_message="The worker running this restore stopped; the previous files were put back",
        finished_at=now or timezone.now(), phase="failed")
    if not ended:
        return False
    run = _Run(restore)
    run.was_running = bool(restore.server_was_running)
    parent = run.target.parent
    for entry in restore.steps:
        if entry.get("step") == "moving_aside":
            run.previous = parent / entry["previous"]
        if entry.get("step") == "extracted":
            run.staging = parent / entry["staging"]
    if any(e.get("step") == "committed" for e in restore.steps):
        # The restored folder was in place and checked: keep it, drop the old one.
        if run.previous is not None:
            shutil.rmtree(run.previous, ignore_errors=True)
        run.previous = None
    run._undo()
    events.log_event("restore_failed", server=restore.server, backup=restore.backup, restore_id=restore.pk,
                     code="WORKER_LOST")
    return True
