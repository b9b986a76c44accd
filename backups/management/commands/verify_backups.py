"""Verify stored backups again (checksum, archive read-back, world
validation, optionally a restore test). Exit code 0 when every backup
checked passes, 1 when any fails, 2 for bad arguments."""

import sys

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from backups import storage
from backups.management.lookup import server_arg
from backups.models import BackupRecord
from backups.services.actions import backup_verify
from backups.services.lifecycle import failed_methods


class Command(BaseCommand):
    help = "Verify stored backups of one server (or all) and record the results."

    def add_arguments(self, parser):
        parser.add_argument("--server", help="server id or name (default: every server)")
        parser.add_argument("--backup", help="one backup file name (with --server)")
        parser.add_argument("--restore-test", action="store_true", help="also extract each backup and compare")

    def handle(self, *args, server=None, backup=None, restore_test=False, **options):
        records = BackupRecord.objects.filter(status__in=[BackupRecord.Status.SUCCEEDED, BackupRecord.Status.FAILED])
        if server:
            records = records.filter(server=server_arg(server))
        elif backup:
            raise CommandError("--backup needs --server", returncode=2)
        if backup:
            records = records.filter(filename=backup)
        records = [r for r in records.exclude(storage_path="").order_by("server_name", "created_at") if storage.file_present(r)]
        if not records:
            raise CommandError("No stored backups match", returncode=2)
        failures = 0
        for record in tqdm(records, desc="verify", unit="backup", file=sys.stderr, dynamic_ncols=True):
            result = backup_verify(record=record, restore_test=restore_test or None, source="command")
            mark = "ok  " if result.verification_passed else "FAIL"
            self.stdout.write(f"{mark} {result.server_name}/{result.filename} quality {result.quality_score} "
                              f"({result.quality_level})")
            if not result.verification_passed:
                failures += 1
                methods = result.verification.get("methods", {})
                for name in failed_methods(result.verification):
                    for error in methods[name].get("errors", [])[:5]:
                        self.stdout.write(f"       {name}: {error}")
        if failures:
            raise CommandError(f"{failures} of {len(records)} backups failed verification", returncode=1)
        self.stdout.write(self.style.SUCCESS(f"All {len(records)} backups verified"))
