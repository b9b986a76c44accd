"""Per-backup actions: verify again, lock/unlock, delete."""

from django.db import transaction
from django.utils import timezone

from backups import engine, events, storage
from backups.alerts import alert_open, owner_emails
from backups.models import BackupRecord, BackupSettings
from backups.offsite import OffsiteError
from backups.services import config as config_service
from backups.services import copy_source, files, lifecycle, snapshots
from backups.services.contents import contents_store
from backups.services.offsite import copies_schedule_delete
from mcsite.audit import audit
from mcsite.errors import DomainError, ErrorCode


def _require_source(record: BackupRecord) -> copy_source.Source:
    """The local file, else the best verified off-site copy (issue #13)."""
    source = None
    if record.status in (BackupRecord.Status.SUCCEEDED, BackupRecord.Status.FAILED):
        source = copy_source.source_for(record)
    if source is None:
        raise DomainError(ErrorCode.BACKUP_NOT_FOUND,
                          "The backup file is not there (deleted or never written) and it has no verified off-site copy")
    return source


def backup_verify_request(*, record: BackupRecord, actor, request=None, source: str = "api") -> BackupRecord:
    """Queues a verification on the worker that sits on the backup's disk: it
    reads the whole archive, which is no work for a web process."""
    _require_source(record)
    queue = storage.node_of(record)
    transaction.on_commit(lambda: lifecycle.send_task("verify_backup", kwargs={"backup_id": record.pk}, queue=queue))
    audit(actor=actor, action="backup.verify", obj=record, request=request, source=source)
    return record


def backup_verify_by_id(*, backup_id: int) -> BackupRecord | None:
    """The verify task's entry: the record may have been deleted since it was queued."""
    record = BackupRecord.objects.filter(pk=backup_id).first()
    if record is None or record.status == BackupRecord.Status.DELETED:
        return None
    return backup_verify(record=record)


def backup_verify(*, record: BackupRecord, restore_test: bool | None = None, progress=None, actor=None,
                  source: str = "system", alert: bool = True, sample: float | None = None) -> BackupRecord:
    """Verifies a stored backup again with every method and records the result.
    `alert=False`: the caller sends its own alert (the periodic re-check).

    Without the local file, the best verified off-site copy is read as a
    stream (nothing written locally; no restore test, which needs the file).
    A copy whose bytes differ from the record is retired (failed, alerted)
    and the next verified copy is read; the last one's report is kept."""
    settings_row = BackupSettings.load()
    options = dict(expected_sha256=record.sha256 or None, keyring=config_service.decryption_keyring(settings_row),
                   check_world=settings_row.verify_world, progress=progress)
    options["restore_test"] = settings_row.restore_test if restore_test is None else restore_test
    while True:
        read_from = _require_source(record)
        if read_from.snapshot:  # issue #14: every blob read and authenticated, the world validated as it streams
            report = snapshots.snapshot_verify(record, check_world=settings_row.verify_world, sample=sample)
            break
        if read_from.is_local:
            report = engine.verify_backup(storage.absolute_path(record.storage_path), **options)
            break
        report, retired = _verify_copy(record, read_from.copy, options)
        if not retired or not copy_source.verified_copies(record):
            break
    fields = lifecycle.verification_fields(report, keep_world_of=record)
    fields["verification"]["source"] = read_from.describe()
    BackupRecord.objects.filter(pk=record.pk).update(**fields)
    contents_store(record=record, report=report)  # "Verify again" fills the list of older backups
    record.refresh_from_db()
    if actor is not None:
        audit(actor=actor, action="backup.verify", obj=record, source=source,
              outcome="success" if report.ok else "failure", detail={"quality_score": report.quality_score})
    if not report.ok:
        failed = lifecycle.failed_methods(record.verification)
        server = record.server
        if lifecycle.is_corrupt(record.verification):
            events.log_event("corruption_detected", server=server, backup=record, methods=",".join(failed))
            if alert:
                alert_open(kind="corruption", subject=f"backup:{record.pk}", title=f"Corrupt backup {record.filename}",
                           body=f"{record.filename} of {record.server_name} failed {', '.join(failed)}.",
                           recipients_extra=owner_emails(server))
        events.log_event("verification_failed", server=server, backup=record, methods=",".join(failed))
    return record


def _verify_copy(record: BackupRecord, copy, options: dict):
    """(report, retired): one verification read of a copy; a copy whose
    SHA-256 differs from the record's is retired."""
    try:
        with copy_source.opened_copy(copy) as (_target, stream):
            report = engine.verify_backup(f"{copy.target.name}:{copy.remote_name}", fileobj=stream,
                                          size=record.size_bytes, **options)
    except OffsiteError as exc:  # the target failed mid-read: says nothing about the backup
        raise copy_source.domain_error(exc, copy) from None
    checksum = report.methods["checksum"]
    retired = not checksum.ok and not checksum.skipped
    if retired:
        copy_source.copy_corrupted(copy, "; ".join(checksum.errors) or "SHA-256 differs")
    return report, retired


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
        files.remove_on_its_node(record)
        copies_schedule_delete(record, by_age=False)  # its off-site copies go too, after a target's delay
        record.status = BackupRecord.Status.DELETED
        record.deleted_at = timezone.now()
        record.save(update_fields=["status", "deleted_at"])
    audit(actor=actor, action="backup.delete", obj=record, request=request, source=source)
    return record
