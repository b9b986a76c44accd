"""Roll back a restore: bring the server's folder back as it was before
its latest succeeded restore (or the one given), from that restore's
safety backup, with a confirmation and a progress bar per phase.

Exit codes, as for `restore`: 0 rolled back; 1 the rollback failed (its
message says whether the previous files were put back); 2 bad arguments,
unknown server, no such restore or nothing to roll back; 4 another backup
or restore is in progress; 5 not confirmed."""

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from backups.management.cli import add_progress_argument, confirmed, refused, run_restore
from backups.management.lookup import server_here
from backups.models import BackupRecord, RestoreRequest
from backups.services.restores import restore_preview, restore_rollback
from mcsite.errors import DomainError, ErrorCode

SPARE_BYTES = 64 * 2**20


def _when(moment) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M %Z") if moment else "?"


class Command(BaseCommand):
    help = "Undo a server's latest restore (or the one given) from the safety backup it took."

    def add_arguments(self, parser):
        parser.add_argument("server", help="server name (any case), folder or id")
        parser.add_argument("restore_id", nargs="?", help="the restore to roll back (default: the latest)")
        parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
        add_progress_argument(parser)

    def handle(self, *args, server, restore_id=None, yes=False, no_progress=False, **options):
        target = server_here(server)
        restore = self._restore(target, restore_id)
        safety = restore.safety_backup
        if safety is None or safety.status != BackupRecord.Status.SUCCEEDED:
            raise CommandError(f"Restore #{restore.pk} has no safety backup to roll back to", returncode=2)
        try:
            info = restore_preview(server=target, backup_filename=safety.filename)
        except DomainError as exc:
            raise refused(exc, not_found=2) from None

        contents = info["contents"]
        self.stdout.write(f"Rollback of restore #{restore.pk} of {target.name} (from {restore.backup_filename}, "
                          f"finished {_when(restore.finished_at)})")
        self.stdout.write(f"Brings back the safety backup {safety.filename} taken {_when(safety.taken_at)}: "
                          f"the folder as it was before that restore, {contents['file_count']} files, "
                          f"{contents['total_bytes']} bytes, world {contents['world_name']!r} "
                          f"(Minecraft {contents['minecraft_version']})")
        self.stdout.write(self.style.WARNING(f"  ! Whatever changed in the folder since restore #{restore.pk} "
                                             "is replaced."))
        if info["server_running"]:
            self.stdout.write(self.style.WARNING("  ! The server is running and will be stopped during the "
                                                 "rollback, then started again."))
        space = info["space"]
        if space["needed_bytes"] + SPARE_BYTES > space["free_bytes"]:
            self.stdout.write(self.style.WARNING(
                f"  ! Not enough free space: about {space['needed_bytes'] // 2**20} MiB needed, "
                f"{space['free_bytes'] // 2**20} MiB free."))
        if not yes and not confirmed(f"Roll {target.name} back to before restore #{restore.pk}?"):
            raise CommandError("Not confirmed; nothing changed", returncode=5)
        try:
            rollback = restore_rollback(restore=restore, actor=None, source="command", enqueue=False)
        except DomainError as exc:
            if exc.code == ErrorCode.VALIDATION_ERROR:
                raise CommandError(f"{exc.code.value}: {exc.message}", returncode=2) from None
            raise refused(exc, not_found=2) from None

        rollback = run_restore(self, rollback, no_progress=no_progress, verbosity=options.get("verbosity", 1),
                               what="Rollback")
        kept = f"; safety backup: {rollback.safety_backup.filename}" if rollback.safety_backup else ""
        self.stdout.write(self.style.SUCCESS(f"Rolled back {target.name} to before restore #{restore.pk} "
                                             f"(rollback id {rollback.pk}{kept})"))

    def _restore(self, server, restore_id) -> RestoreRequest:
        restores = RestoreRequest.objects.filter(server=server).select_related("safety_backup")
        if restore_id is None:
            restore = (restores.filter(kind=RestoreRequest.Kind.RESTORE, status=RestoreRequest.Status.SUCCEEDED)
                       .order_by("-finished_at", "-pk").first())
            if restore is None:
                raise CommandError(f"No restore of {server.name} to roll back (only a succeeded restore that was "
                                   "not rolled back yet can be)", returncode=2)
            return restore
        if not str(restore_id).isdigit():
            raise CommandError(f"Restore id must be a number, not {restore_id!r}", returncode=2)
        restore = restores.filter(pk=int(restore_id)).first()
        if restore is None:
            raise CommandError(f"No restore #{restore_id} of {server.name}", returncode=2)
        if restore.kind != RestoreRequest.Kind.RESTORE:
            raise CommandError(f"#{restore.pk} is itself a rollback; only a restore can be rolled back", returncode=2)
        if restore.status != RestoreRequest.Status.SUCCEEDED:
            raise CommandError(f"Restore #{restore.pk} is {restore.get_status_display().lower()}; only a succeeded "
                               "restore that was not rolled back yet can be rolled back", returncode=2)
        return restore
