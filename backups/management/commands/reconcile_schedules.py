"""Repairs drift between BackupSchedules and their PeriodicTasks, both ways:
a schedule without its task (or with a task that says something else) gets
it rebuilt; a `backup-schedule:` task without a schedule is deleted."""

from django.core.management.base import BaseCommand
from django.db import transaction
from django_celery_beat.models import PeriodicTask

from backups import scheduling
from backups.models import BackupSchedule


class Command(BaseCommand):
    help = "Bring every backup schedule's PeriodicTask in line with it; remove orphaned ones."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Only report what would change")

    def handle(self, *args, dry_run=False, **options):
        repaired = removed = 0
        with transaction.atomic():
            for schedule in BackupSchedule.objects.select_related("server", "periodic_task", "periodic_task__crontab"):
                if scheduling.periodic_task_differs(schedule):
                    repaired += 1
                    self.stdout.write(f"repair: schedule {schedule.pk} ({schedule.server.name})")
                    if not dry_run:
                        scheduling.sync_periodic_task(schedule)
            known = {scheduling.periodic_task_name(pk) for pk in BackupSchedule.objects.values_list("pk", flat=True)}
            orphans = PeriodicTask.objects.filter(name__startswith=scheduling.TASK_PREFIX).exclude(name__in=known)
            for task in orphans:
                removed += 1
                self.stdout.write(f"remove orphan: {task.name}")
                if not dry_run:
                    task.delete()
            if dry_run:
                transaction.set_rollback(True)
        self.stdout.write(self.style.SUCCESS(f"{repaired} repaired, {removed} orphaned removed"
                                             + (" (dry run)" if dry_run else "")))
