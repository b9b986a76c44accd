"""The dead-man alert (issue #12): it fires when the last two expected runs
of a schedule neither succeeded nor were skipped — a skip because nothing
changed is healthy, the last backup still holds the world — and at most
once a day per server, even when the incident resolves and opens again."""

import datetime as dt

import pytest
from django.core import mail

from backups.models import AlertIncident, BackupRecord
from backups.services import schedules
from backups.services.maintenance import dead_man_check

pytestmark = pytest.mark.django_db

MINUTE = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)


@pytest.fixture
def hourly(alice, make_server):
    """A server backed up every hour at :00, and the first hour it is due."""
    server = make_server(alice, world=False)
    schedule = schedules.backup_schedule_create(
        server=server, data={"schedule_type": "hourly", "schedule_time": dt.time(0, 0), "interval_hours": 1},
        actor=alice)
    first = (schedule.created_at + HOUR).replace(minute=0, second=0, microsecond=0)
    return server, first


def _record(server, status: str, at: dt.datetime, **fields) -> BackupRecord:
    return BackupRecord.objects.create(server=server, owner=server.owner, server_name=server.name,
                                       trigger="scheduled", status=status, created_at=at, started_at=at,
                                       finished_at=at + MINUTE, **fields)


def _alerts() -> list[str]:
    return [m.subject for m in mail.outbox if "No successful backup" in m.subject]


def test_two_missed_runs_alert_once(hourly):
    server, first = hourly
    _record(server, "failed", first + MINUTE / 2, error_code="BACKUP_FAILED")
    assert dead_man_check(now=first + 30 * MINUTE) == []  # one missed run is no alarm
    assert dead_man_check(now=first + HOUR + 10 * MINUTE) == []  # the second may still be on its way
    _record(server, "failed", first + HOUR + MINUTE / 2, error_code="BACKUP_FAILED")
    assert dead_man_check(now=first + HOUR + 16 * MINUTE) == [server.pk]
    assert dead_man_check(now=first + 2 * HOUR + 16 * MINUTE) == []
    assert len(_alerts()) == 1
    body = mail.outbox[-1].body
    assert "neither succeeded nor were skipped" in body and "last successful backup: never" in body


def test_skips_because_nothing_changed_keep_it_quiet(hourly):
    server, first = hourly
    _record(server, "succeeded", first + MINUTE / 2)
    for hour in range(1, 6):
        _record(server, "skipped", first + hour * HOUR + MINUTE / 2,
                skip_reason="Nothing changed since the backup of … and no player was online")
    assert dead_man_check(now=first + 5 * HOUR + 30 * MINUTE) == []
    assert not AlertIncident.objects.filter(kind="dead_man").exists()
    # The same hours without the skips: two missed runs, an alert.
    BackupRecord.objects.filter(status="skipped").delete()
    assert dead_man_check(now=first + 5 * HOUR + 30 * MINUTE) == [server.pk]


def test_a_success_and_a_skip_in_a_row_is_healthy(hourly):
    server, first = hourly
    _record(server, "succeeded", first + MINUTE / 2)
    _record(server, "failed", first + HOUR + MINUTE / 2, error_code="BACKUP_FAILED")
    _record(server, "skipped", first + 2 * HOUR + MINUTE / 2, skip_reason="Nothing changed")
    _record(server, "failed", first + 3 * HOUR + MINUTE / 2, error_code="BACKUP_FAILED")
    assert dead_man_check(now=first + 3 * HOUR + 30 * MINUTE) == []


def test_not_again_within_a_day_even_after_it_resolved(hourly):
    server, first = hourly
    opened = first + HOUR + 20 * MINUTE
    assert dead_man_check(now=opened) == [server.pk]
    # A good backup: the incident resolves.
    good = _record(server, "succeeded", first + HOUR + 30 * MINUTE)
    assert dead_man_check(now=first + HOUR + 40 * MINUTE) == []
    assert not AlertIncident.objects.filter(kind="dead_man", resolved_at__isnull=True).exists()
    # Two more hours missed after it: within the day, no second alert.
    assert dead_man_check(now=good.created_at + 2 * HOUR) == []
    assert dead_man_check(now=opened + 23 * HOUR) == []
    assert len(_alerts()) == 1
    # A day after the first one it may alert again.
    assert dead_man_check(now=opened + 24 * HOUR + MINUTE) == [server.pk]
    assert len(_alerts()) == 2


def test_a_disabled_schedule_or_one_with_a_backup_running_is_not_alerted(hourly):
    server, first = hourly
    _record(server, "running", first + 2 * HOUR)
    assert dead_man_check(now=first + 2 * HOUR + 30 * MINUTE) == []
    BackupRecord.objects.filter(status="running").update(status="failed")
    schedules.backup_schedule_update(schedule=server.backup_schedule, data={"enabled": False}, actor=server.owner)
    assert dead_man_check(now=first + 5 * HOUR) == []
