"""Issue #12: `hourly` (every N hours from schedule_time) and `cron` schedules.

Asked at frozen times, both our next runs and beat's own schedule object
(the TzAwareCrontab django-celery-beat builds from the schedule's crontab
row, its clock frozen) say the same wall-clock times in Europe/Berlin,
also across the spring-forward and fall-back nights of 2026:
  spring: Sunday 2026-03-29 02:00 CET → 03:00 CEST (02:xx does not exist)
  autumn: Sunday 2026-10-25 03:00 CEST → 02:00 CET (02:xx happens twice)
"""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from backups import scheduling
from backups.models import BackupSchedule
from backups.services import schedules
from mcsite.errors import DomainError

BERLIN = ZoneInfo("Europe/Berlin")
UTC = dt.timezone.utc


@pytest.fixture(autouse=True)
def berlin(settings):
    settings.MCSITE_TIME_ZONE = "Europe/Berlin"


def hourly(hhmm: str, every: int, enabled=True) -> BackupSchedule:
    return BackupSchedule(schedule_type="hourly", schedule_time=dt.time(*map(int, hhmm.split(":"))),
                          interval_hours=every, enabled=enabled)


def cron(expression: str, enabled=True) -> BackupSchedule:
    return BackupSchedule(schedule_type="cron", cron_expression=expression, enabled=enabled)


def utc(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def beat_fires(schedule, start: dt.datetime, count: int) -> list[dt.datetime]:
    """When beat would send the task: its crontab object asked at frozen
    times, as beat does (is_due(last_run_at) → due?, seconds to the next)."""
    entry = scheduling.beat_crontab(schedule)
    now = last = start.astimezone(UTC)
    fired = []
    for _ in range(10_000):
        entry.nowfun = lambda: now
        due, wait = entry.is_due(last)
        if due:
            fired.append(now)
            last = now
            if len(fired) == count:
                return fired
        now += dt.timedelta(seconds=max(wait, 1) if not due else wait or 1)
    raise AssertionError(f"beat fired only {fired}")


def assert_due_exactly_at(schedule, start: dt.datetime, expected_utc: list[dt.datetime]):
    runs = scheduling.next_runs(schedule, count=len(expected_utc), now=start)
    assert [r.astimezone(UTC) for r in runs] == expected_utc, [r.isoformat() for r in runs]
    assert all(r.tzinfo == BERLIN for r in runs)  # shown in the site zone
    assert beat_fires(schedule, start, len(expected_utc)) == expected_utc
    # Frozen a second before each run, beat does not send it; at the run, it does.
    entry = scheduling.beat_crontab(schedule)
    last = start.astimezone(UTC)
    for run in expected_utc:
        entry.nowfun = lambda run=run: run - dt.timedelta(seconds=1)
        assert entry.is_due(last)[0] is False, run
        entry.nowfun = lambda run=run: run
        assert entry.is_due(last)[0] is True, run
        last = run


# --- crontab rows ------------------------------------------------------------------

@pytest.mark.parametrize("hhmm,every,hours", [
    ("02:30", 6, "2,8,14,20"), ("14:30", 6, "2,8,14,20"), ("00:00", 12, "0,12"), ("23:05", 8, "7,15,23"),
    ("05:45", 1, ",".join(map(str, range(24)))), ("01:10", 3, "1,4,7,10,13,16,19,22"),
])
def test_hourly_is_a_crontab_with_an_hour_list(hhmm, every, hours):
    fields = scheduling.crontab_fields(hourly(hhmm, every))
    assert fields == {"minute": str(int(hhmm[3:])), "hour": hours, "day_of_month": "*", "month_of_year": "*",
                      "day_of_week": "*"}


def test_cron_is_a_crontab_with_the_users_fields():
    assert scheduling.crontab_fields(cron("15 3 * * 1,5")) == {
        "minute": "15", "hour": "3", "day_of_month": "*", "month_of_year": "*", "day_of_week": "1,5"}


def test_six_hourly_from_0230_runs_at_0230_0830_1430_2030():
    start = dt.datetime(2026, 6, 10, 0, 0, tzinfo=BERLIN)
    expected = [dt.datetime(2026, 6, 10, h, 30, tzinfo=BERLIN) for h in (2, 8, 14, 20)]
    expected.append(dt.datetime(2026, 6, 11, 2, 30, tzinfo=BERLIN))
    assert scheduling.next_runs(hourly("02:30", 6), now=start) == expected
    assert scheduling.next_runs(hourly("14:30", 6), now=start) == expected  # the same runs, anchored anywhere
    assert_due_exactly_at(hourly("02:30", 6), start, [r.astimezone(UTC) for r in expected])
    assert scheduling.next_run(hourly("02:30", 6), now=dt.datetime(2026, 6, 10, 8, 30, tzinfo=BERLIN)) == \
        dt.datetime(2026, 6, 10, 14, 30, tzinfo=BERLIN)


def test_cron_runs_on_its_days_only():
    start = dt.datetime(2026, 6, 10, 12, 0, tzinfo=BERLIN)  # a Wednesday
    runs = scheduling.next_runs(cron("15 3 * * 1,5"), now=start)
    assert [(r.strftime("%a %d"), r.hour, r.minute) for r in runs] == [
        ("Fri 12", 3, 15), ("Mon 15", 3, 15), ("Fri 19", 3, 15), ("Mon 22", 3, 15), ("Fri 26", 3, 15)]
    assert_due_exactly_at(cron("15 3 * * 1,5"), start, [r.astimezone(UTC) for r in runs])
    month_start = scheduling.next_runs(cron("0 4 1 * *"), count=2, now=start)
    assert month_start == [dt.datetime(2026, 7, 1, 4, tzinfo=BERLIN), dt.datetime(2026, 8, 1, 4, tzinfo=BERLIN)]


def test_a_disabled_schedule_has_no_next_runs():
    assert scheduling.next_runs(hourly("02:30", 6, enabled=False)) == []
    assert scheduling.next_run(cron("* * * * *", enabled=False)) is None


# --- across DST (Europe/Berlin) -------------------------------------------------------

def test_hourly_across_spring_forward_a_missing_time_fires_shifted_by_the_gap():
    # Every 2 hours from 00:30: 02:30 does not exist that night and fires at 03:30 CEST.
    start = dt.datetime(2026, 3, 28, 21, 0, tzinfo=BERLIN)
    assert_due_exactly_at(hourly("00:30", 2), start, [
        utc(2026, 3, 28, 21, 30),  # 22:30 CET
        utc(2026, 3, 28, 23, 30),  # 00:30 CET
        utc(2026, 3, 29, 1, 30),   # 02:30 → 03:30 CEST
        utc(2026, 3, 29, 2, 30),   # 04:30 CEST
        utc(2026, 3, 29, 4, 30),   # 06:30 CEST
    ])
    runs = scheduling.next_runs(hourly("00:30", 2), now=start)
    assert [f"{r:%H:%M %Z}" for r in runs] == ["22:30 CET", "00:30 CET", "03:30 CEST", "04:30 CEST", "06:30 CEST"]


def test_hourly_every_hour_across_spring_forward_runs_once_at_the_shifted_time():
    start = dt.datetime(2026, 3, 29, 0, 0, tzinfo=BERLIN)
    assert_due_exactly_at(hourly("00:30", 1), start, [
        utc(2026, 3, 28, 23, 30),  # 00:30 CET
        utc(2026, 3, 29, 0, 30),   # 01:30 CET
        utc(2026, 3, 29, 1, 30),   # 02:30 (missing) and 03:30 CEST: one run
        utc(2026, 3, 29, 2, 30),   # 04:30 CEST
    ])


def test_hourly_across_fall_back_an_ambiguous_time_fires_once_at_its_first_occurrence():
    start = dt.datetime(2026, 10, 25, 0, 0, tzinfo=BERLIN)
    assert_due_exactly_at(hourly("00:30", 1), start, [
        utc(2026, 10, 24, 22, 30),  # 00:30 CEST
        utc(2026, 10, 24, 23, 30),  # 01:30 CEST
        utc(2026, 10, 25, 0, 30),   # 02:30 CEST — and not again at 02:30 CET (01:30 UTC)
        utc(2026, 10, 25, 2, 30),   # 03:30 CET
        utc(2026, 10, 25, 3, 30),   # 04:30 CET
    ])
    every_four = scheduling.next_runs(hourly("02:30", 4), count=3, now=start)
    assert [r.astimezone(UTC) for r in every_four] == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 5, 30),
                                                      utc(2026, 10, 25, 9, 30)]


def test_cron_across_spring_forward():
    start = dt.datetime(2026, 3, 29, 0, 50, tzinfo=BERLIN)
    assert_due_exactly_at(cron("*/30 * * * *"), start, [
        utc(2026, 3, 29, 0, 0),   # 01:00 CET
        utc(2026, 3, 29, 0, 30),  # 01:30 CET
        utc(2026, 3, 29, 1, 0),   # 02:00 → 03:00 CEST, once with 03:00
        utc(2026, 3, 29, 1, 30),  # 02:30 → 03:30 CEST, once with 03:30
        utc(2026, 3, 29, 2, 0),   # 04:00 CEST
    ])
    sunday = scheduling.next_runs(cron("30 2 * * 0"), count=2, now=dt.datetime(2026, 3, 28, 12, tzinfo=BERLIN))
    assert [f"{r:%m-%d %H:%M %Z}" for r in sunday] == ["03-29 03:30 CEST", "04-05 02:30 CEST"]
    assert_due_exactly_at(cron("30 2 * * 0"), dt.datetime(2026, 3, 28, 12, tzinfo=BERLIN),
                          [utc(2026, 3, 29, 1, 30), utc(2026, 4, 5, 0, 30)])


def test_cron_across_fall_back():
    start = dt.datetime(2026, 10, 25, 1, 10, tzinfo=BERLIN)
    assert_due_exactly_at(cron("0 * * * *"), start, [
        utc(2026, 10, 25, 0, 0),  # 02:00 CEST — not again at 02:00 CET (01:00 UTC)
        utc(2026, 10, 25, 2, 0),  # 03:00 CET
        utc(2026, 10, 25, 3, 0),  # 04:00 CET
    ])
    assert_due_exactly_at(cron("30 2 * * sun"), dt.datetime(2026, 10, 24, 12, tzinfo=BERLIN),
                          [utc(2026, 10, 25, 0, 30), utc(2026, 11, 1, 1, 30)])


def test_every_minute_runs_every_minute():
    start = dt.datetime(2026, 6, 10, 12, 0, 30, tzinfo=BERLIN)
    assert_due_exactly_at(cron("* * * * *"), start,
                          [utc(2026, 6, 10, 10, m) for m in (1, 2, 3, 4, 5)])


# --- the period the dead-man alert uses ----------------------------------------------

@pytest.mark.parametrize("schedule,period", [
    (BackupSchedule(schedule_type="daily", schedule_time=dt.time(2)), dt.timedelta(days=1)),
    (BackupSchedule(schedule_type="weekly", schedule_time=dt.time(2)), dt.timedelta(days=7)),
    (BackupSchedule(schedule_type="monthly", schedule_time=dt.time(2)), dt.timedelta(days=31)),
    (hourly("02:30", 1), dt.timedelta(hours=1)),
    (hourly("02:30", 6), dt.timedelta(hours=6)),
    (hourly("02:30", 12), dt.timedelta(hours=12)),
    (cron("* * * * *"), dt.timedelta(minutes=1)),
    (cron("*/7 * * * *"), dt.timedelta(minutes=7)),           # :56 → :00 is 4, :00 → :07 is 7
    (cron("0 9-17 * * *"), dt.timedelta(hours=16)),           # 17:00 → 09:00
    (cron("15 3 * * 1,5"), dt.timedelta(days=4)),             # Monday → Friday
    (cron("*/5 * * * mon-fri"), dt.timedelta(days=2, minutes=5)),  # Friday 23:55 → Monday 00:00
    (cron("0 3 1,15 * *"), dt.timedelta(days=17)),            # 15 → 1st of a 31-day month
    (cron("0 3 * 2 *"), dt.timedelta(days=338)),              # 28/29 February → 1 February
])
def test_period(schedule, period):
    assert scheduling.period(schedule) == period


# --- words -----------------------------------------------------------------------------

@pytest.mark.parametrize("schedule,words", [
    (BackupSchedule(schedule_type="daily", schedule_time=dt.time(2)), "daily at 02:00"),
    (BackupSchedule(schedule_type="weekly", schedule_time=dt.time(3)), "every Sunday at 03:00"),
    (BackupSchedule(schedule_type="monthly", schedule_time=dt.time(4)), "on the 1st of every month at 04:00"),
    (hourly("02:30", 6), "every 6 hours at :30 from 02:30"),
    (hourly("14:30", 6), "every 6 hours at :30 from 02:30"),
    (hourly("07:05", 1), "every hour at :05"),
    (cron("15 3 * * 1,5"), "at 03:15, only on Monday and Friday"),
    (cron("* * * * *"), "every minute"),
])
def test_descriptions(schedule, words):
    assert scheduling.describe(schedule) == words


# --- services, PeriodicTask, reconcile ---------------------------------------------------

@pytest.mark.django_db
def test_hourly_and_cron_own_a_crontab_periodic_task_kept_in_step(alice, make_server):
    server = make_server(alice, world=False)
    schedule = schedules.backup_schedule_create(server=server, actor=alice, data={
        "schedule_type": "hourly", "schedule_time": dt.time(2, 30), "interval_hours": 6})
    task = PeriodicTask.objects.get(name=f"backup-schedule:{schedule.pk}")
    assert (task.crontab.minute, task.crontab.hour, task.crontab.day_of_week, str(task.crontab.timezone)) == \
        ("30", "2,8,14,20", "*", "Europe/Berlin")
    assert task.interval is None and "every 6 hours at :30 from 02:30" in task.description
    assert not scheduling.periodic_task_differs(schedule)

    schedule = schedules.backup_schedule_update(schedule=schedule, actor=alice, data={
        "schedule_type": "cron", "cron_expression": "15 3 * jan-jun 1,5"})
    assert (schedule.schedule_time, schedule.interval_hours) == (None, None)
    task.refresh_from_db()
    assert (task.crontab.minute, task.crontab.hour, task.crontab.day_of_month, task.crontab.month_of_year,
            task.crontab.day_of_week) == ("15", "3", "*", "jan-jun", "1,5")
    assert not scheduling.periodic_task_differs(schedule)

    # Drift is repaired by reconcile_schedules, cron fields included.
    PeriodicTask.objects.filter(pk=task.pk).update(crontab=scheduling.crontab_for(
        BackupSchedule(schedule_type="daily", schedule_time=dt.time(3, 15))))
    assert scheduling.periodic_task_differs(schedule)
    call_command("reconcile_schedules", verbosity=0)
    task.refresh_from_db()
    assert (task.crontab.month_of_year, task.crontab.day_of_week) == ("jan-jun", "1,5")


@pytest.mark.django_db
@pytest.mark.parametrize("data,field", [
    ({"schedule_type": "hourly", "schedule_time": dt.time(2)}, "interval_hours"),
    ({"schedule_type": "hourly", "schedule_time": dt.time(2), "interval_hours": 5}, "interval_hours"),
    ({"schedule_type": "daily", "schedule_time": dt.time(2), "interval_hours": 6}, "interval_hours"),
    ({"schedule_type": "cron", "cron_expression": "0 3 1 * 1"}, "cron_expression"),
    ({"schedule_type": "cron"}, "cron_expression"),
    ({"schedule_type": "monthly"}, "schedule_time"),
])
def test_the_services_refuse_a_wrong_combination_and_save_nothing(alice, make_server, data, field):
    server = make_server(alice, world=False)
    with pytest.raises(DomainError) as refused:
        schedules.backup_schedule_create(server=server, actor=alice, data=data)
    assert refused.value.code.value == "VALIDATION_ERROR" and field in refused.value.details
    assert not BackupSchedule.objects.exists() and not PeriodicTask.objects.filter(
        name__startswith="backup-schedule:").exists()


@pytest.mark.django_db
def test_the_api_shows_the_next_five_runs_asked_at_a_frozen_time(alice_api, alice, make_server, monkeypatch):
    server = make_server(alice, world=False)
    response = alice_api.post("/api/backups/schedules", {
        "server_id": server.pk, "schedule_type": "hourly", "schedule_time": "00:30", "interval_hours": 2,
        "retention_days": 2, "enabled": True}, format="json")
    assert response.status_code == 201, response.json()
    frozen = dt.datetime(2026, 3, 28, 21, 0, tzinfo=BERLIN)
    monkeypatch.setattr(timezone, "now", lambda: frozen.astimezone(UTC))
    data = alice_api.get(f"/api/backups/schedules/{server.pk}").json()["data"]
    assert data["next_runs"] == ["2026-03-28T22:30:00+01:00", "2026-03-29T00:30:00+01:00",
                                 "2026-03-29T03:30:00+02:00", "2026-03-29T04:30:00+02:00",
                                 "2026-03-29T06:30:00+02:00"]
    assert data["next_run"] == data["next_runs"][0]
    assert (data["description"], data["time_zone"], data["interval_hours"], data["cron_expression"]) == \
        ("every 2 hours at :30 from 00:30", "Europe/Berlin", 2, None)
    status = alice_api.get(f"/api/backups/{server.pk}/status").json()["data"]
    assert status["schedule"]["next_runs"] == data["next_runs"]


@pytest.mark.django_db
def test_the_seeds_daily_schedule_object_is_unchanged_apart_from_new_keys(alice_api, alice, make_server):
    server = make_server(alice, world=False)
    response = alice_api.post("/api/backups/schedules", {
        "server_id": server.pk, "schedule_type": "daily", "schedule_time": "02:00", "retention_days": 30,
        "enabled": True}, format="json")
    assert response.status_code == 201, response.json()
    data = response.json()["data"]
    assert (data["schedule_type"], data["schedule_time"], data["retention_days"], data["enabled"]) == \
        ("daily", "02:00", 30, True)
    assert (data["interval_hours"], data["cron_expression"], data["description"]) == (None, None, "daily at 02:00")
    assert len(data["next_runs"]) == 5 and all(run.endswith(("+01:00", "+02:00")) for run in data["next_runs"])
    cron_row = PeriodicTask.objects.get(name=f"backup-schedule:{data['id']}").crontab
    assert (cron_row.minute, cron_row.hour, cron_row.day_of_week, cron_row.day_of_month, cron_row.month_of_year) \
        == ("0", "2", "*", "*", "*")
