from django.db import IntegrityError, transaction

from backups import scheduling
from backups.models import BackupSchedule
from mcsite.audit import audit
from mcsite.errors import DomainError, ErrorCode

SCHEDULE_FIELDS = ("schedule_type", "schedule_time", "retention_days", "enabled", "compression", "encrypt")


def backup_schedule_create(*, server, data: dict, actor, request=None, source: str = "api") -> BackupSchedule:
    """Creates the server's schedule and its PeriodicTask in one transaction."""
    try:
        with transaction.atomic():
            schedule = BackupSchedule(server=server)
            for field in SCHEDULE_FIELDS:
                if field in data:
                    setattr(schedule, field, data[field])
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
        for field in SCHEDULE_FIELDS:
            if field in data:
                setattr(locked, field, data[field])
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
    return {
        "schedule_type": schedule.schedule_type,
        "schedule_time": schedule.schedule_time.strftime("%H:%M"),
        "retention_days": schedule.retention_days,
        "enabled": schedule.enabled,
    }
