import logging

from django.db import transaction
from django.utils import timezone

from backups import storage
from backups.models import BackupRecord

logger = logging.getLogger("mcsite.backups")


def backups_detach_or_delete(*, server, delete_files: bool) -> int:
    """Before a server is deleted: either delete its backups (files removed,
    records marked deleted) or keep them as the owner's, tied to no server."""
    records = BackupRecord.objects.filter(server=server)
    count = 0
    with transaction.atomic():
        for record in records.select_for_update():
            if delete_files and record.status != BackupRecord.Status.DELETED:
                storage.remove_backup_file(record)
                record.status = BackupRecord.Status.DELETED
                record.deleted_at = timezone.now()
            record.server = None
            record.save(update_fields=["server", "status", "deleted_at"])
            count += 1
    return count
