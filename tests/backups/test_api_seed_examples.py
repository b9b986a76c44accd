"""Every curl example of the seed's documentation, as written plus an auth
header, against the API: status codes and the seed's fields."""

import pytest
from django.core.cache import cache

from backups.models import BackupRecord, BackupSchedule, RestoreRequest
from tests.backups.conftest import SEED_TIME

pytestmark = pytest.mark.django_db

SCHEDULE_FIELDS = {"id", "server_id", "server_name", "schedule_type", "schedule_time", "retention_days", "enabled",
                   "last_backup", "created_at"}
BACKUP_FIELDS = {"filename", "size", "size_mb", "created", "age_days", "checksum", "quality_score", "quality_level"}


@pytest.fixture
def server(alice, make_server):
    return make_server(alice, "MyServer")


def _create(api, server, **overrides):
    body = {"server_id": server.pk, "schedule_type": "daily", "schedule_time": "02:00", "retention_days": 30,
            "enabled": True, **overrides}
    return api.post("/api/backups/schedules", body, format="json")


def test_create_your_first_backup_schedule(alice_api, server):
    response = _create(alice_api, server)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["success"] is True and body["message"]
    data = body["data"]
    assert SCHEDULE_FIELDS <= set(data)
    assert data["server_id"] == server.pk and data["server_name"] == "MyServer"
    assert (data["schedule_type"], data["schedule_time"], data["retention_days"], data["enabled"]) == (
        "daily", "02:00", 30, True)
    assert data["last_backup"] is None
    assert data["next_run"].endswith("+00:00") and data["time_zone"] == "UTC"
    schedule = BackupSchedule.objects.get(server=server)
    assert schedule.periodic_task.name == f"backup-schedule:{schedule.pk}"


def test_verify_schedule_creation_with_status(alice_api, server):
    _create(alice_api, server)
    response = alice_api.get(f"/api/backups/{server.pk}/status")
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["schedule"]["schedule_type"] == "daily"
    assert data["next_run"] and data["time_zone"] == "UTC"
    assert data["running_backup"] is None and data["last_backup"] is None
    assert {"success_rate_24h", "success_rate_7d", "success_rate_30d", "verification_rate_7d"} <= set(data["metrics"])
    assert data["disk_usage"]["total_bytes"] > 0


def test_update_schedule(alice_api, server):
    _create(alice_api, server)
    response = alice_api.put(f"/api/backups/schedules/{server.pk}", {
        "schedule_type": "weekly", "schedule_time": "03:00", "retention_days": 60, "enabled": True}, format="json")
    assert response.status_code == 200, response.json()
    data = response.json()["data"]
    assert (data["schedule_type"], data["schedule_time"], data["retention_days"]) == ("weekly", "03:00", 60)
    task = BackupSchedule.objects.get(server=server).periodic_task
    assert (task.crontab.day_of_week, task.crontab.hour, task.crontab.minute) == ("0", "3", "0")


def test_disable_schedule_with_a_partial_put(alice_api, server):
    _create(alice_api, server)
    response = alice_api.put(f"/api/backups/schedules/{server.pk}", {"enabled": False}, format="json")
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["enabled"] is False and data["schedule_type"] == "daily" and data["next_run"] is None
    assert BackupSchedule.objects.get(server=server).periodic_task.enabled is False


def test_delete_schedule(alice_api, server):
    _create(alice_api, server)
    response = alice_api.delete(f"/api/backups/schedules/{server.pk}")
    assert response.status_code == 200 and response.json()["success"] is True
    assert not BackupSchedule.objects.exists()
    from django_celery_beat.models import PeriodicTask

    assert not PeriodicTask.objects.filter(name__startswith="backup-schedule:").exists()
    assert alice_api.get(f"/api/backups/schedules/{server.pk}").json()["code"] == "SCHEDULE_NOT_FOUND"


def test_list_all_schedules(alice_api, server):
    _create(alice_api, server)
    response = alice_api.get("/api/backups/schedules")
    assert response.status_code == 200
    assert [s["server_name"] for s in response.json()["data"]] == ["MyServer"]


def test_trigger_immediate_backup(alice_api, server):
    response = alice_api.post(f"/api/backups/{server.pk}/trigger")
    assert response.status_code == 202
    data = response.json()["data"]
    assert data["status"] == "queued" and data["trigger"] == "manual"
    assert alice_api.post(f"/api/backups/{server.pk}/trigger").json()["code"] == "BACKUP_IN_PROGRESS"


def test_view_backup_history_and_available(alice_api, server, take_backup):
    record = take_backup(server, at=SEED_TIME)
    history = alice_api.get(f"/api/backups/{server.pk}/history")
    assert history.status_code == 200
    backups = history.json()["data"]
    assert BACKUP_FIELDS <= set(backups[0])
    assert backups[0]["filename"] == "server_backup_20250114_020000.tar.gz"
    assert backups[0]["checksum"] == f"sha256:{record.sha256}"
    assert backups[0]["created"] == "2025-01-14T02:00:00Z"
    assert backups[0]["quality_level"] == "Excellent" and backups[0]["quality_score"] == 100
    assert history.json()["pagination"]["count"] == 1
    available = alice_api.get(f"/api/backups/{server.pk}/available").json()["data"]
    assert [b["filename"] for b in available] == ["server_backup_20250114_020000.tar.gz"]
    assert "storage_path" not in str(backups) and str(server.path) not in str(history.content)


def test_preview_and_confirm_restore(alice_api, server, take_backup):
    take_backup(server, at=SEED_TIME)
    preview = alice_api.post(f"/api/backups/{server.pk}/restore", {
        "backup_filename": "server_backup_20250114_020000.tar.gz", "confirm": False}, format="json")
    assert preview.status_code == 200, preview.json()
    data = preview.json()["data"]
    assert data["contents"]["minecraft_version"] == "1.14.4"
    assert data["contents"]["file_count"] > 50
    assert any("replaced" in w for w in data["warnings"])
    assert any("days old" in w for w in data["warnings"])
    assert not RestoreRequest.objects.exists()

    cache.clear()
    confirm = alice_api.post(f"/api/backups/{server.pk}/restore", {
        "backup_filename": "server_backup_20250114_020000.tar.gz", "confirm": True}, format="json")
    assert confirm.status_code == 202, confirm.json()
    assert confirm.json()["data"]["status"] == "queued"
    assert RestoreRequest.objects.get().backup == BackupRecord.objects.get()
