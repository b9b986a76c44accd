"""Issue #12: schedules beyond the seed's three — `hourly` (every
`interval_hours` from `schedule_time`) and `cron` (`cron_expression`;
`schedule_time` unused, so it may be empty).

Existing rows are daily, weekly or monthly with a time, no interval and no
expression: they satisfy the new constraints as they are, and their
PeriodicTasks do not change. Going back refuses while hourly or cron
schedules exist (the old schema cannot hold them): change or delete them
first."""

from django.db import migrations, models

NEW_TYPES = ("hourly", "cron")


def refuse_going_back_with_new_types(apps, schema_editor):
    BackupSchedule = apps.get_model("backups", "BackupSchedule")
    kept = list(BackupSchedule.objects.filter(schedule_type__in=NEW_TYPES).values_list("pk", "schedule_type"))
    if kept:
        listed = ", ".join(f"#{pk} ({kind})" for pk, kind in kept)
        raise RuntimeError(f"Cannot migrate backups below 0005_schedule_hourly_cron: these schedules are hourly "
                           f"or cron, which the older schema cannot store: {listed}. Change them to daily, weekly "
                           f"or monthly, or delete them, then migrate again.")


class Migration(migrations.Migration):

    dependencies = [
        ("backups", "0005_restore_keep_excluded_safety_days"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="backupschedule",
            name="schedule_type_valid",
        ),
        migrations.AddField(
            model_name="backupschedule",
            name="cron_expression",
            field=models.CharField(
                blank=True, default="", max_length=255,
                help_text='Cron schedules only: minute hour day-of-month month day-of-week, e.g. "15 3 * * 1,5"'),
        ),
        migrations.AddField(
            model_name="backupschedule",
            name="interval_hours",
            field=models.PositiveSmallIntegerField(
                blank=True, null=True,
                choices=[(1, "every 1 h"), (2, "every 2 h"), (3, "every 3 h"), (4, "every 4 h"), (6, "every 6 h"),
                         (8, "every 8 h"), (12, "every 12 h")],
                help_text="Hourly schedules only: run every N hours from the backup time"),
        ),
        migrations.AlterField(
            model_name="backupschedule",
            name="schedule_time",
            field=models.TimeField(
                blank=True, null=True,
                help_text="HH:MM in the site's time zone (hourly: the anchor of the runs; cron: not used)"),
        ),
        migrations.AlterField(
            model_name="backupschedule",
            name="schedule_type",
            field=models.CharField(
                choices=[("daily", "Daily"), ("weekly", "Weekly"), ("monthly", "Monthly"),
                         ("hourly", "Every few hours"), ("cron", "Cron expression")],
                default="daily", max_length=8),
        ),
        migrations.AddConstraint(
            model_name="backupschedule",
            constraint=models.CheckConstraint(
                condition=models.Q(("schedule_type__in", ["daily", "weekly", "monthly", "hourly", "cron"])),
                name="schedule_type_valid"),
        ),
        migrations.AddConstraint(
            model_name="backupschedule",
            constraint=models.CheckConstraint(
                condition=models.Q(("schedule_type", "cron"), ("schedule_time__isnull", False), _connector="OR"),
                name="schedule_time_unless_cron",
                violation_error_message="A backup time is required unless the schedule is a cron expression."),
        ),
        migrations.AddConstraint(
            model_name="backupschedule",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("interval_hours__in", (1, 2, 3, 4, 6, 8, 12)), ("schedule_type", "hourly")),
                    models.Q(models.Q(("schedule_type", "hourly"), _negated=True), ("interval_hours__isnull", True)),
                    _connector="OR"),
                name="schedule_interval_hours_hourly_only",
                violation_error_message="Hourly schedules need interval_hours (1, 2, 3, 4, 6, 8 or 12); "
                                        "other types take none."),
        ),
        migrations.AddConstraint(
            model_name="backupschedule",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("schedule_type", "cron"), models.Q(("cron_expression", ""), _negated=True)),
                    models.Q(models.Q(("schedule_type", "cron"), _negated=True), ("cron_expression", "")),
                    _connector="OR"),
                name="schedule_cron_expression_cron_only",
                violation_error_message="Cron schedules need a cron expression; other types take none."),
        ),
        # Last, so that going back checks first, before any column or constraint changes.
        migrations.RunPython(migrations.RunPython.noop, refuse_going_back_with_new_types, elidable=False),
    ]
