"""Django admin: server status and links, the schedule inline saved through
the services, the "Restore…" action with preview and confirmation, and
django-celery-beat's admin for superusers only — each owner-scoped."""

import datetime as dt

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django_celery_beat.models import PeriodicTask

from backups.models import BackupSchedule, RestoreRequest
from backups.services import backup_schedule_create
from mcsite.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_the_server_changelist_shows_status_schedule_and_filtered_links(alice_web, alice, alices_server):
    backup_schedule_create(server=alices_server, actor=alice, data={"schedule_type": "daily",
                                                                    "schedule_time": dt.time(2, 0)})
    body = alice_web.get("/admin/servers/server/").content.decode()
    assert "● stopped" in body and "daily 02:00 UTC" in body
    assert f"/admin/backups/backuprecord/?server__id__exact={alices_server.pk}" in body
    assert f"/admin/backups/restorerequest/?server__id__exact={alices_server.pk}" in body


def test_the_backups_link_opens_a_changelist_filtered_by_server(alice_web, alice, make_server, take_backup):
    mine, other = make_server(alice, "mine"), make_server(alice, "other")
    mine_backup, other_backup = take_backup(mine), take_backup(other)
    response = alice_web.get(f"/admin/backups/backuprecord/?server__id__exact={mine.pk}")
    body = response.content.decode()
    assert response.status_code == 200
    assert f"/backuprecord/{mine_backup.pk}/change/" in body
    assert f"/backuprecord/{other_backup.pk}/change/" not in body


def test_the_schedule_inline_saves_through_the_services(alice_web, alice, alices_server):
    schedule = backup_schedule_create(server=alices_server, actor=alice, data={
        "schedule_type": "daily", "schedule_time": dt.time(2, 0)})
    url = f"/admin/servers/server/{alices_server.pk}/change/"
    page = alice_web.get(url).content.decode()
    assert "next run" in page.lower() and 'value="02:00"' in page
    post = {
        "name": alices_server.name, "directory": alices_server.directory, "start_command": alices_server.start_command,
        "memory_mb": 1024, "rcon_host": "127.0.0.1", "rcon_port": 25575, "stop_timeout": 60, "backup_mode": "stop",
        "exclude_patterns": "logs/", "node": "default",
        "backup_schedule-TOTAL_FORMS": "1", "backup_schedule-INITIAL_FORMS": "1",
        "backup_schedule-MIN_NUM_FORMS": "0", "backup_schedule-MAX_NUM_FORMS": "1",
        "backup_schedule-0-id": schedule.pk, "backup_schedule-0-server": alices_server.pk,
        "backup_schedule-0-schedule_type": "weekly", "backup_schedule-0-schedule_time": "04:45",
        "backup_schedule-0-retention_days": "10", "backup_schedule-0-enabled": "on",
        "backup_schedule-0-compression": "", "backup_schedule-0-encrypt": "unknown",
    }
    response = alice_web.post(url, post)
    assert response.status_code == 302, response.content.decode()[:3000]
    schedule.refresh_from_db()
    assert (schedule.schedule_type, f"{schedule.schedule_time:%H:%M}", schedule.retention_days) == ("weekly", "04:45", 10)
    cron = PeriodicTask.objects.get(name=f"backup-schedule:{schedule.pk}").crontab
    assert (cron.hour, cron.minute, cron.day_of_week) == ("4", "45", "0")  # the PeriodicTask moved with it
    assert AuditEvent.objects.filter(action="schedule.update", source="admin").exists()

    post["backup_schedule-0-DELETE"] = "on"
    alice_web.post(url, post)
    assert not BackupSchedule.objects.exists() and not PeriodicTask.objects.filter(name__startswith="backup-").exists()


def _action(client, pk, **extra):
    return client.post("/admin/backups/backuprecord/", {"action": "restore_selected", ACTION_CHECKBOX_NAME: [pk],
                                                        **extra})


def test_the_restore_action_previews_then_restores_on_confirmation(alice_web, alices_server, take_backup):
    record = take_backup(alices_server)
    preview = _action(alice_web, record.pk)
    assert preview.status_code == 200
    body = preview.content.decode()
    assert "Restore " + record.filename in body and "1.14.4" in body and "will be replaced" in body
    assert 'name="confirm" value="yes"' in body
    assert not RestoreRequest.objects.exists()  # the preview changed nothing

    confirmed = _action(alice_web, record.pk, confirm="yes")
    restore = RestoreRequest.objects.get()
    assert confirmed.status_code == 302 and confirmed["Location"].endswith(f"/restorerequest/{restore.pk}/change/")
    assert restore.backup_id == record.pk and restore.status == "queued"
    assert AuditEvent.objects.filter(action="restore.restore", source="admin").exists()


def test_the_restore_action_refuses_several_backups_at_once(alice_web, alices_server, take_backup):
    first = take_backup(alices_server)
    second = take_backup(alices_server)
    response = alice_web.post("/admin/backups/backuprecord/", {"action": "restore_selected",
                                                               ACTION_CHECKBOX_NAME: [first.pk, second.pk]},
                              follow=True)
    assert "Choose exactly one backup to restore." in response.content.decode()
    assert not RestoreRequest.objects.exists()


def test_another_owner_cannot_restore_my_backup_from_the_admin(bob_web, alices_server, take_backup):
    record = take_backup(alices_server)
    for extra in ({}, {"confirm": "yes"}):
        response = _action(bob_web, record.pk, **extra)
        assert record.filename not in response.content.decode()
    assert not RestoreRequest.objects.exists()


def test_celery_beat_admin_is_for_superusers_only(alice_web, admin_web):
    assert "Periodic tasks" not in alice_web.get("/admin/").content.decode()
    for path in ("periodictask", "crontabschedule", "intervalschedule"):
        assert alice_web.get(f"/admin/django_celery_beat/{path}/").status_code in (403, 404), path
        assert admin_web.get(f"/admin/django_celery_beat/{path}/").status_code == 200, path
    assert "Periodic tasks" in admin_web.get("/admin/").content.decode()


def test_quality_badges_are_styled_in_the_admin(alice_web, alices_server, take_backup):
    record = take_backup(alices_server)
    body = alice_web.get("/admin/backups/backuprecord/").content.decode()
    assert "css/admin.css" in body and f"quality-{record.quality_level.lower()}" in body
