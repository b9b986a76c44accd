import logging

from django.db import transaction
from django.utils import timezone

from backups import storage
from backups.services import files
from backups.models import BackupRecord
from backups.services.offsite import copies_schedule_delete

logger = logging.getLogger("mcsite.backups")


def backups_detach_or_delete(*, server, delete_files: bool) -> int:
    """Before a server is deleted: either delete its backups (files removed,
    records marked deleted) or keep them, tied to no server, as the backups
    of the server's last owner. Either way they remember the server's folder:
    while kept backups exist, no other user may put a server on it (it still
    holds the world they were taken from; servers.services)."""
    from servers.models import Server  # backups builds on servers

    records = BackupRecord.objects.filter(server=server)
    count = 0
    with transaction.atomic():
        # The owner and folder as they are now, not as a caller loaded them.
        owner_id, directory = (Server.objects.select_for_update().filter(pk=server.pk)
                               .values_list("owner_id", "directory").first() or (server.owner_id, server.directory))
        for record in records.select_for_update():
            if delete_files and record.status != BackupRecord.Status.DELETED:
                files.remove_on_its_node(record)
                copies_schedule_delete(record, by_age=False)  # its off-site copies too (issue #13)
                record.status = BackupRecord.Status.DELETED
                record.deleted_at = timezone.now()
            record.node = storage.node_of(record)  # where its file stays once no server says so
            record.server = None
            record.owner_id = owner_id
            record.server_directory = directory
            record.save(update_fields=["server", "owner", "server_directory", "status", "deleted_at", "node"])
            count += 1
    return count
