"""Verify stored backups again (checksum, archive read-back, world
validation, optionally a restore test). Exit code 0 when every backup
checked passes, 1 when any fails, 2 for bad arguments."""

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q

from backups import storage
from backups.management.cli import add_progress_argument, verification_failures
from backups.management.lookup import server_arg
from backups.management.progress import phase_progress
from backups.models import BackupRecord
from backups.services import snapshots
from backups.services.actions import backup_verify


class Command(BaseCommand):
    help = "Verify stored backups of one server (or all) and record the results."

    def add_arguments(self, parser):
        parser.add_argument("--server", help="server name (any case), folder or id (default: every server)")
        parser.add_argument("--backup", help="one backup file name (with --server)")
        parser.add_argument("--restore-test", action="store_true", help="also extract each backup and compare")
        add_progress_argument(parser)

    def handle(self, *args, server=None, backup=None, restore_test=False, no_progress=False, **options):
        records = BackupRecord.objects.filter(status__in=[BackupRecord.Status.SUCCEEDED, BackupRecord.Status.FAILED])
        if server:
            records = records.filter(server=server_arg(server))
        elif backup:
            raise CommandError("--backup needs --server", returncode=2)
        if backup:
            records = records.filter(filename=backup)
        # Only the backups whose files are on this host (issue #15: another game host's are verified there),
        # and snapshots whose repository this host reads (issue #14).
        records = [r for r in records.filter(~Q(storage_path="") | ~Q(snapshot_id="")).select_related(
                       "server", "repository").order_by("server_name", "created_at")
                   if (snapshots.readable_here(r.repository) if r.is_snapshot else storage.file_visible_here(r))]
        if not records:
            raise CommandError("No stored backups match", returncode=2)
        failures = 0
        # One bar per backup (its bytes read back), results printed between bars.
        with phase_progress(self.stderr, enabled=not no_progress, plain_lines=False) as progress:
            for number, record in enumerate(records, 1):
                progress.start(f"[{number}/{len(records)}] {record.server_name}/{record.filename}")
                result = backup_verify(record=record, restore_test=restore_test or None, source="command",
                                       progress=lambda done, total: progress.advance(done, total))
                progress.finish(ok=True)
                mark = "ok  " if result.verification_passed else "FAIL"
                lines = [f"{mark} {result.server_name}/{result.filename} quality {result.quality_score} "
                         f"({result.quality_level})"]
                if not result.verification_passed:
                    failures += 1
                    lines += verification_failures(result.verification)
                for line in lines:
                    progress.write(line, self.stdout)
        if failures:
            raise CommandError(f"{failures} of {len(records)} backups failed verification", returncode=1)
        self.stdout.write(self.style.SUCCESS(f"All {len(records)} backups verified"))
