"""Registers the periodic system tasks (reaper, disk monitor, retention
sweep, dead-man check, re-check of old backups, node heartbeats, repository
prunes). It only touches PeriodicTasks named `system:…`."""

import json

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from backups.services.targets import default_target_sync

SYSTEM_TASKS = {
    "system:reap-stale-runs": ("backups.tasks.reap_stale_runs", 1, IntervalSchedule.MINUTES),
    "system:check-disk-usage": ("backups.tasks.check_disk_usage", 10, IntervalSchedule.MINUTES),
    "system:sweep-retention": ("backups.tasks.sweep_retention", 1, IntervalSchedule.HOURS),
    "system:check-dead-man": ("backups.tasks.check_dead_man", 30, IntervalSchedule.MINUTES),
    "system:recheck-backups": ("backups.tasks.recheck_backups", 1, IntervalSchedule.DAYS),
    "system:sweep-offsite-copies": ("backups.tasks.sweep_offsite_copies", 1, IntervalSchedule.HOURS),
    "system:recheck-offsite-copies": ("backups.tasks.recheck_offsite_copies", 1, IntervalSchedule.DAYS),
    # Incremental repositories (issue #14): marks unused data, deletes what an earlier prune marked.
    "system:prune-repositories": ("backups.tasks.prune_repositories", 1, IntervalSchedule.DAYS),
    # Every node's heartbeat, and silent nodes found (issue #15); the period is MCSITE_NODE_HEARTBEAT_SECONDS.
    "system:node-heartbeats": ("servers.tasks.send_node_heartbeats", None, IntervalSchedule.SECONDS),
}


class Command(BaseCommand):
    help = "Create or update mcsite's own periodic tasks (names starting with 'system:')."

    def handle(self, *args, **options):
        with transaction.atomic():
            for name, (task, every, period) in SYSTEM_TASKS.items():
                every = every or settings.MCSITE_NODE_HEARTBEAT_SECONDS
                interval, _ = IntervalSchedule.objects.get_or_create(every=every, period=period)
                PeriodicTask.objects.update_or_create(
                    name=name,
                    defaults={"task": task, "interval": interval, "crontab": None, "kwargs": json.dumps({}),
                              "enabled": True, "description": "mcsite system task"},
                )
            stale = PeriodicTask.objects.filter(name__startswith="system:").exclude(name__in=SYSTEM_TASKS)
            removed = stale.count()
            stale.delete()
        self.stdout.write(f"{len(SYSTEM_TASKS)} system tasks registered, {removed} obsolete removed")
        default = default_target_sync()  # MCSITE_OFFSITE_DEFAULT (issue #13)
        if default is not None:
            self.stdout.write(f"Storage target '{default.name}' ({default.kind}) set from MCSITE_OFFSITE_DEFAULT")
