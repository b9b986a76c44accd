"""Export every backup encryption key and password, in clear, to store offline.

Exit codes: 0 written; 1 refused (the file exists, it cannot be written, or
encryption has never been configured); 2 bad arguments."""

import json
import os

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from backups.services import keys
from mcsite.errors import DomainError


class Command(BaseCommand):
    help = ("Write every backup encryption key and password (current and older ones) IN CLEAR as JSON, "
            "so encrypted backups outlive this host. Store the file offline. Format: docs/format.md.")

    def add_arguments(self, parser):
        parser.add_argument("--output", "-o", metavar="FILE",
                            help="where to write it (never overwritten; mode 0600); '-' for standard output; "
                                 "default mcsite-keys-YYYYMMDD_HHMMSS.json in the current folder")

    def handle(self, *args, output: str | None = None, **options):
        try:
            document = keys.export_document()
        except DomainError as exc:
            raise CommandError(exc.message, returncode=1) from None
        body = json.dumps(document, indent=2) + "\n"
        if output == "-":
            self.stdout.write(body, ending="")
            self.stdout.flush()
            keys.record_export(document, source="command", destination="stdout")
            return
        path = os.path.abspath(output or f"mcsite-keys-{timezone.now():%Y%m%d_%H%M%S}.json")
        try:
            # O_EXCL: an existing file (an older export, anything) is never overwritten.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        except FileExistsError:
            raise CommandError(f"{path} exists already: choose another file (an export is never overwritten)",
                               returncode=1) from None
        except OSError as exc:
            raise CommandError(f"cannot create {path}: {exc.strerror}", returncode=1) from None
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                os.fchmod(fh.fileno(), 0o600)  # whatever the umask
                fh.write(body)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            os.unlink(path)
            raise CommandError(f"cannot write {path}: {exc.strerror}", returncode=1) from None
        keys.record_export(document, source="command", destination=path)
        count = len(document["keys"])
        self.stderr.write(f"Wrote {count} key{'s' if count != 1 else ''} to {path} (mode 0600). "
                          "It holds them "
                          "IN CLEAR: store it offline, away from the backups and this host.")
