"""Re-checking old backups (issue #12): bit rot and lost files are found by
reading stored backups again, long after they were written.

A daily system task (`recheck_sweep`, beat's `system:recheck-backups`)
picks the stored backups — succeeded or failed, with a file, not deleted,
not running — whose last check (`rechecked_at`, else `verified_at`, else
`finished_at`) is older than BackupSettings.recheck_days (7 by default; 0:
never), the longest unchecked first, at most `recheck_batch` (10) a day, and
sends one `recheck_backup` task each to the queue of the backup's node (the
worker that sits on its disk), as "Verify" does. So every backup comes round
again about every `recheck_days`, as long as the batch keeps up with the
number of stored backups.

The run (`backup_recheck`) verifies the backup with every method, records
the result like any verification and sets `rechecked_at`. A backup that had
passed and now fails — a checksum mismatch is bit rot, but any failing
method counts, and so does a file gone from the disk — logs
`backup_recheck_failed` and opens the `backup_recheck_failed` alert for that
backup (once; a later re-check that passes closes it)."""

import logging
from datetime import timedelta

from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from backups import events, storage
from backups.alerts import alert_open, alert_resolve, owner_emails
from backups.models import BackupRecord, BackupSettings
from backups.services import actions, copy_source, lifecycle
from mcsite.errors import DomainError

logger = logging.getLogger("mcsite.backups")

ALERT_KIND = "backup_recheck_failed"
STORED = (BackupRecord.Status.SUCCEEDED, BackupRecord.Status.FAILED)
SNAPSHOT_SAMPLE = 0.25  # share of a snapshot's files a re-check reads beside the world's


def recheck_candidates(*, now=None, config: BackupSettings | None = None):
    """The backups the next sweep re-checks, oldest check first (empty when
    re-checks are off)."""
    config = config or BackupSettings.load()
    if not config.recheck_days:
        return BackupRecord.objects.none()
    cutoff = (now or timezone.now()) - timedelta(days=config.recheck_days)
    return (BackupRecord.objects.filter(status__in=STORED, local_removed_at__isnull=True)  # else: its copy's re-check
            .filter(~Q(storage_path="") | ~Q(snapshot_id="")).exclude(filename="")
            .annotate(last_check=Coalesce("rechecked_at", "verified_at", "finished_at", "created_at"))
            .filter(last_check__lt=cutoff)
            .select_related("server")
            .order_by(F("last_check").asc(), "pk")[:config.recheck_batch])


def recheck_sweep(*, now=None) -> list[int]:
    """Sends a re-check of each due backup to its node's queue; the ids sent."""
    sent = []
    for record in recheck_candidates(now=now):
        queue = storage.node_of(record)
        try:
            lifecycle.send_task("recheck_backup", kwargs={"backup_id": record.pk}, queue=queue)
        except Exception as exc:  # noqa: BLE001 — one refused message must not stop the others
            logger.error("recheck_enqueue_failed backup_id=%s queue=%s error=%s", record.pk, queue,
                         type(exc).__name__)
            continue
        sent.append(record.pk)
    logger.info("recheck_sweep queued=%d", len(sent))
    return sent


def backup_recheck_by_id(*, backup_id: int) -> BackupRecord | None:
    """The task's entry: the backup may have been deleted since it was
    queued; then there is nothing to re-check."""
    record = BackupRecord.objects.select_related("server", "server__owner").filter(pk=backup_id).first()
    if record is None or record.status not in STORED or not (record.storage_path or record.is_snapshot):
        return None
    return backup_recheck(record=record)


def backup_recheck(*, record: BackupRecord) -> BackupRecord:
    """Verifies a stored backup again, sets `rechecked_at`, and alerts when a
    backup that had passed fails now."""
    passed_before = record.verification_passed is True
    problem = ""
    if record.is_snapshot and not copy_source.snapshot_readable(record):
        problem = "its repository is missing"
    elif not record.is_snapshot and not storage.file_present(record):
        problem = "its file is missing from the backup disk"
    else:
        try:
            # A snapshot shares its blobs with the others: a sample of its files is read (the world always).
            record = actions.backup_verify(record=record, alert=False,
                                           sample=SNAPSHOT_SAMPLE if record.is_snapshot else None)
        except DomainError as exc:  # the file went between the look and the read
            problem = exc.message
        except Exception as exc:  # noqa: BLE001 — an unreadable file is a finding, not a crash
            problem = lifecycle.classify(exc)[1]
    if problem:
        record.refresh_from_db()
        if record.status not in STORED:
            return record  # deleted (by a user or retention) meanwhile: nothing to report
    BackupRecord.objects.filter(pk=record.pk).update(rechecked_at=timezone.now())
    record.refresh_from_db()
    subject = f"backup:{record.pk}"
    if problem or not record.verification_passed:
        failed = problem or ", ".join(lifecycle.failed_methods(record.verification)) or "verification"
        events.log_event("backup_recheck_failed", server=record.server, backup=record,
                         passed_before=passed_before, failed=failed)
        if passed_before:
            what = problem if problem else f"{failed} failed"
            alert_open(kind=ALERT_KIND, subject=subject,
                       title=f"Backup {record.filename} of {record.server_name} fails its re-check",
                       body=(f"{record.filename} of {record.server_name} passed its verification before; "
                             f"read again now, {what}. "
                             + ("A checksum that no longer matches means the file changed on disk (bit rot "
                                "or a damaged disk). " if "checksum" in failed else "")
                             + "Take a new backup, and do not rely on this one for a restore."),
                       recipients_extra=owner_emails(record.server))
    else:
        alert_resolve(kind=ALERT_KIND, subject=subject)
    return record
