"""Back up a server now, in this process, with a progress bar per phase.

``--full-read`` (incremental servers): the snapshot reads every file, even
those whose size, mtime and inode match the last snapshot.

Exit codes: 0 backed up and verified; 1 the backup failed; 2 bad arguments
or unknown server; 3 a backup was written but its verification failed;
4 another backup or restore of the server is in progress."""

from django.core.management.base import BaseCommand, CommandError

from backups.management.cli import add_progress_argument, refused, verification_failures
from backups.management.lookup import server_here
from backups.management.progress import phase_progress
from backups.models import BackupRecord
from backups.services.lifecycle import failed_methods
from backups.services.runs import backup_run, backup_trigger
from backups.services.snapshots import repository_full_read_next
from mcsite.errors import DomainError


class Command(BaseCommand):
    help = "Back up a server now (by name, folder or id) and verify the backup."

    def add_arguments(self, parser):
        parser.add_argument("server", help="server name (any case), folder or id")
        parser.add_argument("--full-read", action="store_true",
                            help="incremental servers: read every file, even those unchanged since the last snapshot")
        add_progress_argument(parser)

    def handle(self, *args, server: str, no_progress: bool = False, full_read: bool = False, **options):
        target = server_here(server)
        try:
            if full_read:
                repository_full_read_next(server=target, source="command")
        except DomainError as exc:
            raise CommandError(f"--full-read: {exc.message}", returncode=2) from None
        try:
            record = backup_trigger(server=target, source="command", enqueue=False)
        except DomainError as exc:
            raise refused(exc) from None

        with phase_progress(self.stderr, enabled=not no_progress, first="checking",
                            plain_lines=options.get("verbosity", 1) > 0) as progress:
            backup_run(backup_id=record.pk, observer=progress.observe)
            record.refresh_from_db()
            progress.finish(ok=record.status == BackupRecord.Status.SUCCEEDED)
        failed = failed_methods(record.verification)
        if record.status != BackupRecord.Status.SUCCEEDED:
            self._explain(record)
            raise CommandError(f"Backup failed — {record.error_code}: {record.error_message}", returncode=1)
        self.stdout.write(
            f"{record.filename}  {record.size_bytes} bytes  sha256:{record.sha256}  "
            f"quality {record.quality_score} ({record.quality_level})"
        )
        if not record.verification_passed:
            self._explain(record)
            why = f": {', '.join(failed)} failed" if failed else ""
            raise CommandError(f"The backup was written but its verification failed{why}", returncode=3)
        self.stdout.write(self.style.SUCCESS("Backup succeeded and verified"))

    def _explain(self, record: BackupRecord) -> None:
        for line in verification_failures(record.verification):
            self.stdout.write(line)
