"""What the backup commands share: the --no-progress option, the
confirmation rule, exit codes for refused requests, and how a failed
verification is explained."""

from django.core.management.base import CommandError

from backups.services.lifecycle import failed_methods
from mcsite.errors import DomainError, ErrorCode

BUSY = (ErrorCode.BACKUP_IN_PROGRESS, ErrorCode.RESTORE_IN_PROGRESS)
ERRORS_SHOWN = 5


def add_progress_argument(parser) -> None:
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bars: plain lines only (for cron, CI and log files)")


def run_restore(command, restore, *, no_progress: bool, verbosity: int, what: str = "Restore"):
    """Runs a queued restore or rollback here with a bar per phase; exit 1
    with the recorded reason when it fails. Returns the ended row."""
    from backups.management.progress import phase_progress
    from backups.models import RestoreRequest
    from backups.services.restore_run import restore_run

    with phase_progress(command.stderr, enabled=not no_progress, first="preparing",
                        plain_lines=verbosity > 0) as progress:
        restore_run(restore_id=restore.pk, observer=progress.observe)
        restore.refresh_from_db()
        progress.finish(ok=restore.status == RestoreRequest.Status.SUCCEEDED)
    if restore.status != RestoreRequest.Status.SUCCEEDED:
        raise CommandError(f"{what} failed — {restore.error_code}: {restore.error_message}", returncode=1)
    return restore


def refused(exc: DomainError, *, not_found: int = 1) -> CommandError:
    """A service's refusal as the command's exit: 4 when the server is busy,
    `not_found` for something unknown (HTTP 404), else 1."""
    if exc.code in BUSY:
        code = 4
    elif exc.http_status == 404:
        code = not_found
    else:
        code = 1
    return CommandError(f"{exc.code.value}: {exc.message}", returncode=code)


def confirmed(question: str) -> bool:
    """True only when someone typed yes; no terminal to answer (cron, CI) is a no."""
    try:
        answer = input(f"{question} Type 'yes': ")
    except (EOFError, KeyboardInterrupt):
        return False
    return answer.strip().lower() == "yes"


def verification_failures(verification: dict | None, *, indent: str = "       ") -> list[str]:
    """One line per error of each failed verification method (its first few)."""
    methods = (verification or {}).get("methods", {})
    lines = []
    for name in failed_methods(verification):
        errors = methods.get(name, {}).get("errors") or ["failed (no reason recorded)"]
        lines += [f"{indent}{name}: {error}" for error in errors[:ERRORS_SHOWN]]
    return lines
