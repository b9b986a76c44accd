"""Restore a server from one of its backups, with a preview, a confirmation
and a progress bar. Exit codes: 0 restored; 1 the restore failed (the
previous files were put back); 2 bad arguments, unknown server or backup;
4 another backup or restore is in progress; 5 not confirmed."""

from django.core.management.base import BaseCommand, CommandError

from backups.management.lookup import server_arg
from backups.management.progress import progress_bar
from backups.models import RestoreRequest
from backups.services.restore_run import restore_run
from backups.services.restores import restore_preview, restore_request
from mcsite.errors import DomainError, ErrorCode


class Command(BaseCommand):
    help = "Restore a server's folder from one of its backups (a safety backup is taken first)."

    def add_arguments(self, parser):
        parser.add_argument("server", help="server id or name")
        parser.add_argument("backup_filename", help="e.g. server_backup_20250114_020000.tar.gz")
        parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
        parser.add_argument("--preview", action="store_true", help="only show the preview")

    def handle(self, *args, server, backup_filename, yes=False, preview=False, **options):
        target = server_arg(server)
        try:
            info = restore_preview(server=target, backup_filename=backup_filename)
        except DomainError as exc:
            raise CommandError(f"{exc.code.value}: {exc.message}", returncode=2 if exc.http_status == 404 else 1) from None
        contents = info["contents"]
        self.stdout.write(f"Backup {backup_filename}: {contents['file_count']} files, "
                          f"{contents['total_bytes']} bytes, world {contents['world_name']!r} "
                          f"(Minecraft {contents['minecraft_version']})")
        for warning in info["warnings"]:
            self.stdout.write(self.style.WARNING(f"  ! {warning}"))
        if preview:
            return
        if not yes:
            try:
                answer = input(f"Replace the files of {target.name} with this backup? Type 'yes': ")
            except (EOFError, KeyboardInterrupt):  # no one to answer (cron, CI): that is a no
                answer = ""
            if answer.strip().lower() != "yes":
                raise CommandError("Not confirmed; nothing changed", returncode=5)
        try:
            restore = restore_request(server=target, backup_filename=backup_filename, actor=None,
                                      source="command", enqueue=False)
        except DomainError as exc:
            busy = exc.code in (ErrorCode.BACKUP_IN_PROGRESS, ErrorCode.RESTORE_IN_PROGRESS)
            raise CommandError(f"{exc.code.value}: {exc.message}", returncode=4 if busy else 1) from None

        with progress_bar(f"restore {target.name}") as observer:
            restore_run(restore_id=restore.pk, observer=observer)
        restore.refresh_from_db()
        if restore.status != RestoreRequest.Status.SUCCEEDED:
            raise CommandError(f"Restore failed — {restore.error_code}: {restore.error_message}", returncode=1)
        safety = restore.safety_backup.filename if restore.safety_backup else "none"
        self.stdout.write(self.style.SUCCESS(f"Restored {target.name} from {backup_filename} "
                                             f"(safety backup: {safety}; restore id {restore.pk})"))
