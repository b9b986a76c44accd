"""Thin Celery tasks: load by id, call a service (STYLE: HackSoft). Backups
and restores are routed to the queue of the server's node, where the worker
that sits on its disk listens."""

import logging

from celery import shared_task
from django.conf import settings

from backups.models import BackupRecord, RestoreRequest

logger = logging.getLogger("mcsite.backups")

LONG_TASK = dict(
    acks_late=True,
    soft_time_limit=settings.CELERY_BACKUP_SOFT_TIME_LIMIT,
    time_limit=settings.CELERY_BACKUP_TIME_LIMIT,
    ignore_result=True,
)


def _send(task, kwargs: dict, queue: str, model, pk: int, code: str, event: str) -> bool:
    """Sends a task; when the broker refuses, the queued row is ended at once
    (failed, with the reason) instead of blocking its server for hours."""
    try:
        task.apply_async(kwargs=kwargs, queue=queue)
        return True
    except Exception as exc:  # noqa: BLE001 — any broker failure means nothing will run it
        from django.utils import timezone

        from backups import events

        message = f"Could not queue the task: the broker did not accept it ({type(exc).__name__})"
        model.objects.filter(pk=pk, status="queued").update(status="failed", error_code=code, error_message=message,
                                                           finished_at=timezone.now(), phase="failed")
        logger.error("enqueue_failed %s=%s queue=%s error=%s", model.__name__, pk, queue, exc)
        row = model.objects.select_related("server").get(pk=pk)
        events.log_event(event, server=row.server, code=code, error=message,
                         **({"backup_id": pk} if model is BackupRecord else {"restore_id": pk}))
        return False


def enqueue_backup(record: BackupRecord) -> bool:
    return _send(run_backup, {"backup_id": record.pk}, record.server.node, BackupRecord, record.pk,
                 "BACKUP_FAILED", "backup_failed")


def enqueue_restore(restore: RestoreRequest) -> bool:
    return _send(run_restore, {"restore_id": restore.pk}, restore.server.node, RestoreRequest, restore.pk,
                 "RESTORE_FAILED", "restore_failed")


def enqueue_verify(record: BackupRecord) -> None:
    queue = record.server.node if record.server_id else settings.MCSITE_NODE
    verify_backup.apply_async(kwargs={"backup_id": record.pk}, queue=queue)


@shared_task(bind=True, **LONG_TASK)
def run_backup(self, backup_id: int) -> None:
    from backups.services.runs import backup_run

    backup_run(backup_id=backup_id, task_id=self.request.id or "")


@shared_task(bind=True, **LONG_TASK)
def run_scheduled_backup(self, schedule_id: int) -> None:
    """Beat's tick for one schedule. Never raises: a schedule whose server is
    gone or whose run fails is logged (schedule_execution_failure) and alerted."""
    from backups.services.scheduled import backup_scheduled_run

    backup_scheduled_run(schedule_id=schedule_id, task_id=self.request.id or "")


@shared_task(bind=True, **LONG_TASK)
def run_restore(self, restore_id: int) -> None:
    from backups.services.restores import restore_run

    restore_run(restore_id=restore_id, task_id=self.request.id or "")


@shared_task(**LONG_TASK)
def verify_backup(backup_id: int) -> None:
    from backups.services.actions import backup_verify

    record = BackupRecord.objects.filter(pk=backup_id).first()
    if record is not None:
        backup_verify(record=record)


@shared_task(ignore_result=True)
def reap_stale_runs() -> dict:
    from backups.services.maintenance import reap_stale_runs as reap

    return reap()


@shared_task(ignore_result=True)
def check_disk_usage() -> float:
    from backups.services.maintenance import disk_check

    return disk_check()


@shared_task(ignore_result=True)
def sweep_retention() -> int:
    from backups.services.retention import retention_sweep

    return retention_sweep()


@shared_task(ignore_result=True)
def check_dead_man() -> list:
    from backups.services.maintenance import dead_man_check

    return dead_man_check()




@shared_task(ignore_result=True)
def start_server_after_lost_run(server_id: int, reason: str) -> None:
    """Sent by the reaper to the server's node: start it where it lives."""
    from backups.services.maintenance import start_server
    from servers.models import Server

    server = Server.objects.filter(pk=server_id).first()
    if server is not None:
        start_server(server, reason=reason)


@shared_task(ignore_result=True)
def resume_saves(server_id: int) -> None:
    from backups.services.maintenance import saves_back_on
    from servers.models import Server

    server = Server.objects.filter(pk=server_id).first()
    if server is not None:
        saves_back_on(server)


@shared_task(ignore_result=True)
def sweep_partial_files() -> int:
    """Removes half-written files of dead runs on this node's own disk."""
    from django.utils import timezone

    from backups.services.maintenance import remove_orphaned_partials
    from backups.services.runs import stale_cutoff

    return remove_orphaned_partials(older_than=timezone.now() - stale_cutoff())
