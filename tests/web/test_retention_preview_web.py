"""Issue #12 on the pages: the schedule form takes the count and
grandfather-father-son retention rules in plain words; a change that would
delete backups the current retention keeps is shown first (which backups)
and saved only by a second POST confirming them — no JavaScript needed; the
schedule card, the server list and the admin show the retention in words."""

import datetime as dt
import re

import pytest
from django.utils import timezone

from backups import storage
from backups.models import BackupRecord, BackupSchedule
from backups.services import backup_schedule_create
from backups.services.retention import retention_apply

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def quiet_disk(monkeypatch):
    """The backup disk is at 10 % (the emergency rule has its own tests)."""
    monkeypatch.setattr("backups.services.retention.disk_usage_percent", lambda node=None: 10.0)


@pytest.fixture
def server(alice, make_server):
    server = make_server(alice, "gfs-world", world=False)
    backup_schedule_create(server=server, actor=alice, data={"schedule_type": "daily", "schedule_time": dt.time(2),
                                                             "retention_days": 30})
    return server


def _stored(server, at, n, **fields):
    name = f"server_backup_{at:%Y%m%d_%H%M%S}_{n}.tar.gz"
    path = storage.server_backup_dir(server.pk) / name
    path.write_bytes(b"x" * 3 * 2**20)
    return BackupRecord.objects.create(server=server, owner=server.owner, server_name=server.name, filename=name,
                                       storage_path=storage.relative_path(path), status="succeeded",
                                       size_bytes=3 * 2**20, created_at=at, trigger="scheduled", **fields)


@pytest.fixture
def daily_backups(server):
    """One backup a day for 20 days, the newest an hour ago."""
    now = timezone.now()
    return [_stored(server, now - dt.timedelta(days=d, hours=1), d) for d in range(20)]


def _form(**fields):
    return {"schedule_type": "daily", "schedule_time": "02:00", "interval_hours": "", "cron_expression": "",
            "retention_days": "30", "keep_last": "", "keep_hourly": "", "keep_daily": "", "keep_weekly": "",
            "keep_monthly": "", "enabled": "on", **fields}


def _alive(records) -> list:
    return [BackupRecord.objects.get(pk=r.pk).status == "succeeded" and storage.file_present(r) for r in records]


def test_the_form_shows_the_rules_in_plain_words_and_the_saved_values(alice_web, server):
    BackupSchedule.objects.filter(server=server).update(keep_daily=30, keep_monthly=6)
    body = alice_web.get(f"/backup/{server.pk}").content.decode()
    for label in ("Keep the newest", "Keep one per hour for", "Keep one per day for", "Keep one per week for",
                  "Keep one per month for"):
        assert f">{label}</label>" in body
    assert re.search(r'name="keep_daily" value="30"', body) and re.search(r'name="keep_monthly" value="6"', body)
    assert body.count('name="enabled"') == 1 and body.count('name="keep_daily"') == 1
    summary = re.search(r'data-testid="retention-summary">([^<]*)<', body).group(1)
    assert summary == "keeps 30 days, one a day for 30 days, and one a month for 6 months"


def test_a_change_that_deletes_backups_is_shown_first_and_saved_only_when_confirmed(alice_web, server,
                                                                                   daily_backups):
    url = f"/backup/{server.pk}/schedule"
    response = alice_web.post(url, _form(retention_days="3", keep_weekly="1"))
    assert response.status_code == 200
    body = response.content.decode()
    # Kept: the 3 newest days (0, 1, 2 days old) and the newest of the previous week is one of those,
    # so 17 backups would go; each is named with its date and size.
    assert "Saving this will delete 17 backups" in body
    assert "Not saved yet: this retention would delete 17 backups the current one keeps." in body
    # Enter in a field submits the form's first button: "Save Schedule", which asks again, never the confirmation.
    form = body[body.index(f'action="/backup/{server.pk}/schedule#schedule"'):]
    assert form.index('name="action" value="save"') < form.index('name="confirm_deletions"')
    doomed = daily_backups[3:]
    for record in doomed:
        assert f'data-deletes="{record.pk}"' in body and record.filename in body
    assert f'data-deletes="{daily_backups[2].pk}"' not in body
    assert "51.0 MiB" in body and "keeps 3 days, and one a week for 1 week" in body
    # Nothing changed yet: the schedule, the records, the files.
    schedule = BackupSchedule.objects.get(server=server)
    assert (schedule.retention_days, schedule.keep_weekly) == (30, None)
    assert all(_alive(daily_backups))

    ids = re.search(r'name="confirm_deletions" value="([0-9,]+)"', body).group(1)
    response = alice_web.post(url, _form(retention_days="3", keep_weekly="1", confirm_deletions=ids))
    assert response.status_code == 302
    schedule.refresh_from_db()
    assert (schedule.retention_days, schedule.keep_weekly) == (3, 1)
    page = alice_web.get(f"/backup/{server.pk}").content.decode()
    assert "17 backups will be deleted by the next retention run" in page
    # The next retention run deletes exactly the backups that were listed.
    server.refresh_from_db()
    deleted = retention_apply(server=server, disk_percent=10)
    assert sorted(r.pk for r in deleted) == sorted(r.pk for r in doomed)
    assert _alive(daily_backups) == [True] * 3 + [False] * 17


def test_a_confirmation_for_other_backups_asks_again(alice_web, server, daily_backups):
    """The list confirmed is the list deleted: when more backups would go
    than the ones confirmed (e.g. the page was open while the rules were
    made stricter elsewhere), the page asks again."""
    url = f"/backup/{server.pk}/schedule"
    stale = ",".join(str(r.pk) for r in daily_backups[10:])  # what 10 days would have deleted
    response = alice_web.post(url, _form(retention_days="5", confirm_deletions=stale))
    assert response.status_code == 200 and "Saving this will delete 15 backups" in response.content.decode()
    assert BackupSchedule.objects.get(server=server).retention_days == 30


def test_a_change_that_deletes_nothing_more_is_saved_at_once(alice_web, server, daily_backups):
    response = alice_web.post(f"/backup/{server.pk}/schedule", _form(retention_days="10", keep_daily="30"))
    assert response.status_code == 302
    schedule = BackupSchedule.objects.get(server=server)
    assert (schedule.retention_days, schedule.keep_daily) == (10, 30)
    body = alice_web.get(f"/backup/{server.pk}").content.decode()
    assert "Schedule updated." in body and "will be deleted" not in body
    assert "keeps 10 days, and one a day for 30 days" in body


@pytest.mark.parametrize("value", ["0", "-1", "1001", "five", "2.5"])
def test_bad_counts_are_refused_and_nothing_is_saved(alice_web, server, value):
    response = alice_web.post(f"/backup/{server.pk}/schedule", _form(keep_hourly=value))
    assert response.status_code == 400
    body = response.content.decode()
    assert "Enter a whole number from 1 to 1000, or leave it empty to turn this rule off." in body
    assert BackupSchedule.objects.get(server=server).keep_hourly is None


def test_a_new_schedule_that_would_delete_is_confirmed_too(alice_web, alice, make_server):
    """Without a schedule, retention keeps 30 days: a new schedule keeping
    fewer is a retention change as well."""
    bare = make_server(alice, "bare", world=False)
    old = [_stored(bare, timezone.now() - dt.timedelta(days=d), d) for d in (1, 5, 6)]
    response = alice_web.post(f"/backup/{bare.pk}/schedule", _form(retention_days="2"))
    assert response.status_code == 200 and "Saving this will delete 2 backups" in response.content.decode()
    assert not BackupSchedule.objects.filter(server=bare).exists()
    ids = re.search(r'name="confirm_deletions" value="([0-9,]+)"', response.content.decode()).group(1)
    assert alice_web.post(f"/backup/{bare.pk}/schedule", _form(retention_days="2", confirm_deletions=ids)).status_code == 302
    assert BackupSchedule.objects.get(server=bare).retention_days == 2
    assert all(_alive(old))  # deleted by the next retention run, not by the page


def test_another_users_schedule_is_404_and_unchanged(bob_web, server, daily_backups):
    response = bob_web.post(f"/backup/{server.pk}/schedule", _form(retention_days="1", confirm_deletions="1"))
    assert response.status_code == 404
    assert BackupSchedule.objects.get(server=server).retention_days == 30


def test_the_server_list_and_the_admin_show_the_retention(alice_web, server):
    BackupSchedule.objects.filter(server=server).update(retention_days=2, keep_daily=30)
    body = alice_web.get("/servers/").content.decode()
    assert re.search(r'data-testid="retention-summary">Keeps 2 days, and one a day for 30 days<', body)
    schedule = BackupSchedule.objects.get(server=server)
    assert "Keeps 2 days, and one a day for 30 days" in alice_web.get("/admin/backups/backupschedule/").content.decode()
    change = alice_web.get(f"/admin/backups/backupschedule/{schedule.pk}/change/").content.decode()
    for name in ("keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly"):
        assert f'name="{name}"' in change
    assert 'name="keep_daily" value="30"' in change


def test_the_admin_saves_the_rules_through_the_services_and_refuses_bad_ones(alice_web, server):
    schedule = BackupSchedule.objects.get(server=server)
    url = f"/admin/backups/backupschedule/{schedule.pk}/change/"
    post = {"schedule_type": "daily", "schedule_time": "02:00", "interval_hours": "", "cron_expression": "",
            "retention_days": "2", "keep_last": "", "keep_hourly": "", "keep_daily": "30", "keep_weekly": "",
            "keep_monthly": "", "enabled": "on", "compression": "", "encrypt": "unknown"}
    response = alice_web.post(url, {**post, "keep_daily": "0"})
    assert response.status_code == 200 and "Ensure this value is greater than or equal to 1." in response.content.decode()
    assert BackupSchedule.objects.get(pk=schedule.pk).retention_days == 30
    response = alice_web.post(url, post)
    assert response.status_code == 302, response.content.decode()[:2000]
    schedule.refresh_from_db()
    assert (schedule.retention_days, schedule.keep_daily) == (2, 30)
