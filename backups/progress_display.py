"""What the progress endpoints and pages say about a running backup or
restore, read only from the rows the worker writes (issue #12 item 5).

* Each phase that moves bytes (archiving, verifying, a restore's safety
  backup, extracting) reports its own bytes: "Verifying the archive · 3.20 of
  9.81 MiB". The worker resets the byte counts when a phase starts.
* The bar is one line across the whole run, each phase owning a band of it,
  and it never goes back: a restore's bar stands at the furthest step it has
  recorded, so a step this module does not know keeps the bar where it is.
* While a restore takes its safety backup, the bar and the words follow that
  backup's own record (its phase and bytes), not "Server stopped".
* `status_label` is the status in words, for the badge the page keeps in step.
"""

import math

from django.utils import timezone

from backups.models import ACTIVE_STATUSES, BackupRecord, RestoreRequest
from backups.templatetags.backup_display import mib_number

# Phase → (label, band start, band end). A phase with bytes fills its band by them.
BACKUP_PHASES = {
    "queued": ("Waiting for a worker", 0, 0), "prechecks": ("Checking folder and disk space", 2, 2),
    "stopping": ("Stopping the server", 4, 4), "pausing_saves": ("Pausing world saves", 4, 4),
    "archiving": ("Archiving files", 5, 65), "verifying": ("Verifying the archive", 65, 99),
    "done": ("Done", 100, 100), "failed": ("Failed", 100, 100),
}
RESTORE_PHASES = {
    "queued": ("Waiting for a worker", 0, 0), "checking": ("Checking the backup", 2, 2),
    "stopped": ("Server stopped", 5, 5),
    "safety_backup": ("Safety backup of the current files", 5, 45),
    "safety_backup_taken": ("Safety backup taken", 45, 45),
    "extracting": ("Extracting files", 45, 90), "extracted": ("Files extracted and checked", 90, 90),
    "kept_excluded": ("Kept what backups leave out", 91, 91),
    "moving_aside": ("Moving the old files aside", 92, 92), "swapped": ("New files in place", 95, 95),
    "started": ("Server started again", 97, 97), "committed": ("Restored files committed", 99, 99),
    "done": ("Done", 100, 100), "failed": ("Failed", 100, 100),
    "previous_files_back": ("Previous files put back", 100, 100),
}
# Steps a restore records while a phase goes on: the phase they belong to.
RESTORE_SUBSTEPS = {"staging": "extracting", "rename": "moving_aside"}


def _label(phases: dict, phase: str) -> tuple[str, int, int]:
    return phases.get(phase) or (phase.replace("_", " ").capitalize(), 0, 0)


def _fraction(done, total) -> float | None:
    return min(1.0, done / total) if total else None


def _bytes_words(done, total) -> str:
    return f"{mib_number(done or 0)} of {mib_number(total)} MiB"


def _backup_moving(record: BackupRecord) -> tuple[str, int, float | None]:
    """(phase, band position in percent, fraction of the phase) of a running backup."""
    label, start, end = _label(BACKUP_PHASES, record.phase)
    fraction = _fraction(record.progress_bytes, record.progress_total) if end > start else None
    return label, start + int((end - start) * (fraction or 0)), fraction


def backup_progress(record: BackupRecord) -> dict:
    label, percent, fraction = _backup_moving(record)
    done = record.status not in ACTIVE_STATUSES
    moving = fraction is not None and not done
    waiting = (record.status == BackupRecord.Status.QUEUED and record.not_before is not None
               and record.not_before > timezone.now())
    if done:
        percent = 100
        message = _backup_message(record)
    elif waiting:  # the players' countdown (services/announce.py): the run is sent to start after it
        seconds = max(1, math.ceil((record.not_before - timezone.now()).total_seconds()))
        label = "Players are being warned"
        message = f"Players are being warned · starts in {seconds} s"
    elif moving:
        message = f"{label} · {_bytes_words(record.progress_bytes, record.progress_total)}"
    else:
        message = f"{label}…"
    return {
        "id": record.pk, "status": record.status, "status_label": record.get_status_display().capitalize(),
        "phase": record.phase, "label": label, "percent": percent,
        "phase_bytes_done": record.progress_bytes if moving else 0,
        "phase_bytes_total": record.progress_total if moving else 0,
        "bytes_done": record.progress_bytes, "bytes_total": record.progress_total, "done": done,
        "ok": record.status == BackupRecord.Status.SUCCEEDED, "filename": record.filename,
        "size_bytes": record.size_bytes, "quality_score": record.quality_score,
        "quality_level": record.quality_level, "error": record.error_message,
        "message": message, "not_before": record.not_before.isoformat() if record.not_before else None,
    }


def _backup_message(record: BackupRecord) -> str:
    if record.status == BackupRecord.Status.SUCCEEDED:
        quality = f" — quality {record.quality_score} ({record.quality_level})" if record.quality_score is not None else ""
        return f"Backup finished: {record.filename}{quality}"
    if record.status == BackupRecord.Status.SKIPPED:
        return f"Backup skipped: {record.skip_reason or 'nothing to back up'}."
    return f"Backup failed: {record.error_message or record.error_code or 'unknown error'}"


def _safety_backup_of(row: RestoreRequest) -> BackupRecord | None:
    """The safety backup a running restore is taking (the newest active one of its server)."""
    return (BackupRecord.objects.filter(server_id=row.server_id, trigger=BackupRecord.Trigger.SAFETY,
                                        status__in=ACTIVE_STATUSES).order_by("-created_at", "-id").first())


def restore_progress(row: RestoreRequest) -> dict:
    phase = RESTORE_SUBSTEPS.get(row.phase, row.phase)
    label, start, end = _label(RESTORE_PHASES, phase)
    # The furthest step recorded so far: the bar never goes back.
    reached = max([_label(RESTORE_PHASES, RESTORE_SUBSTEPS.get(str(s.get("step")), str(s.get("step"))))[1]
                   for s in row.steps or []] + [start])
    percent, message = max(start, reached), f"{label}…"
    done_bytes = total_bytes = 0
    if phase == "safety_backup":
        safety = _safety_backup_of(row)
        if safety is not None:
            inner_label, inner_percent, fraction = _backup_moving(safety)
            percent = max(reached, start + int((end - start) * inner_percent / 100))
            if fraction is not None:
                done_bytes, total_bytes = safety.progress_bytes, safety.progress_total
                message = f"{label} · {inner_label} · {_bytes_words(done_bytes, total_bytes)}"
            else:
                message = f"{label} · {inner_label}…"
    elif end > start and row.progress_total:
        done_bytes, total_bytes = row.progress_bytes, row.progress_total
        percent = max(reached, start + int((end - start) * _fraction(done_bytes, total_bytes)))
        message = f"{label} · {_bytes_words(done_bytes, total_bytes)}"
    done = row.status not in ACTIVE_STATUSES
    noun = {RestoreRequest.Kind.ROLLBACK: "Rollback", RestoreRequest.Kind.COPY: "Copy"}.get(row.kind, "Restore")
    if done:
        percent, done_bytes, total_bytes = 100, 0, 0
    if row.status == RestoreRequest.Status.SUCCEEDED:
        message = f"{noun} finished: {row.file_count or 0} files restored from {row.backup_filename}."
    elif row.status == RestoreRequest.Status.ROLLED_BACK:
        message = f"{noun} finished and was later rolled back."
    elif row.status == RestoreRequest.Status.FAILED:
        message = f"{noun} failed: {row.error_message or row.error_code}. The previous files were put back."
    return {"id": row.pk, "status": row.status, "status_label": row.get_status_display().capitalize(),
            "phase": phase, "label": label, "percent": percent,
            "phase_bytes_done": done_bytes, "phase_bytes_total": total_bytes,
            "done": done, "ok": row.status in ("succeeded", "rolled_back"), "message": message,
            "can_roll_back": row.kind == RestoreRequest.Kind.RESTORE and row.status == "succeeded"}


def restore_step_labels(row: RestoreRequest) -> list[str]:
    return [_label(RESTORE_PHASES, str(s.get("step", "")))[0] for s in row.steps or []]
