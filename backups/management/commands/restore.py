"""Restore a server from one of its backups, with a preview, a confirmation
and a progress bar per phase. Exit codes: 0 restored; 1 the restore failed
(the previous files were put back); 2 bad arguments, unknown server or
backup, a --path not in the backup; 4 another backup or restore is in progress;
5 not confirmed. --path (repeatable) restores only that part (a dimension's
folder, the player data, one file); everything else stays as it is."""

from django.core.management.base import BaseCommand, CommandError

from backups.management.cli import add_progress_argument, confirmed, refused, run_restore
from backups.management.lookup import server_here
from backups.services.restores import restore_preview, restore_request
from mcsite.errors import DomainError, ErrorCode


class Command(BaseCommand):
    help = "Restore a server's folder from one of its backups (a safety backup is taken first)."

    def add_arguments(self, parser):
        parser.add_argument("server", help="server name (any case), folder or id")
        parser.add_argument("backup_filename", help="e.g. server_backup_20250114_020000.tar.gz")
        parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
        parser.add_argument("--preview", action="store_true", help="only show the preview")
        parser.add_argument("--replace-excluded", action="store_true",
                            help="the folder becomes exactly the backup: what backups exclude (logs/, …) is "
                                 "removed too (by default it is kept from the current folder)")
        parser.add_argument("--path", action="append", dest="paths", default=[], metavar="PATH",
                            help="restore only this folder-relative path of the backup, e.g. world/DIM-1 "
                                 "(repeatable); everything else in the server folder stays as it is")
        add_progress_argument(parser)

    def handle(self, *args, server, backup_filename, yes=False, preview=False, no_progress=False,
               replace_excluded=False, paths=(), **options):
        target = server_here(server)
        keep_excluded = not replace_excluded
        paths = list(paths or ())
        try:
            info = restore_preview(server=target, backup_filename=backup_filename, keep_excluded=keep_excluded,
                                   paths=paths)
        except DomainError as exc:
            if exc.code == ErrorCode.VALIDATION_ERROR:
                raise CommandError(f"{exc.code.value}: {exc.message}", returncode=2) from None
            raise refused(exc, not_found=2) from None
        contents = info["contents"]
        self.stdout.write(f"Backup {backup_filename}: {contents['file_count']} files, "
                          f"{contents['total_bytes']} bytes, world {contents['world_name']!r} "
                          f"(Minecraft {contents['minecraft_version']})")
        for part in info["paths"]:
            self.stdout.write(f"  only {part['path']}: {part['file_count']} files, {part['size_bytes']} bytes")
        for warning in info["warnings"]:  # the API's option names, as the command spells them
            warning = warning.replace("Restore with keep_excluded false", "Restore with --replace-excluded")
            warning = warning.replace("With keep_excluded false", "With --replace-excluded")
            self.stdout.write(self.style.WARNING(f"  ! {warning}"))
        if preview:
            return
        what = ", ".join(p["path"] for p in info["paths"]) if info["paths"] else "the files"
        if not yes and not confirmed(f"Replace {what} of {target.name} with this backup?"):
            raise CommandError("Not confirmed; nothing changed", returncode=5)
        try:
            restore = restore_request(server=target, backup_filename=backup_filename, actor=None,
                                      source="command", enqueue=False, keep_excluded=keep_excluded, paths=paths)
        except DomainError as exc:
            raise refused(exc) from None

        restore = run_restore(self, restore, no_progress=no_progress, verbosity=options.get("verbosity", 1))
        safety = restore.safety_backup.filename if restore.safety_backup else "none"
        self.stdout.write(self.style.SUCCESS(f"Restored {target.name} from {backup_filename} "
                                             f"(safety backup: {safety}; restore id {restore.pk}; "
                                             f"undo with: manage.py rollback {target.pk} {restore.pk})"))
