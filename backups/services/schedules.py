from django.db import IntegrityError, transaction

from backups import scheduling
from backups.models import BackupSchedule
from backups.services import retention
from mcsite.audit import audit
from mcsite.errors import DomainError, ErrorCode

SCHEDULE_FIELDS = ("schedule_type", "schedule_time", "interval_hours", "cron_expression", "retention_days", "enabled",
                   "compression", "encrypt")
# Count and grandfather-father-son retention (services/retention.py); None: off.
RETENTION_COUNT_FIELDS = ("keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly")
SCHEDULE_FIELDS += RETENTION_COUNT_FIELDS
SCHEDULE_FIELDS += ("skip_unchanged",)  # services/skipping.py


def _apply(schedule: BackupSchedule, data: dict) -> None:
    """Sets the given fields, then the type's rules (scheduling.schedule_problems):
    a field of another type that was not sent is cleared (PUT {"schedule_type":
    "daily"} on an hourly schedule drops its interval), one that was sent is
    refused; cron ignores `schedule_time`. Raises VALIDATION_ERROR with
    per-field details, so nothing is saved."""
    for field in SCHEDULE_FIELDS:
        if field in data:
            value = data[field]
            if field == "cron_expression":
                value = " ".join((value or "").split())
            setattr(schedule, field, value)
    if schedule.schedule_type != BackupSchedule.ScheduleType.HOURLY and "interval_hours" not in data:
        schedule.interval_hours = None
    if schedule.schedule_type != BackupSchedule.ScheduleType.CRON and "cron_expression" not in data:
        schedule.cron_expression = ""
    if schedule.schedule_type == BackupSchedule.ScheduleType.CRON:
        schedule.schedule_time = None  # not used by cron
    problems = {**retention.policy_problems(schedule), **scheduling.schedule_problems(schedule)}
    if problems:
        first = next(iter(problems.values()))[0]
        raise DomainError(ErrorCode.VALIDATION_ERROR, first, details=problems)


def backup_schedule_create(*, server, data: dict, actor, request=None, source: str = "api") -> BackupSchedule:
    """Creates the server's schedule and its PeriodicTask in one transaction."""
    try:
        with transaction.atomic():
            schedule = BackupSchedule(server=server)
            _apply(schedule, data)
            schedule.save()
            scheduling.sync_periodic_task(schedule)
    except IntegrityError:
        if BackupSchedule.objects.filter(server=server).exists():
            raise DomainError(ErrorCode.SCHEDULE_EXISTS) from None
        raise
    audit(actor=actor, action="schedule.create", obj=schedule, request=request, source=source,
          detail=_describe(schedule))
    return schedule


def backup_schedule_update(*, schedule: BackupSchedule, data: dict, actor, request=None, source: str = "api"):
    """Applies a full or partial change (e.g. {"enabled": false}) to the
    schedule and its PeriodicTask together."""
    with transaction.atomic():
        locked = BackupSchedule.objects.select_for_update().select_related("server").get(pk=schedule.pk)
        _apply(locked, data)
        locked.save()
        scheduling.sync_periodic_task(locked)
    audit(actor=actor, action="schedule.update", obj=locked, request=request, source=source,
          detail={"changed": sorted(k for k in data if k in SCHEDULE_FIELDS), **_describe(locked)})
    return locked


def backup_schedule_delete(*, schedule: BackupSchedule, actor, request=None, source: str = "api") -> None:
    with transaction.atomic():
        scheduling.delete_periodic_task(schedule)
        audit(actor=actor, action="schedule.delete", obj=schedule, request=request, source=source)
        schedule.delete()


def _describe(schedule: BackupSchedule) -> dict:
    described = {
        "schedule_type": schedule.schedule_type,
        "schedule_time": schedule.schedule_time.strftime("%H:%M") if schedule.schedule_time else None,
        "retention_days": schedule.retention_days,
        "enabled": schedule.enabled,
    }
    if schedule.interval_hours is not None:
        described["interval_hours"] = schedule.interval_hours
    for name in RETENTION_COUNT_FIELDS:
        if getattr(schedule, name) is not None:
            described[name] = getattr(schedule, name)
    if schedule.cron_expression:
        described["cron_expression"] = schedule.cron_expression
    return described
