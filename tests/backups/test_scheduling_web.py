"""Issue #12 on the pages: the schedule form takes hourly and cron schedules,
says what is wrong with a cron expression, and the schedule card shows the
schedule in words with its next five runs."""

import datetime as dt

import pytest
from django.test import Client
from django_celery_beat.models import PeriodicTask

from backups.models import BackupSchedule
from backups.services import backup_schedule_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice_web(alice):
    client = Client()
    client.force_login(alice)
    return client


@pytest.fixture
def server(alice, make_server):
    return make_server(alice, "alice-world", world=False)


def _form(**fields):
    return {"schedule_type": "daily", "schedule_time": "02:00", "interval_hours": "", "cron_expression": "",
            "retention_days": "30", "enabled": "on", **fields}


def test_the_form_makes_an_hourly_schedule_and_the_card_lists_its_next_runs(alice_web, server, settings):
    settings.MCSITE_TIME_ZONE = "Europe/Berlin"
    response = alice_web.post(f"/backup/{server.pk}/schedule",
                              _form(schedule_type="hourly", schedule_time="02:30", interval_hours="6",
                                    cron_expression="ignored: not a cron schedule"))
    assert response.status_code == 302
    schedule = BackupSchedule.objects.get(server=server)
    assert (schedule.schedule_type, schedule.interval_hours, schedule.cron_expression) == ("hourly", 6, "")
    assert PeriodicTask.objects.get(name=f"backup-schedule:{schedule.pk}").crontab.hour == "2,8,14,20"
    body = alice_web.get(f"/backup/{server.pk}").content.decode()
    assert "Every 6 hours at :30 from 02:30" in body and "Europe/Berlin" in body
    assert 'data-testid="next-runs"' in body and body.count("<time datetime=") >= 5
    assert '<option value="6" selected>' in body  # the form shows what is saved


def test_a_cron_schedule_needs_no_time(alice_web, server):
    response = alice_web.post(f"/backup/{server.pk}/schedule",
                              _form(schedule_type="cron", schedule_time="", cron_expression="15 3 * * 1,5"))
    assert response.status_code == 302
    schedule = BackupSchedule.objects.get(server=server)
    assert (schedule.schedule_type, schedule.schedule_time, schedule.cron_expression) == ("cron", None,
                                                                                          "15 3 * * 1,5")
    body = alice_web.get(f"/backup/{server.pk}").content.decode()
    assert "At 03:15, only on Monday and Friday" in body and "<code>15 3 * * 1,5</code>" in body
    assert "At 03:15, only on Monday and Friday UTC" in alice_web.get("/servers/").content.decode()


@pytest.mark.parametrize("fields,says", [
    ({"schedule_type": "cron", "cron_expression": "0 3 1 * 1"}, "match both"),
    ({"schedule_type": "cron", "cron_expression": "0 3 * *"}, "5 fields"),
    ({"schedule_type": "cron", "cron_expression": ""}, "required for cron"),
    ({"schedule_type": "hourly", "interval_hours": ""}, "required for hourly"),
    ({"schedule_type": "hourly", "interval_hours": "5"}, "5 is not one of the available choices"),
    ({"schedule_type": "daily", "schedule_time": ""}, "required for daily"),
])
def test_a_wrong_schedule_is_refused_on_its_field_and_the_form_kept(alice_web, server, fields, says):
    response = alice_web.post(f"/backup/{server.pk}/schedule", _form(**fields))
    assert response.status_code == 400
    body = response.content.decode()
    assert says in body.replace("&quot;", '"').replace("&#x27;", "'"), body[:3000]
    assert not BackupSchedule.objects.exists()


def test_the_new_server_form_can_start_with_an_hourly_schedule(alice_web, alice, make_server_dir):
    make_server_dir("hourly-world", world=False)
    response = alice_web.post("/servers/new/", {
        "name": "Hourly", "directory": "hourly-world",
        "start_command": "java -Xms{mem}M -Xmx{mem}M -jar server.jar nogui", "memory_mb": "1024",
        "rcon_host": "127.0.0.1", "rcon_port": "25575", "stop_timeout": "60", "backup_mode": "stop",
        "exclude_patterns": "logs/", "node": "default", "backup-enable_automated_backups": "on",
        "backup-schedule_type": "hourly", "backup-schedule_time": "01:00", "backup-interval_hours": "4",
        "backup-cron_expression": "", "backup-retention_days": "2",
    })
    assert response.status_code == 302, response.content.decode()[:3000]
    schedule = BackupSchedule.objects.get(server__name="Hourly")
    assert (schedule.schedule_type, schedule.schedule_time, schedule.interval_hours) == ("hourly", dt.time(1), 4)


def test_the_admin_edits_a_schedule_into_a_cron_one(admin_user, alice, server):
    schedule = backup_schedule_create(server=server, actor=alice,
                                      data={"schedule_type": "daily", "schedule_time": dt.time(2)})
    client = Client()
    client.force_login(admin_user)
    url = f"/admin/backups/backupschedule/{schedule.pk}/change/"
    page = client.get(url).content.decode()
    assert "daily at 02:00" in page  # next runs, in words
    response = client.post(url, {"schedule_type": "cron", "schedule_time": "02:00", "interval_hours": "",
                                 "cron_expression": "0 3 1 * 1", "retention_days": "30", "enabled": "on",
                                 "compression": "", "encrypt": "unknown"})
    assert response.status_code == 200 and "match both" in response.content.decode()
    response = client.post(url, {"schedule_type": "cron", "schedule_time": "02:00", "interval_hours": "",
                                 "cron_expression": "0 */4 * * *", "retention_days": "30", "enabled": "on",
                                 "compression": "", "encrypt": "unknown"})
    assert response.status_code == 302, response.content.decode()[:3000]
    schedule.refresh_from_db()
    assert (schedule.schedule_type, schedule.schedule_time, schedule.cron_expression) == ("cron", None,
                                                                                          "0 */4 * * *")
    assert PeriodicTask.objects.get(name=f"backup-schedule:{schedule.pk}").crontab.hour == "*/4"
