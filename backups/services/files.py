"""A backup's file is removed by the game host whose backup root holds it
(issue #15): here when this process is that node, else by a task on that
node's queue once the caller's transaction has committed (the record says
deleted, or its local file dropped, before the node looks)."""

import logging

from django.conf import settings
from django.db import transaction

from backups import storage
from backups.services import lifecycle, snapshots

logger = logging.getLogger("mcsite.backups")


def discard_here(record) -> bool:
    """The record's file removed, or its snapshot forgotten from its
    repository (issue #14: the blobs go at the next prune)."""
    if record.snapshot_id and record.repository_id:
        try:
            return snapshots.snapshot_forget(record)
        except Exception as exc:  # noqa: BLE001 — an unreachable repository keeps the snapshot; logged
            logger.error("snapshot_forget_failed backup_id=%s error=%s", record.pk, exc)
            return False
    return storage.remove_backup_file(record)


def remove_on_its_node(record) -> bool:
    """True when removed here; False when there was nothing or it was sent."""
    node = storage.node_of(record)
    on_target = record.repository_id is not None and record.repository.target_id is not None
    if node == settings.MCSITE_NODE or (record.snapshot_id and on_target):
        return discard_here(record)
    if not record.storage_path and not record.snapshot_id:
        return False
    backup_id = record.pk

    def send():
        try:
            lifecycle.send_task("remove_backup_file", kwargs={"backup_id": backup_id}, queue=node)
        except Exception as exc:  # noqa: BLE001 — logged: the file stays on that host until removed by hand
            logger.error("remove_file_send_failed backup_id=%s node=%s error=%s", backup_id, node, type(exc).__name__)

    transaction.on_commit(send)
    return False


def remove_here(*, backup_id: int) -> bool:
    """The task's side: only a deleted record's file, or a dropped local file."""
    from backups.models import BackupRecord

    record = BackupRecord.objects.filter(pk=backup_id).first()
    if record is None or not (record.status == BackupRecord.Status.DELETED or record.local_removed_at is not None):
        return False
    return discard_here(record)
