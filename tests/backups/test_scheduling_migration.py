"""Issue #12: an existing install upgrades cleanly to hourly and cron
schedules — rows made before keep working, the schedule-type check
constraint takes the new values, and going back works while no schedule
uses them (and says what to change when one does)."""

import datetime as dt

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = ("backups", "0005_restore_keep_excluded_safety_days")
AFTER = ("backups", "0005_schedule_hourly_cron")


def _migrate(target):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([target])
    return executor.loader.project_state([target]).apps


def _latest():
    executor = MigrationExecutor(connection)
    return [key for key in executor.loader.graph.leaf_nodes()]


@pytest.fixture
def back_to_latest():
    yield
    executor = MigrationExecutor(connection)
    executor.migrate(_latest())


def _seed_rows(apps):
    User = apps.get_model("auth", "User")
    Server = apps.get_model("servers", "Server")
    BackupSchedule = apps.get_model("backups", "BackupSchedule")
    owner = User.objects.create(username="old-install")
    rows = []
    for n, kind in enumerate(("daily", "weekly", "monthly")):
        server = Server.objects.create(name=f"old-{n}", owner=owner, directory=f"/srv/old-{n}")
        rows.append(BackupSchedule.objects.create(server=server, schedule_type=kind,
                                                  schedule_time=dt.time(2 + n, 15), retention_days=30).pk)
    return owner, rows


def test_forwards_keeps_old_rows_and_accepts_the_new_types_backwards_refuses_them(back_to_latest):
    old = _migrate(BEFORE)
    owner, rows = _seed_rows(old)
    OldSchedule = old.get_model("backups", "BackupSchedule")
    Server = old.get_model("servers", "Server")
    extra = Server.objects.create(name="old-x", owner_id=owner.pk, directory="/srv/old-x")
    with transaction.atomic(), pytest.raises(IntegrityError):  # the old constraint refuses "hourly"
        OldSchedule.objects.create(server=extra, schedule_type="hourly", schedule_time=dt.time(1), retention_days=3)

    new = _migrate(AFTER)
    Schedule = new.get_model("backups", "BackupSchedule")
    kept = {s.pk: (s.schedule_type, s.schedule_time, s.interval_hours, s.cron_expression)
            for s in Schedule.objects.filter(pk__in=rows)}
    assert kept == {rows[0]: ("daily", dt.time(2, 15), None, ""), rows[1]: ("weekly", dt.time(3, 15), None, ""),
                    rows[2]: ("monthly", dt.time(4, 15), None, "")}
    hourly = Schedule.objects.create(server_id=extra.pk, schedule_type="hourly", schedule_time=dt.time(1),
                                     interval_hours=6, retention_days=3)
    # The database itself holds each type to its fields.
    for bad in ({"schedule_type": "hourly", "interval_hours": 5}, {"schedule_type": "daily", "interval_hours": 6},
                {"schedule_type": "cron", "cron_expression": "", "schedule_time": None},
                {"schedule_type": "daily", "schedule_time": None}, {"schedule_type": "yearly"}):
        with transaction.atomic(), pytest.raises(IntegrityError):
            Schedule.objects.filter(pk=hourly.pk).update(**bad)
    Schedule.objects.filter(pk=hourly.pk).update(schedule_type="cron", schedule_time=None, interval_hours=None,
                                                 cron_expression="*/30 * * * *")

    with pytest.raises(RuntimeError, match=rf"#{hourly.pk} \(cron\)"):
        _migrate(BEFORE)
    Schedule.objects.filter(pk=hourly.pk).delete()
    back = _migrate(BEFORE)
    assert set(back.get_model("backups", "BackupSchedule").objects.values_list("schedule_type", flat=True)) == \
        {"daily", "weekly", "monthly"}
