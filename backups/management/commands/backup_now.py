"""Back up a server now, in this process, with a progress bar per phase.

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
from mcsite.errors import DomainError


class Command(BaseCommand):
    help = "Back up a server now (by name, folder or id) and verify the backup."

    def add_arguments(self, parser):
        parser.add_argument("server", help="server name (any case), folder or id")
        add_progress_argument(parser)

    def handle(self, *args, server: str, no_progress: bool = False, **options):
        target = server_here(server)
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
