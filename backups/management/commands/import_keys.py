"""manage.py import_keys FILE: loads a keys export (`manage.py export_keys`)
into this site, e.g. a new install after the old host was lost, so that the
backups encrypted there decrypt again (docs/operations.md, disaster
recovery). Idempotent; the site's own current key is never replaced."""

import json

from django.core.management.base import BaseCommand, CommandError

from backups.services import keys as keys_service
from mcsite.errors import DomainError

MAX_EXPORT_BYTES = 16 * 1024 * 1024


def read_export(path: str) -> dict:
    """The export document at `path`; CommandError when it cannot be read."""
    try:
        with open(path, "rb") as fh:
            return json.loads(fh.read(MAX_EXPORT_BYTES))
    except OSError as exc:
        raise CommandError(f"Cannot read the keys file {path}: {exc.strerror or exc}", returncode=2) from None
    except ValueError as exc:
        raise CommandError(f"The keys file {path} is not JSON: {exc}", returncode=2) from None


def load_export(command, path: str) -> dict:
    """Loads the export into the site and says what it did (never a secret)."""
    try:
        outcome = keys_service.keys_import(read_export(path), source="cli")
    except DomainError as exc:
        raise CommandError(exc.message, returncode=2) from None
    added = outcome["added"]
    noun = "key" if len(added) == 1 else "keys"
    if added:
        command.stdout.write(f"Loaded {len(added)} {noun} from {path}: {', '.join(added)}")
    else:
        command.stdout.write(f"{path}: every key in it is already known")
    command.stdout.write(f"Current encryption key: {outcome['current'] or 'none'}")
    return outcome


class Command(BaseCommand):
    help = "Load a keys export (manage.py export_keys) so backups encrypted with its keys decrypt here."

    def add_arguments(self, parser):
        parser.add_argument("file", help="the JSON file export_keys wrote")

    def handle(self, *args, file, **options):
        load_export(self, file)
