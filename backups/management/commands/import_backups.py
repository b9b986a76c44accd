"""Rebuild backup records from the copies on a storage target, after the
database was lost (issue #13, docs/operations.md "Disaster recovery"):

    manage.py import_backups --target offsite-b2 [--server NAME_OR_ID_OR_FOLDER]
                             [--owner USERNAME] [--dry-run]

Reads each copy's JSON sidecar (no archive is downloaded or decrypted) and
creates a succeeded backup record, restorable from the copy, plus its
verified copy row; running it again creates nothing new. Incremental
repositories on the target (mcsite-repo/) are opened with the repository
keys of --keys-file, and each snapshot becomes a backup record again. A copy whose
server folder matches no server is imported as a backup of a deleted server
owned by --owner (skipped without it). Prints one line per archive.
Exit codes: 0 done (skipped ones are listed); 1 the target could not be
read; 2 bad arguments (unknown target, server or user)."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from backups.management.lookup import server_arg
from backups.models import StorageTarget
from backups.offsite import OffsiteError, open_target
from backups.services.importing import IMPORTED, KNOWN, LINKED, SKIPPED, import_from_target
from backups.repo.repository import keks_of_export
from backups.services.importing_repos import import_repositories


class Command(BaseCommand):
    help = "Rebuild backup records from the copies (and their JSON sidecars) on a storage target."

    def add_arguments(self, parser):
        parser.add_argument("--target", required=True, help="the storage target's name (as in the admin)")
        parser.add_argument("--server", help="only this server's copies (name, folder or id)")
        parser.add_argument("--owner", help="username that owns copies of servers that no longer exist")
        parser.add_argument("--dry-run", action="store_true", help="only say what would be imported")
        parser.add_argument("--keys-file", help="a keys export (export_keys) to load first, so that encrypted "
                                                "backups decrypt here (as import_keys does)")

    def handle(self, *args, target, server=None, owner=None, dry_run=False, keys_file=None, **options):
        document = None
        if keys_file:
            from backups.management.commands.import_keys import load_export, read_export

            document = read_export(keys_file)
            if not dry_run:
                load_export(self, keys_file)
        row = StorageTarget.objects.filter(name=target).first()
        if row is None:
            known = ", ".join(StorageTarget.objects.values_list("name", flat=True)) or "none yet"
            raise CommandError(f"No storage target {target!r} (known: {known}). Add it in the admin with the same "
                               "settings as before (kind, bucket/path, prefix, credentials) first.", returncode=2)
        chosen = server_arg(server) if server else None
        user = None
        if owner:
            user = get_user_model().objects.filter(username=owner).first()
            if user is None:
                raise CommandError(f"No user {owner!r}", returncode=2)
        try:
            outcomes = import_from_target(target=row, server=chosen, owner=user, dry_run=dry_run)
            # Incremental repositories on the target (issue #14), opened with the keys file's repository keys.
            with open_target(row.config()) as remote:
                outcomes += import_repositories(target=row, keys=keks_of_export(document), remote=remote,
                                                server=chosen, owner=user, dry_run=dry_run)
        except OffsiteError as exc:
            raise CommandError(f"{exc.code}: {exc.message}", returncode=1) from None
        for outcome in outcomes:
            style = self.style.WARNING if outcome.action == SKIPPED else (lambda text: text)
            self.stdout.write(style(outcome.line(dry_run)))
        count = {kind: sum(o.action == kind for o in outcomes) for kind in (IMPORTED, LINKED, KNOWN, SKIPPED)}
        verb = "would be imported" if dry_run else "imported"
        self.stdout.write(self.style.SUCCESS(
            f"{target}: {count[IMPORTED]} {verb}, {count[LINKED]} added to existing records, "
            f"{count[KNOWN]} already known, {count[SKIPPED]} skipped"))
