"""Per-backup actions: verify again, lock/unlock, delete."""

from django.db import transaction
from django.utils import timezone

from backups import engine, events, storage
from backups.alerts import alert_open, owner_emails
from backups.models import BackupRecord, BackupSettings
from backups.services import config as config_service
from backups.services.runs import verification_dict
from mcsite.audit import audit
from mcsite.errors import DomainError, ErrorCode


def _require_file(record: BackupRecord):
    if record.status not in (BackupRecord.Status.SUCCEEDED, BackupRecord.Status.FAILED) or not storage.file_present(record):
        raise DomainError(ErrorCode.BACKUP_NOT_FOUND, "The backup file is not there (deleted or never written)")
    return storage.absolute_path(record.storage_path)


def backup_verify_request(*, record: BackupRecord, actor, request=None, source: str = "api") -> BackupRecord:
    """Queues a verification on the worker that sits on the backup's disk: it
    reads the whole archive, which is no work for a web process."""
    from backups import tasks

    _require_file(record)
    transaction.on_commit(lambda: tasks.enqueue_verify(record))
    audit(actor=actor, action="backup.verify", obj=record, request=request, source=source)
    return record


def backup_verify(*, record: BackupRecord, restore_test: bool | None = None, progress=None, actor=None,
                  source: str = "system") -> BackupRecord:
    """Verifies a stored backup again with every method and records the result."""
    path = _require_file(record)
    settings_row = BackupSettings.load()
    report = engine.verify_backup(
        path, expected_sha256=record.sha256 or None, keyring=config_service.decryption_keyring(settings_row),
        check_world=settings_row.verify_world,
        restore_test=settings_row.restore_test if restore_test is None else restore_test, progress=progress,
    )
    now = timezone.now()
    BackupRecord.objects.filter(pk=record.pk).update(
        verification=verification_dict(report), verified_at=now, verification_passed=report.ok,
        quality_score=report.quality_score, quality_level=report.quality_level,
        world_name=report.world_name or record.world_name,
        minecraft_version=report.minecraft_version or record.minecraft_version,
    )
    record.refresh_from_db()
    if actor is not None:
        audit(actor=actor, action="backup.verify", obj=record, source=source,
              outcome="success" if report.ok else "failure", detail={"quality_score": report.quality_score})
    if not report.ok:
        failed = [n for n, m in report.to_dict().get("methods", {}).items() if not m.get("ok") and not m.get("skipped")]
        server = record.server
        if {"checksum", "archive_integrity"} & set(failed):
            events.log_event("corruption_detected", server=server, backup=record, methods=",".join(failed))
            alert_open(kind="corruption", subject=f"backup:{record.pk}", title=f"Corrupt backup {record.filename}",
                       body=f"{record.filename} of {record.server_name} failed {', '.join(failed)}.",
                       recipients_extra=owner_emails(server))
        events.log_event("verification_failed", server=server, backup=record, methods=",".join(failed))
    return record


def backup_lock(*, record: BackupRecord, locked: bool, actor, request=None, source: str = "api") -> BackupRecord:
    if record.status == BackupRecord.Status.DELETED:
        raise DomainError(ErrorCode.BACKUP_NOT_FOUND, "The backup was deleted")
    BackupRecord.objects.filter(pk=record.pk).update(locked=locked)
    record.locked = locked
    audit(actor=actor, action="backup.lock" if locked else "backup.unlock", obj=record, request=request, source=source)
    return record


def backup_delete(*, record: BackupRecord, actor, request=None, source: str = "api") -> BackupRecord:
    with transaction.atomic():
        record = BackupRecord.objects.select_for_update().get(pk=record.pk)
        if record.is_active:
            raise DomainError(ErrorCode.BACKUP_IN_PROGRESS, "The backup is still running")
        if record.status == BackupRecord.Status.DELETED:
            raise DomainError(ErrorCode.BACKUP_NOT_FOUND, "The backup was already deleted")
        if record.locked:
            raise DomainError(ErrorCode.PERMISSION_DENIED, "The backup is locked; unlock it before deleting it")
        storage.remove_backup_file(record)
        record.status = BackupRecord.Status.DELETED
        record.deleted_at = timezone.now()
        record.save(update_fields=["status", "deleted_at"])
    audit(actor=actor, action="backup.delete", obj=record, request=request, source=source)
    return record
