"""The run lifecycle shared by backups, restores, rollbacks and verifications.

Every long run (a BackupRecord or a RestoreRequest) lives through the same
steps, and this module is the only place that moves it:

    queue_after_commit ──> claim ──> heartbeat / progress / set_phase ──> succeed | fail
       (send by name)    (queued→running,                                (conditional on
                          one winner)                                      still running)

* **Claim** is a conditional ``UPDATE … WHERE status='queued'``: a
  redelivered or duplicated task finds nothing to do.
* **Heartbeat**: a thread refreshes ``heartbeat_at`` every 15 s while the run
  is active, so the reaper (maintenance.py) can tell a live run from one
  whose worker died (``stale_cutoff``).
* **Ending** is a conditional update too: whoever moves the row out of
  running first (the run itself, or the reaper) owns the verdict, and the
  other one changes nothing.
* **classify** turns any exception into one of the API's ``ErrorCode`` values
  with a message a user can read — one closed mapping, covering every code
  the engine can raise (``ENGINE_CODES``).
* **Tasks are sent by name** (``send_task``), so no service imports
  ``backups/tasks.py``; the tasks import the services.
* **Crash points** (``checkpoint``): with ``MCSITE_CRASH_AT=<name>`` in its
  environment a process kills itself with SIGKILL at exactly that step. The
  crash-matrix tests use it to prove what the reaper puts right.
"""

import logging
import os
import signal
import threading
import time
from contextlib import contextmanager
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from backups import events
from backups.engine import errors as engine_errors
from backups.engine.errors import EngineError
from backups.models import ACTIVE_STATUSES
from mcsite.errors import DomainError, ErrorCode
from mcsite.celery import app
from mcsite.paths import scrub_paths
from servers.control import ServerControlError

logger = logging.getLogger("mcsite.backups")

HEARTBEAT_SECONDS = 15
PROGRESS_WRITE_SECONDS = 1.0
TASKS = "backups.tasks"

# Every code the engine raises, and what a user is told it means. A code
# missing here fails tests/backups/test_lifecycle.py, never a user's run.
ENGINE_CODES = {
    engine_errors.DECRYPTION_FAILED: ErrorCode.DECRYPTION_FAILED,
    engine_errors.INVALID_ENCRYPTION_KEY: ErrorCode.DECRYPTION_FAILED,
    engine_errors.BACKUP_CORRUPTED: ErrorCode.BACKUP_CORRUPTED,
    engine_errors.UNSAFE_ARCHIVE: ErrorCode.BACKUP_CORRUPTED,
    engine_errors.SERVER_DIRECTORY_NOT_FOUND: ErrorCode.SERVER_DIRECTORY_NOT_FOUND,
    engine_errors.PERMISSION_DENIED: ErrorCode.PERMISSION_DENIED,
    engine_errors.INSUFFICIENT_DISK_SPACE: ErrorCode.INSUFFICIENT_DISK_SPACE,
    engine_errors.BACKUP_NOT_FOUND: ErrorCode.BACKUP_NOT_FOUND,
    engine_errors.INVALID_SETTING: ErrorCode.VALIDATION_ERROR,
    engine_errors.DESTINATION_EXISTS: ErrorCode.INTERNAL_ERROR,
    engine_errors.IO_ERROR: ErrorCode.IO_ERROR,
}
_ENGINE_PREFIX = {engine_errors.UNSAFE_ARCHIVE: "Unsafe archive, refused: ", engine_errors.IO_ERROR: "I/O error: "}


def stale_cutoff() -> timedelta:
    """How long a run may be silent before the reaper calls its worker lost."""
    return timedelta(seconds=HEARTBEAT_SECONDS * 8)


def checkpoint(name: str) -> None:
    """A crash point for the crash-matrix tests: SIGKILL this process here
    when MCSITE_CRASH_AT names this step. Costs one environment lookup."""
    if os.environ.get("MCSITE_CRASH_AT") == name:
        logger.warning("crash_point %s: killing this process (MCSITE_CRASH_AT)", name)
        logging.shutdown()
        os.kill(os.getpid(), signal.SIGKILL)


def checkpoint_once_moving(progress, name: str):
    """A progress callback with the crash point `name` at its first bytes
    (mid-archive, mid-extraction)."""
    fired = []

    def wrapped(done: int, total: int) -> None:
        if done and not fired:
            fired.append(True)
            checkpoint(name)
        progress(done, total)

    return wrapped


# --- errors ---------------------------------------------------------------------

def classify(exc: BaseException, *, restore: bool = False) -> tuple[ErrorCode, str]:
    """The ErrorCode and the user's message for any way a run can end badly."""
    if isinstance(exc, DomainError):
        code, message = exc.code, exc.message
    elif isinstance(exc, EngineError):
        code = ENGINE_CODES.get(exc.code)
        if code is None:
            logger.error("unmapped_engine_code %s", exc.code)
            code = ErrorCode.INTERNAL_ERROR
        message = _ENGINE_PREFIX.get(exc.code, "") + exc.message + (f" ({_where(exc.path)})" if exc.path else "")
    elif isinstance(exc, ServerControlError):
        code, message = ErrorCode.SERVER_CONTROL_FAILED, str(exc)
    elif isinstance(exc, PermissionError):
        code, message = ErrorCode.PERMISSION_DENIED, f"Permission denied: {exc.filename or exc}"
    elif isinstance(exc, OSError) and exc.errno in (28, 122):  # ENOSPC, EDQUOT
        code, message = ErrorCode.INSUFFICIENT_DISK_SPACE, "Insufficient disk space"
    elif isinstance(exc, OSError):
        code, message = ErrorCode.IO_ERROR, f"I/O error: {exc.strerror or exc}"
    elif type(exc).__name__ == "SoftTimeLimitExceeded":
        what = "restore" if restore else "backup"
        code, message = ErrorCode.TIMEOUT, f"The {what} took longer than the time limit and was stopped"
    else:
        code, message = ErrorCode.INTERNAL_ERROR, f"Unexpected error: {type(exc).__name__}: {exc}"
    if restore and code == ErrorCode.BACKUP_FAILED:
        code = ErrorCode.RESTORE_FAILED
    return code, scrub_paths(message)[:2000]


def _where(path: str) -> str:
    """A file named in a message: relative to mcsite's folders, else just its name."""
    scrubbed = scrub_paths(str(path))
    return os.path.basename(scrubbed) if scrubbed.startswith("/") else scrubbed


# --- sending tasks ----------------------------------------------------------------

def send_task(name: str, *, kwargs: dict, queue: str, countdown: float | None = None) -> None:
    """Sends backups.tasks.<name> to a node's queue, by name; with a
    countdown, no worker takes it before that many seconds (a broker-side
    wait: no worker slot is held meanwhile)."""
    options = {"countdown": countdown} if countdown else {}
    app.send_task(f"{TASKS}.{name}", kwargs=kwargs, queue=queue, **options)


def queue_after_commit(row, task: str, *, event: str, countdown: float | None = None) -> None:
    """Sends the row's run task once its transaction commits (a worker must
    find the row). When the broker refuses, the queued row is ended at once
    (failed, with the reason) instead of blocking its server for hours; with
    no transaction around us that happens now and the caller hears why."""
    outcome = []

    def send():
        try:
            extra = {"countdown": countdown} if countdown else {}  # the players' countdown (announce.py)
            send_task(task, kwargs={_ID_ARG[type(row).__name__]: row.pk}, queue=row.server.node, **extra)
            outcome.append(True)
        except Exception as exc:  # noqa: BLE001 — any broker failure means nothing will run it
            message = f"Could not queue the task: the broker did not accept it ({type(exc).__name__})"
            logger.error("enqueue_failed %s=%s queue=%s error=%s", type(row).__name__, row.pk, row.server.node, exc)
            code = ErrorCode.RESTORE_FAILED if event.startswith("restore") else ErrorCode.BACKUP_FAILED
            if end(row, status="failed", code=code, message=message, only_from=("queued",)):
                _event(row, event, code=code.value, error=message)
            outcome.append(False)

    transaction.on_commit(send)
    if outcome == [False]:
        row.refresh_from_db()
        raise DomainError(ErrorCode.INTERNAL_ERROR, row.error_message)


_ID_ARG = {"BackupRecord": "backup_id", "RestoreRequest": "restore_id"}


def _event(row, event: str, **fields) -> None:
    ident = {"backup": row} if type(row).__name__ == "BackupRecord" else {"restore_id": row.pk}
    events.log_event(event, server=row.server, **ident, **fields)


# --- claim, heartbeat, progress ------------------------------------------------------

def claim(model, pk: int, *, task_id: str = "", phase: str, **fields) -> bool:
    """queued → running; True for the one caller that won."""
    now = timezone.now()
    return bool(model.objects.filter(pk=pk, status="queued").update(
        status="running", started_at=now, heartbeat_at=now, phase=phase, task_id=(task_id or "")[:64], **fields))


def set_phase(model, pk: int, phase: str, observer=None, **fields) -> None:
    model.objects.filter(pk=pk).update(phase=phase, **fields)
    notify(observer, phase=phase)


def notify(observer, *, done=None, total=None, phase=None) -> None:
    if observer is not None:
        observer(done, total, phase)


def progress_writer(model, pk: int, observer=None):
    """A progress callback that writes at most once a second (not per block)."""
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_WRITE_SECONDS or (total and done >= total):
            last[0] = now
            model.objects.filter(pk=pk).update(progress_bytes=done, progress_total=total, heartbeat_at=timezone.now())
        notify(observer, done=done, total=total)  # after the write: an observer reads what was written

    return progress


@contextmanager
def heartbeat(model, pk: int):
    """Keeps heartbeat_at fresh while the run is active (a slow stop, a long
    scan), so the reaper can tell a live run from one whose worker died."""
    stop = threading.Event()

    def beat():
        from django.db import connection

        try:
            while not stop.wait(HEARTBEAT_SECONDS):
                try:
                    model.objects.filter(pk=pk, status__in=ACTIVE_STATUSES).update(heartbeat_at=timezone.now())
                except Exception as exc:  # noqa: BLE001 — a busy database must not silence the heartbeat
                    logger.warning("heartbeat_failed %s=%s error=%s", model.__name__, pk, exc)
                    connection.close()
        finally:
            connection.close()

    thread = threading.Thread(target=beat, name=f"heartbeat-{model.__name__}-{pk}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


# --- ending ---------------------------------------------------------------------------

def end(row, *, status: str, code: ErrorCode | None = None, message: str = "", only_from=ACTIVE_STATUSES,
        **fields) -> bool:
    """Moves the row out of an active status by a conditional update; False
    if someone else (the run or the reaper) ended it first. The row is
    refreshed either way, so the caller reports what is really recorded."""
    now = timezone.now()
    values = dict(status=status, finished_at=now, heartbeat_at=now,
                  phase="done" if status == "succeeded" else "failed", **fields)
    if code is not None:
        values.update(error_code=code.value, error_message=message[:2000])
    if hasattr(row, "duration_seconds") and "duration_seconds" not in values:
        values["duration_seconds"] = round((now - (row.started_at or now)).total_seconds(), 3)
    ended = type(row).objects.filter(pk=row.pk, status__in=only_from).update(**values)
    row.refresh_from_db()
    return bool(ended)


# --- verification ------------------------------------------------------------------------

def failed_methods(verification: dict | None) -> list[str]:
    """Names of the verification methods that ran and failed, in report order."""
    methods = (verification or {}).get("methods", {})
    return [name for name, m in methods.items() if not m.get("ok", False) and not m.get("skipped", False)]


def is_corrupt(verification: dict | None) -> bool:
    """The file itself is damaged (not only the world inside it)."""
    return bool({"checksum", "archive_integrity"} & set(failed_methods(verification)))


def verification_fields(report, *, keep_world_of=None) -> dict:
    """What a verification report writes on a BackupRecord: per-method
    results (never a filesystem path), the verdict, score and world names."""
    data = report.to_dict()
    data.pop("path", None)
    for method in data.get("methods", {}).values():
        for key in ("errors", "warnings"):
            method[key] = [scrub_paths(str(item)) for item in method.get(key, [])]
    fields = dict(verification=data, verified_at=timezone.now(), verification_passed=report.ok,
                  quality_score=report.quality_score, quality_level=report.quality_level,
                  world_name=report.world_name or "", minecraft_version=report.minecraft_version or "")
    if keep_world_of is not None:  # a re-verification that failed to read the world keeps what was known
        fields["world_name"] = report.world_name or keep_world_of.world_name
        fields["minecraft_version"] = report.minecraft_version or keep_world_of.minecraft_version
    return fields
