"""next_run is exact: weekly on Sunday, monthly on the 1st, across DST in a
non-UTC zone; each schedule owns one PeriodicTask kept in step."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from backups import scheduling
from backups.models import BackupSchedule
from backups.services import schedules

BERLIN = ZoneInfo("Europe/Berlin")


def _schedule(kind, hhmm, enabled=True):
    return BackupSchedule(schedule_type=kind, schedule_time=dt.time(*map(int, hhmm.split(":"))), enabled=enabled)


@pytest.fixture
def berlin(settings):
    settings.MCSITE_TIME_ZONE = "Europe/Berlin"


def test_daily_is_today_if_still_ahead_else_tomorrow(berlin):
    now = dt.datetime(2026, 6, 10, 1, 0, tzinfo=BERLIN)
    assert scheduling.next_run(_schedule("daily", "02:00"), now=now) == dt.datetime(2026, 6, 10, 2, 0, tzinfo=BERLIN)
    now = dt.datetime(2026, 6, 10, 2, 0, tzinfo=BERLIN)
    assert scheduling.next_run(_schedule("daily", "02:00"), now=now) == dt.datetime(2026, 6, 11, 2, 0, tzinfo=BERLIN)


def test_weekly_lands_on_a_sunday(berlin):
    now = dt.datetime(2026, 6, 10, 12, 0, tzinfo=BERLIN)  # a Wednesday
    nxt = scheduling.next_run(_schedule("weekly", "03:00"), now=now)
    assert nxt.weekday() == 6 and nxt == dt.datetime(2026, 6, 14, 3, 0, tzinfo=BERLIN)
    sunday_after = dt.datetime(2026, 6, 14, 3, 30, tzinfo=BERLIN)
    assert scheduling.next_run(_schedule("weekly", "03:00"), now=sunday_after).date() == dt.date(2026, 6, 21)


def test_monthly_lands_on_the_first(berlin):
    now = dt.datetime(2026, 12, 15, tzinfo=BERLIN)
    assert scheduling.next_run(_schedule("monthly", "04:00"), now=now) == dt.datetime(2027, 1, 1, 4, 0, tzinfo=BERLIN)
    now = dt.datetime(2026, 1, 1, 3, 59, tzinfo=BERLIN)
    assert scheduling.next_run(_schedule("monthly", "04:00"), now=now).date() == dt.date(2026, 1, 1)


def test_across_the_spring_dst_change_the_wall_time_is_kept(berlin):
    # Berlin springs forward on Sunday 2026-03-29 at 02:00 -> 03:00.
    now = dt.datetime(2026, 3, 28, 12, 0, tzinfo=BERLIN)
    nxt = scheduling.next_run(_schedule("daily", "04:00"), now=now)
    assert nxt == dt.datetime(2026, 3, 29, 4, 0, tzinfo=BERLIN)
    assert nxt.utcoffset() == dt.timedelta(hours=2)
    assert nxt.astimezone(dt.timezone.utc).hour == 2
    weekly = scheduling.next_run(_schedule("weekly", "02:30"), now=now)  # 02:30 does not exist that night
    assert weekly.date() == dt.date(2026, 3, 29) and (weekly.hour, weekly.minute) == (3, 30)


def test_across_the_autumn_dst_change_an_ambiguous_time_fires_once_first(berlin):
    # Berlin falls back on Sunday 2026-10-25 at 03:00 -> 02:00; 02:30 happens twice.
    now = dt.datetime(2026, 10, 24, 12, 0, tzinfo=BERLIN)
    nxt = scheduling.next_run(_schedule("weekly", "02:30"), now=now)
    assert nxt.astimezone(dt.timezone.utc) == dt.datetime(2026, 10, 25, 0, 30, tzinfo=dt.timezone.utc)
    after_first = nxt + dt.timedelta(minutes=1)
    assert scheduling.next_run(_schedule("weekly", "02:30"), now=after_first).date() == dt.date(2026, 11, 1)


def test_disabled_schedule_has_no_next_run():
    assert scheduling.next_run(_schedule("daily", "02:00", enabled=False)) is None


@pytest.mark.django_db
def test_periodic_task_follows_create_update_disable_delete(alice, make_server, berlin):
    server = make_server(alice, world=False)
    schedule = schedules.backup_schedule_create(
        server=server, data={"schedule_type": "daily", "schedule_time": dt.time(2, 0)}, actor=alice)
    task = PeriodicTask.objects.get(name=f"backup-schedule:{schedule.pk}")
    assert task.kwargs == f'{{"schedule_id": {schedule.pk}}}' and task.enabled and task.queue == "default"
    assert (task.crontab.hour, task.crontab.minute, str(task.crontab.timezone)) == ("2", "0", "Europe/Berlin")
    first_crontab = task.crontab_id

    schedules.backup_schedule_update(schedule=schedule, data={"schedule_type": "monthly"}, actor=alice)
    task.refresh_from_db()
    assert (task.crontab.day_of_month, task.crontab.day_of_week) == ("1", "*")
    assert CrontabSchedule.objects.filter(pk=first_crontab).exists()  # never edited in place

    schedules.backup_schedule_update(schedule=schedule, data={"enabled": False}, actor=alice)
    task.refresh_from_db()
    assert task.enabled is False

    schedules.backup_schedule_delete(schedule=schedule, actor=alice)
    assert not PeriodicTask.objects.filter(name__startswith="backup-schedule:").exists()


@pytest.mark.django_db
def test_reconcile_repairs_drift_both_ways(alice, make_server):
    server = make_server(alice, world=False)
    schedule = schedules.backup_schedule_create(
        server=server, data={"schedule_type": "weekly", "schedule_time": dt.time(3, 0)}, actor=alice)
    PeriodicTask.objects.filter(name=f"backup-schedule:{schedule.pk}").update(enabled=False)
    orphan = PeriodicTask.objects.create(name="backup-schedule:999999", task=scheduling.TASK_NAME,
                                         crontab=CrontabSchedule.objects.first())
    PeriodicTask.objects.create(name="someone-elses-task", task="x.y", crontab=CrontabSchedule.objects.first())
    call_command("reconcile_schedules", verbosity=0)
    assert PeriodicTask.objects.get(name=f"backup-schedule:{schedule.pk}").enabled is True
    assert not PeriodicTask.objects.filter(pk=orphan.pk).exists()
    assert PeriodicTask.objects.filter(name="someone-elses-task").exists()
    PeriodicTask.objects.filter(name=f"backup-schedule:{schedule.pk}").delete()
    call_command("reconcile_schedules", verbosity=0)
    assert PeriodicTask.objects.get(name=f"backup-schedule:{schedule.pk}").crontab.day_of_week == "0"


@pytest.mark.django_db
def test_register_system_tasks_only_touches_its_own():
    PeriodicTask.objects.create(name="system:obsolete", task="x", crontab=CrontabSchedule.objects.create())
    PeriodicTask.objects.create(name="mine", task="x", crontab=CrontabSchedule.objects.create())
    call_command("register_system_tasks", verbosity=0)
    names = set(PeriodicTask.objects.values_list("name", flat=True))
    assert {"system:reap-stale-runs", "system:check-disk-usage", "system:sweep-retention",
            "system:check-dead-man", "mine"} <= names
    assert "system:obsolete" not in names
