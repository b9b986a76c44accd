"""Back up a server now, in this process, with a progress bar.

Exit codes: 0 backed up and verified; 1 the backup failed; 2 bad arguments
or unknown server; 3 a backup was written but its verification failed;
4 another backup or restore of the server is in progress."""

from django.core.management.base import BaseCommand, CommandError

from backups.management.lookup import server_arg
from backups.management.progress import progress_bar
from backups.models import BackupRecord
from backups.services.runs import backup_run, backup_trigger
from mcsite.errors import DomainError, ErrorCode


class Command(BaseCommand):
    help = "Back up a server now (by id or name) and verify the backup."

    def add_arguments(self, parser):
        parser.add_argument("server", help="server id or name")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, server: str, no_progress: bool = False, **options):
        target = server_arg(server)
        try:
            record = backup_trigger(server=target, source="command", enqueue=False)
        except DomainError as exc:
            busy = exc.code in (ErrorCode.BACKUP_IN_PROGRESS, ErrorCode.RESTORE_IN_PROGRESS)
            raise CommandError(f"{exc.code.value}: {exc.message}", returncode=4 if busy else 1) from None

        with progress_bar(f"backup {target.name}", enabled=not no_progress) as observer:
            backup_run(backup_id=record.pk, observer=observer)
        record.refresh_from_db()
        if record.status != BackupRecord.Status.SUCCEEDED:
            raise CommandError(f"Backup failed — {record.error_code}: {record.error_message}", returncode=1)
        self.stdout.write(
            f"{record.filename}  {record.size_bytes} bytes  sha256:{record.sha256}  "
            f"quality {record.quality_score} ({record.quality_level})"
        )
        if not record.verification_passed:
            raise CommandError("The backup was written but its verification failed", returncode=3)
        self.stdout.write(self.style.SUCCESS("Backup succeeded and verified"))
