"""/servers/: the list, creation with "Enable Automated Backups", delete,
start and stop — each owner-scoped (another owner's server is a 404)."""

import datetime as dt

import pytest
from django_celery_beat.models import PeriodicTask

from backups import storage
from backups.models import BackupRecord, BackupSchedule
from backups.services import backup_schedule_create
from mcsite.models import AuditEvent
from servers.models import Server

pytestmark = pytest.mark.django_db


def _new_server_post(**overrides) -> dict:
    data = {
        "name": "fresh", "directory": "fresh", "start_command": "java -Xms{mem}M -Xmx{mem}M -jar server.jar nogui",
        "memory_mb": "1024", "rcon_host": "127.0.0.1", "rcon_port": "25575", "stop_timeout": "60",
        "backup_mode": "stop", "exclude_patterns": "logs/\n*.tmp", "node": "default",
        "backup-enable_automated_backups": "on", "backup-schedule_type": "daily",
        "backup-schedule_time": "02:00", "backup-retention_days": "30",
    }
    data.update(overrides)
    return data


def test_the_list_shows_only_the_users_own_servers(alice_web, alice, bob, make_server):
    make_server(alice, "alice-world")
    make_server(bob, "bob-world")
    body = alice_web.get("/servers/").content.decode()
    assert "alice-world" in body and "bob-world" not in body


def test_an_admin_sees_every_server(admin_web, alice, bob, make_server):
    make_server(alice, "alice-world")
    make_server(bob, "bob-world")
    body = admin_web.get("/servers/").content.decode()
    assert "alice-world" in body and "bob-world" in body


def test_the_list_shows_status_schedule_next_run_last_backup_and_usage(alice_web, alice, alices_server, take_backup):
    backup_schedule_create(server=alices_server, actor=alice, data={
        "schedule_type": "weekly", "schedule_time": dt.time(3, 30), "retention_days": 14})
    record = take_backup(alices_server)
    body = alice_web.get("/servers/").content.decode()
    assert "Stopped" in body
    assert "Weekly at 03:30 UTC" in body
    assert 'data-testid="next-run">Sun' in body  # weekly runs on Sundays
    assert f"quality-{record.quality_level.lower()}" in body and record.quality_level in body
    assert "Manage Backups" in body and f'href="/backup/{alices_server.pk}"' in body
    assert "Backup disk:" in body


def test_creating_a_server_with_automated_backups_makes_a_real_schedule(alice_web, alice, make_server_dir):
    make_server_dir("fresh")
    response = alice_web.post("/servers/new/", _new_server_post())
    assert response.status_code == 302 and response["Location"] == "/servers/"
    server = Server.objects.get(name="fresh")
    assert server.owner == alice
    schedule = BackupSchedule.objects.get(server=server)
    assert (schedule.schedule_type, f"{schedule.schedule_time:%H:%M}", schedule.retention_days) == ("daily", "02:00", 30)
    task = PeriodicTask.objects.get(name=f"backup-schedule:{schedule.pk}")
    assert task.enabled and task.crontab.hour == "2"
    assert AuditEvent.objects.filter(action="schedule.create", source="web", actor=alice).exists()
    body = alice_web.get("/servers/").content.decode()
    assert "created with automated backups" in body and "Daily at 02:00 UTC" in body


def test_creating_a_server_without_automated_backups_ignores_the_schedule_fields(alice_web, make_server_dir):
    make_server_dir("fresh")
    post = _new_server_post(**{"backup-schedule_time": "junk"})
    del post["backup-enable_automated_backups"]
    assert alice_web.post("/servers/new/", post).status_code == 302
    assert not BackupSchedule.objects.exists() and Server.objects.filter(name="fresh").exists()


@pytest.mark.parametrize("time_typed", ["2:5", "24:00", "02:00:00", "noon"])
def test_a_bad_backup_time_keeps_what_was_typed_and_creates_nothing(alice_web, make_server_dir, time_typed):
    make_server_dir("fresh")
    response = alice_web.post("/servers/new/", _new_server_post(**{"backup-schedule_time": time_typed,
                                                                   "backup-retention_days": "30"}))
    assert response.status_code == 400
    body = response.content.decode()
    assert "Enter the time as HH:MM" in body
    assert f'value="{time_typed}"' in body and 'value="fresh"' in body
    assert not Server.objects.exists()


def test_retention_outside_1_to_365_is_refused(alice_web, make_server_dir):
    make_server_dir("fresh")
    response = alice_web.post("/servers/new/", _new_server_post(**{"backup-retention_days": "366"}))
    assert response.status_code == 400 and "between 1 and 365 days" in response.content.decode()
    assert not Server.objects.exists()


def test_a_directory_outside_the_root_is_explained_and_the_form_kept(alice_web):
    response = alice_web.post("/servers/new/", _new_server_post(directory="/etc", name="evil"))
    assert response.status_code == 400
    body = response.content.decode()
    assert "servers root" in body and 'value="evil"' in body and 'value="/etc"' in body
    assert not Server.objects.exists()


def test_a_duplicate_name_is_shown_on_the_name_field(alice_web, alice, make_server, make_server_dir):
    make_server(alice, "fresh-existing")
    make_server_dir("fresh")
    response = alice_web.post("/servers/new/", _new_server_post(name="fresh-existing"))
    assert response.status_code == 400
    assert "You already have a server with this name" in response.content.decode()
    assert Server.objects.count() == 1 and not BackupSchedule.objects.exists()


def test_another_users_server_cannot_be_deleted_started_or_stopped(bob_web, alices_server):
    assert bob_web.get(f"/servers/{alices_server.pk}/delete/").status_code == 404
    for action in ("delete", "start", "stop"):
        assert bob_web.post(f"/servers/{alices_server.pk}/{action}/").status_code == 404
    assert Server.objects.filter(pk=alices_server.pk).exists()


def test_deleting_a_server_keeps_its_backups_unless_asked(alice_web, alice, make_server, take_backup):
    kept = make_server(alice, "kept")
    kept_backup = take_backup(kept)
    page = alice_web.get(f"/servers/{kept.pk}/delete/").content.decode()
    assert "1</strong> stored backup" in page and "Also delete its backups" in page
    assert alice_web.post(f"/servers/{kept.pk}/delete/").status_code == 302
    kept_backup.refresh_from_db()
    assert kept_backup.server_id is None and storage.file_present(kept_backup)

    gone = make_server(alice, "gone")
    gone_backup = take_backup(gone)
    alice_web.post(f"/servers/{gone.pk}/delete/", {"delete_backups": "on"})
    assert not Server.objects.filter(pk=gone.pk).exists()
    gone_backup = BackupRecord.objects.get(pk=gone_backup.pk)
    assert not storage.file_present(gone_backup)


def test_start_of_a_missing_folder_shows_the_seeds_message(alice_web, alices_server):
    import shutil

    shutil.rmtree(alices_server.path)
    response = alice_web.post(f"/servers/{alices_server.pk}/start/", follow=True)
    assert "Server directory not found" in response.content.decode()


@pytest.mark.slow
def test_start_and_stop_drive_the_real_process(alice_web, alice, fake_mc):
    server = fake_mc(alice, "fake")
    alice_web.post(f"/servers/{server.pk}/start/")
    server.fake.wait_ready()
    assert "Running" in alice_web.get("/servers/").content.decode()
    asked = alice_web.post(f"/servers/{server.pk}/stop/").content.decode()
    assert "Stop fake?" in asked and "Running" in alice_web.get("/servers/").content.decode()
    response = alice_web.post(f"/servers/{server.pk}/stop/", {"confirmed": "1"}, follow=True)
    body = response.content.decode()
    assert "fake stopped." in body and "Stopped" in body


def test_backups_of_a_deleted_server_are_listed_and_can_be_deleted(alice, bob, make_server, take_backup, client):

    from servers.services import server_delete

    server = make_server(alice, "retired")
    record = take_backup(server)
    server_delete(server=server, delete_backups=False, actor=alice)
    client.force_login(bob)
    assert record.filename not in client.get("/servers/").content.decode()
    assert client.post(f"/backups/kept/{record.pk}/delete/").status_code == 404
    client.force_login(alice)
    page = client.get("/servers/").content.decode()
    assert "Backups of deleted servers" in page and record.filename in page
    response = client.post(f"/backups/kept/{record.pk}/delete/", follow=True)
    assert response.status_code == 200
    record.refresh_from_db()
    assert record.status == "deleted" and not storage.file_present(record)


def test_exclude_patterns_are_one_per_line(alice, client, make_server):
    server = make_server(alice, "patterned", world=False)
    client.force_login(alice)
    page = client.get("/servers/new/").content.decode()
    assert "logs/\ncrash-reports/\ncache/\n*.tmp" in page
    from servers.forms import ServerForm

    form = ServerForm({"name": "p2", "directory": server.directory, "exclude_patterns": " world/stats/ \n\n*.bak\n"},
                      user=alice)
    form.is_valid()
    assert form.cleaned_data["exclude_patterns"] == ["world/stats/", "*.bak"]
