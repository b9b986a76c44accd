"""Schedule ↔ django-celery-beat glue, in one place (STYLE lesson 3).

Each BackupSchedule owns one PeriodicTask named `backup-schedule:<pk>` with
kwargs {"schedule_id": pk} and a CrontabSchedule in MCSITE_TIME_ZONE that is
got-or-created (never edited in place, other tasks may share it). Callers run
these inside the transaction that saves the schedule. Saving or deleting a
PeriodicTask through the ORM bumps django-celery-beat's change marker, so a
running beat picks the change up without a restart.
"""

import json
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask, PeriodicTasks

TASK_NAME = "backups.tasks.run_scheduled_backup"
TASK_PREFIX = "backup-schedule:"
SUNDAY_CRON = "0"  # cron and Celery count Sunday as 0
PERIOD_DAYS = {"daily": 1, "weekly": 7, "monthly": 31}


def site_zone() -> ZoneInfo:
    return ZoneInfo(settings.MCSITE_TIME_ZONE)


def periodic_task_name(schedule_pk: int) -> str:
    return f"{TASK_PREFIX}{schedule_pk}"


def crontab_for(schedule) -> CrontabSchedule:
    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute=str(schedule.schedule_time.minute),
        hour=str(schedule.schedule_time.hour),
        day_of_week=SUNDAY_CRON if schedule.schedule_type == "weekly" else "*",
        day_of_month="1" if schedule.schedule_type == "monthly" else "*",
        month_of_year="*",
        timezone=settings.MCSITE_TIME_ZONE,
    )
    return crontab


def sync_periodic_task(schedule) -> PeriodicTask:
    """Create or bring the schedule's PeriodicTask in line with it."""
    assert transaction.get_connection().in_atomic_block, "call inside the schedule's transaction"
    task, _ = PeriodicTask.objects.update_or_create(
        name=periodic_task_name(schedule.pk),
        defaults={
            "task": TASK_NAME,
            "crontab": crontab_for(schedule),
            "interval": None,
            "kwargs": json.dumps({"schedule_id": schedule.pk}),
            "enabled": schedule.enabled,
            "queue": schedule.server.node,
            "one_off": False,
            "description": f"Backup of {schedule.server.name} ({schedule.schedule_type} "
            f"at {schedule.schedule_time:%H:%M} {settings.MCSITE_TIME_ZONE})",
        },
    )
    if schedule.periodic_task_id != task.pk:
        schedule.periodic_task = task
        type(schedule).objects.filter(pk=schedule.pk).update(periodic_task=task)
    return task


def delete_periodic_task(schedule) -> None:
    PeriodicTask.objects.filter(name=periodic_task_name(schedule.pk)).delete()
    PeriodicTasks.update_changed()


def _candidate_days(schedule_type: str, start: date):
    day = start
    while True:
        if schedule_type == "daily":
            yield day
            day += timedelta(days=1)
        elif schedule_type == "weekly":
            day += timedelta(days=(6 - day.weekday()) % 7)  # Python: Monday 0 … Sunday 6
            yield day
            day += timedelta(days=7)
        else:
            if day.day != 1:
                day = (day.replace(day=1) + timedelta(days=32)).replace(day=1)
            yield day
            day = (day + timedelta(days=32)).replace(day=1)


def next_run(schedule, *, now: datetime | None = None) -> datetime | None:
    """The next time the schedule fires, as an aware datetime in the site zone,
    or None when it is disabled.

    Wall-clock semantics, as beat's crontab: HH:MM local time. A time that does
    not exist on a spring-forward day fires at the same wall time shifted by the
    gap (02:30 → 03:30); an ambiguous autumn time fires once, at its first
    occurrence."""
    if not schedule.enabled:
        return None
    zone = site_zone()
    now_local = (now or timezone.now()).astimezone(zone)
    for day in _candidate_days(schedule.schedule_type, now_local.date()):
        wall = datetime.combine(day, schedule.schedule_time, tzinfo=zone)
        # Round-trip through UTC normalises a non-existent wall time.
        candidate = wall.astimezone(ZoneInfo("UTC")).astimezone(zone)
        if candidate > now_local:
            return candidate
    return None  # unreachable: the generators are infinite


def period(schedule) -> timedelta:
    return timedelta(days=PERIOD_DAYS[schedule.schedule_type])


def periodic_task_differs(schedule) -> bool:
    """True when the schedule's PeriodicTask is missing or says something else."""
    task = PeriodicTask.objects.filter(name=periodic_task_name(schedule.pk)).select_related("crontab").first()
    if task is None or task.crontab is None or schedule.periodic_task_id != task.pk:
        return True
    cron = task.crontab
    wanted = (
        str(schedule.schedule_time.minute), str(schedule.schedule_time.hour),
        SUNDAY_CRON if schedule.schedule_type == "weekly" else "*",
        "1" if schedule.schedule_type == "monthly" else "*",
        settings.MCSITE_TIME_ZONE,
    )
    actual = (cron.minute, cron.hour, cron.day_of_week, cron.day_of_month, str(cron.timezone))
    return (
        wanted != actual
        or task.enabled != schedule.enabled
        or task.task != TASK_NAME
        or json.loads(task.kwargs or "{}") != {"schedule_id": schedule.pk}
        or (task.queue or "") != schedule.server.node
    )
