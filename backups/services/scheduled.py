"""A beat tick for one schedule. It never raises into beat or the worker.

The tick claims a record, then: skips it when the schedule says so and
nothing needs backing up (skipping.py); warns the players and leaves the run
to a task due after the countdown (announce.py); or runs it here at once."""

import logging

from backups import events
from backups.alerts import alert_open, owner_emails, server_subject
from backups.models import BackupRecord, BackupSchedule
from backups.services import announce, lifecycle, skipping
from backups.services.runs import backup_run, backup_trigger
from mcsite.errors import DomainError

logger = logging.getLogger("mcsite.backups")


def backup_scheduled_run(*, schedule_id: int, task_id: str = "") -> BackupRecord | None:
    schedule = BackupSchedule.objects.select_related("server", "server__owner").filter(pk=schedule_id).first()
    if schedule is None or schedule.server is None:
        events.log_event("schedule_execution_failure", schedule_id=schedule_id,
                         reason="schedule or server no longer exists")
        return None
    server = schedule.server
    if not schedule.enabled:
        logger.info("schedule_skipped schedule_id=%s (disabled)", schedule_id)
        return None
    try:
        record = backup_trigger(server=server, trigger=BackupRecord.Trigger.SCHEDULED, actor=None,
                                source="schedule", enqueue=False, precheck=False)
    except DomainError as exc:
        events.log_event("schedule_execution_failure", server=server, code=exc.code.value, error=exc.message)
        alert_open(kind="backup_failed", subject=server_subject(server),
                   title=f"Scheduled backup of {server.name} did not run", body=f"{exc.code.value}: {exc.message}",
                   recipients_extra=owner_emails(server))
        return None
    except Exception as exc:  # noqa: BLE001 — beat must keep ticking whatever happens
        logger.exception("schedule_execution_failure schedule_id=%s", schedule_id)
        events.log_event("schedule_execution_failure", server=server, error=f"{type(exc).__name__}: {exc}")
        return None
    if schedule.skip_unchanged and _skipped(record, server):
        return record
    wait = _announced(record, server)
    if wait:
        try:
            lifecycle.queue_after_commit(record, "run_backup", event="backup_failed", countdown=wait)
        except DomainError:  # the broker refused: the record is failed with the reason already
            logger.error("schedule_execution_failure schedule_id=%s (run not queued)", schedule_id)
        return record
    return backup_run(backup_id=record.pk, task_id=task_id)


def _skipped(record: BackupRecord, server) -> bool:
    try:
        reason = skipping.skip_reason(server=server)
        return reason is not None and skipping.backup_skip(record=record, server=server, reason=reason)
    except Exception:  # noqa: BLE001 — when in doubt, take the backup
        logger.exception("skip_check_failed server_id=%s", server.pk)
        return False


def _announced(record: BackupRecord, server) -> int:
    try:
        return announce.backup_announce(record=record, server=server)
    except Exception:  # noqa: BLE001 — telling the players never stops a backup
        logger.exception("announce_failed server_id=%s", server.pk)
        return 0
