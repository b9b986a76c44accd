"""/backup/<server_id>: schedule form, Backup Now with progress, history,
verify and lock — owner-scoped, through the same services as the API."""

import datetime as dt

import pytest
from django_celery_beat.models import PeriodicTask

from backups.models import BackupRecord, BackupSchedule
from backups.services import backup_schedule_create
from backups.services.runs import backup_run
from mcsite.models import AuditEvent

pytestmark = pytest.mark.django_db


def _urls(server_id: int, backup_id: int) -> tuple[list[str], list[str]]:
    gets = [f"/backup/{server_id}", f"/backup/{server_id}/", f"/backup/{server_id}/backups/{backup_id}/progress",
            f"/backup/{server_id}/restore?backup=x"]
    posts = [f"/backup/{server_id}/trigger", f"/backup/{server_id}/schedule",
             f"/backup/{server_id}/backups/{backup_id}/verify", f"/backup/{server_id}/backups/{backup_id}/lock",
             f"/backup/{server_id}/restore"]
    return gets, posts


def test_another_user_gets_404_on_every_backup_url(bob_web, alices_server, take_backup):
    record = take_backup(alices_server)
    gets, posts = _urls(alices_server.pk, record.pk)
    for url in gets:
        assert bob_web.get(url).status_code == 404, url
    for url in posts:
        assert bob_web.post(url, {"action": "delete", "locked": "1", "backup": record.filename}).status_code == 404, url
    record.refresh_from_db()
    assert not record.locked and BackupRecord.objects.count() == 1


def test_an_admin_can_open_any_owners_page(admin_web, alices_server):
    assert admin_web.get(f"/backup/{alices_server.pk}").status_code == 200


def test_the_page_shows_history_with_checksum_quality_download_and_charts(alice_web, alices_server, take_backup):
    record = take_backup(alices_server)
    body = alice_web.get(f"/backup/{alices_server.pk}").content.decode()
    assert record.filename in body
    assert record.sha256[:12] in body
    assert f"quality-{record.quality_level.lower()}" in body
    assert f"/api/backups/{alices_server.pk}/backups/{record.pk}/download" in body
    assert "Passed" in body and "Succeeded" in body
    assert body.count("<svg") == 2 and "<polyline" in body
    assert "Success rate" in body and "Backup disk" in body
    assert f"/backup/{alices_server.pk}/restore?backup={record.filename}" in body


def test_the_download_link_works_with_the_session(alice_web, alices_server, take_backup):
    record = take_backup(alices_server)
    response = alice_web.get(f"/api/backups/{alices_server.pk}/backups/{record.pk}/download")
    assert response.status_code == 200 and record.filename in response["Content-Disposition"]


def test_the_schedule_form_creates_updates_disables_and_deletes(alice_web, alice, alices_server):
    url = f"/backup/{alices_server.pk}/schedule"
    page = alice_web.get(f"/backup/{alices_server.pk}").content.decode()
    assert "Create Schedule" in page
    alice_web.post(url, {"schedule_type": "daily", "schedule_time": "02:00", "retention_days": "30", "enabled": "on"})
    schedule = BackupSchedule.objects.get(server=alices_server)
    page = alice_web.get(f"/backup/{alices_server.pk}").content.decode()
    assert "02:00 UTC" in page and "Next run:" in page and "Save Schedule" in page

    alice_web.post(url, {"schedule_type": "weekly", "schedule_time": "03:15", "retention_days": "60", "enabled": "on"})
    schedule.refresh_from_db()
    assert (schedule.schedule_type, schedule.schedule_time, schedule.retention_days) == ("weekly", dt.time(3, 15), 60)
    assert PeriodicTask.objects.get(name=f"backup-schedule:{schedule.pk}").crontab.day_of_week == "0"

    alice_web.post(url, {"action": "disable"})
    schedule.refresh_from_db()
    assert not schedule.enabled and not PeriodicTask.objects.get(name=f"backup-schedule:{schedule.pk}").enabled
    assert "none while the schedule is disabled" in alice_web.get(f"/backup/{alices_server.pk}").content.decode()

    alice_web.post(url, {"action": "delete"})
    assert not BackupSchedule.objects.exists() and not PeriodicTask.objects.filter(name__startswith="backup-").exists()
    assert AuditEvent.objects.filter(action="schedule.delete", source="web").exists()


@pytest.mark.parametrize("typed", ["2:5", "24:00", "02:00:00"])
def test_a_bad_schedule_time_is_refused_and_the_form_kept(alice_web, alices_server, typed):
    response = alice_web.post(f"/backup/{alices_server.pk}/schedule",
                              {"schedule_type": "monthly", "schedule_time": typed, "retention_days": "400"})
    assert response.status_code == 400
    body = response.content.decode()
    assert "Enter the time as HH:MM" in body and "between 1 and 365 days" in body
    assert f'value="{typed}"' in body and 'value="400"' in body
    assert 'value="monthly" selected' in body
    assert not BackupSchedule.objects.exists()


def test_backup_now_queues_a_run_and_progress_reports_it_to_the_end(alice_web, alices_server):
    response = alice_web.post(f"/backup/{alices_server.pk}/trigger", HTTP_ACCEPT="application/json")
    assert response.status_code == 202
    started = response.json()
    assert started["status"] == "queued" and started["done"] is False and started["percent"] == 0
    record = BackupRecord.objects.get(server=alices_server)
    assert started["progress_url"] == f"/backup/{alices_server.pk}/backups/{record.pk}/progress"
    page = alice_web.get(f"/backup/{alices_server.pk}").content.decode()
    assert f'data-poll-url="{started["progress_url"]}"' in page  # a reload keeps following the run

    backup_run(backup_id=record.pk)  # what the Celery worker does
    progress = alice_web.get(started["progress_url"]).json()
    record.refresh_from_db()
    assert progress["done"] and progress["ok"] and progress["percent"] == 100
    assert progress["quality_level"] == record.quality_level and record.filename in progress["message"]


def test_backup_now_without_javascript_redirects_and_a_second_one_is_refused(alice_web, alices_server):
    first = alice_web.post(f"/backup/{alices_server.pk}/trigger")
    assert first.status_code == 302 and first["Location"].endswith("#progress")
    second = alice_web.post(f"/backup/{alices_server.pk}/trigger", follow=True)
    assert "A backup is already in progress for this server" in second.content.decode()
    refused = alice_web.post(f"/backup/{alices_server.pk}/trigger", HTTP_ACCEPT="application/json")
    assert refused.status_code == 409 and refused.json()["code"] == "BACKUP_IN_PROGRESS"
    assert BackupRecord.objects.filter(server=alices_server).count() == 1


def test_backup_now_of_a_missing_folder_says_so(alice_web, alices_server):
    import shutil

    shutil.rmtree(alices_server.path)
    response = alice_web.post(f"/backup/{alices_server.pk}/trigger", follow=True)
    assert "Server directory not found" in response.content.decode()
    assert not BackupRecord.objects.exists()


def test_verify_queues_a_verification(alice_web, alices_server, take_backup, monkeypatch,
                                      django_capture_on_commit_callbacks):
    record = take_backup(alices_server)
    queued = []
    monkeypatch.setattr("backups.services.lifecycle.send_task",
                        lambda name, *, kwargs, queue: queued.append((name, kwargs, queue)))
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_web.post(f"/backup/{alices_server.pk}/backups/{record.pk}/verify", follow=True)
    assert queued == [("verify_backup", {"backup_id": record.pk}, alices_server.node)]
    assert "Verification of" in response.content.decode()
    assert AuditEvent.objects.filter(action="backup.verify", source="web").exists()


def test_lock_and_unlock_toggle(alice_web, alices_server, take_backup):
    record = take_backup(alices_server)
    url = f"/backup/{alices_server.pk}/backups/{record.pk}/lock"
    alice_web.post(url, {"locked": "1"})
    record.refresh_from_db()
    assert record.locked
    assert ">Unlock</button>" in alice_web.get(f"/backup/{alices_server.pk}").content.decode()
    alice_web.post(url, {"locked": "0"})
    record.refresh_from_db()
    assert not record.locked


def test_a_backup_of_another_server_is_not_reachable_through_my_server(alice_web, alice, make_server, take_backup):
    mine, other = make_server(alice, "mine"), make_server(alice, "other")
    record = take_backup(other)
    assert alice_web.get(f"/backup/{mine.pk}/backups/{record.pk}/progress").status_code == 404
    assert alice_web.post(f"/backup/{mine.pk}/backups/{record.pk}/lock", {"locked": "1"}).status_code == 404


def test_the_schedule_is_shown_with_its_zone(alice_web, alice, alices_server, settings):
    backup_schedule_create(server=alices_server, actor=alice,
                           data={"schedule_type": "daily", "schedule_time": dt.time(2, 0)})
    body = alice_web.get(f"/backup/{alices_server.pk}").content.decode()
    assert f"02:00 {settings.MCSITE_TIME_ZONE}" in body and 'value="02:00"' in body
