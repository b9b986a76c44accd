"""Thin Celery tasks: load by id, call a service (STYLE: HackSoft). Services
send them by name (lifecycle.send_task) to the queue of the server's node,
where the worker that sits on its disk listens; nothing imports this module
but Celery."""

from celery import shared_task
from django.conf import settings

from backups.services import actions, announce, files, maintenance, recheck, retention, runs, scheduled, snapshots
from backups.services.restore_run import restore_recover, restore_run
from backups.services.runs import backup_run

LONG_TASK = dict(
    acks_late=True,
    soft_time_limit=settings.CELERY_BACKUP_SOFT_TIME_LIMIT,
    time_limit=settings.CELERY_BACKUP_TIME_LIMIT,
    ignore_result=True,
)


@shared_task(bind=True, **LONG_TASK)
def run_backup(self, backup_id: int) -> None:
    backup_run(backup_id=backup_id, task_id=self.request.id or "")


@shared_task(bind=True, **LONG_TASK)
def run_scheduled_backup(self, schedule_id: int) -> None:
    """Beat's tick for one schedule. Never raises: a schedule whose server is
    gone or whose run fails is logged (schedule_execution_failure) and alerted."""
    scheduled.backup_scheduled_run(schedule_id=schedule_id, task_id=self.request.id or "")


@shared_task(ignore_result=True, acks_late=True)
def start_backup(backup_id: int) -> None:
    """A backup triggered from a web tier on another host: warned and queued on this node (issue #15)."""
    runs.backup_start_on_node(backup_id=backup_id)


@shared_task(ignore_result=True)
def announce_backup(backup_id: int, seconds: int) -> bool:
    """A countdown mark of a queued backup: warn the players (announce.py)."""
    return announce.backup_announce_warning(backup_id=backup_id, seconds=seconds)


@shared_task(ignore_result=True)
def announce_backup_done(backup_id: int, attempt: int = 1) -> bool:
    return announce.backup_announce_done(backup_id=backup_id, attempt=attempt)


@shared_task(bind=True, **LONG_TASK)
def run_restore(self, restore_id: int) -> None:
    restore_run(restore_id=restore_id, task_id=self.request.id or "")


@shared_task(**LONG_TASK)
def verify_backup(backup_id: int) -> None:
    actions.backup_verify_by_id(backup_id=backup_id)


@shared_task(**LONG_TASK)
def recheck_backup(backup_id: int) -> None:
    """Sent by the daily re-check sweep to the backup's node: read it again."""
    recheck.backup_recheck_by_id(backup_id=backup_id)


@shared_task(ignore_result=True)
def recheck_backups() -> list:
    return recheck.recheck_sweep()


@shared_task(ignore_result=True)
def reap_stale_runs() -> dict:
    return maintenance.reap_stale_runs()


@shared_task(ignore_result=True)
def check_disk_usage(fan_out: bool = True) -> float:
    """Beat's copy checks this node's disk and sends one to every other node (issue #15)."""
    if fan_out:
        maintenance.to_other_nodes("check_disk_usage")
    return maintenance.disk_check()


@shared_task(ignore_result=True)
def sweep_retention(fan_out: bool = True) -> int:
    """Beat's copy sweeps this node's servers and sends one to every other node (issue #15)."""
    if fan_out:
        maintenance.to_other_nodes("sweep_retention")
    return retention.retention_sweep()


@shared_task(ignore_result=True)
def prune_repositories(fan_out: bool = True) -> int:
    """Beat's copy prunes this node's incremental repositories (and those on
    storage targets) and sends one to every other node (issue #14)."""
    if fan_out:
        maintenance.to_other_nodes("prune_repositories")
    return snapshots.prune_sweep(with_targets=fan_out)


@shared_task(ignore_result=True)
def prune_repository(repository_id: int) -> dict | None:
    """The admin's "Prune now": one repository, on the node that can read it."""
    return snapshots.repository_prune_queued(repository_id=repository_id)


@shared_task(ignore_result=True)
def remove_backup_file(backup_id: int) -> bool:
    """A deleted backup's file (or a dropped local file), removed by the node that holds it."""
    return files.remove_here(backup_id=backup_id)


@shared_task(ignore_result=True)
def check_dead_man() -> list:
    return maintenance.dead_man_check()


@shared_task(ignore_result=True)
def start_server_after_lost_run(server_id: int, reason: str) -> None:
    """Sent by the reaper to the server's node: start it where it lives."""
    maintenance.run_on_this_node("start_server_after_lost_run", server_id=server_id, reason=reason)


@shared_task(ignore_result=True)
def resume_saves(server_id: int) -> None:
    maintenance.run_on_this_node("resume_saves", server_id=server_id)


@shared_task(ignore_result=True)
def remove_lost_backup_file(server_id: int, backup_id: int) -> None:
    """Sent by the reaper: the file of a dead backup run, on the node's own disk."""
    maintenance.run_on_this_node("remove_lost_backup_file", server_id=server_id, backup_id=backup_id)


@shared_task(bind=True, **LONG_TASK)
def copy_backup_offsite(self, copy_id: int) -> None:
    """Sent to the backup's node once it verified (and again after a transient
    fault, with backoff): stream it to one storage target (issue #13)."""
    from backups.services.offsite import copy_run
    copy_run(copy_id=copy_id, task_id=self.request.id or "")


@shared_task(**LONG_TASK)
def recheck_offsite_copy(copy_id: int) -> None:
    from backups.services.offsite import copy_recheck
    copy_recheck(copy_id=copy_id)


@shared_task(ignore_result=True)
def sweep_offsite_copies() -> dict:
    """Deletes the copies of deleted backups once due (delay, Object Lock)."""
    from backups.services.offsite import copies_sweep
    return copies_sweep()


@shared_task(ignore_result=True)
def recheck_offsite_copies() -> list:
    """Daily: sends the re-checks of the verified copies checked longest ago."""
    from backups.services.offsite import copies_recheck_sweep
    return copies_recheck_sweep()


@shared_task(ignore_result=True, acks_late=True)
def recover_restore(restore_id: int) -> bool:
    """Sent by the reaper to the server's node: put the folder right there."""
    return restore_recover(restore_id=restore_id)


@shared_task(ignore_result=True)
def sweep_partial_files() -> int:
    """Removes half-written files and restore leftovers of dead runs on this node's own disk."""
    maintenance.remove_restore_leftovers()
    return maintenance.remove_orphaned_partials()
