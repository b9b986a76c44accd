"""SPEC §4 validation: strict HH:MM, integer retention 1–365, JSON types —
a clear VALIDATION_ERROR with per-field details and nothing changed."""

import pytest

from backups.models import BackupSchedule

pytestmark = pytest.mark.django_db


@pytest.fixture
def server(alice, make_server):
    return make_server(alice, world=False)


def _post(api, server, **fields):
    body = {"server_id": server.pk, "schedule_type": "daily", "schedule_time": "02:00", "retention_days": 30,
            "enabled": True, **fields}
    return api.post("/api/backups/schedules", body, format="json")


@pytest.mark.parametrize("field,value", [
    ("schedule_time", "2:5"), ("schedule_time", "24:00"), ("schedule_time", "02:00:00"), ("schedule_time", "2:00"),
    ("schedule_time", "02:60"), ("schedule_time", 200), ("schedule_time", ""), ("schedule_time", None),
    ("retention_days", 0), ("retention_days", 366), ("retention_days", "30"), ("retention_days", 30.0),
    ("retention_days", True), ("retention_days", None),
    ("enabled", "true"), ("enabled", 1), ("enabled", None),
    ("schedule_type", "hourly"), ("schedule_type", 1), ("schedule_type", None),
    ("compression", "rar"), ("encrypt", "yes"),
    ("server_id", "1"), ("server_id", True),
])
def test_create_rejects_bad_values_with_field_details(alice_api, server, field, value):
    response = _post(alice_api, server, **{field: value})
    assert response.status_code == 400, response.json()
    body = response.json()
    assert body["code"] == "VALIDATION_ERROR" and body["success"] is False
    assert field in body["details"]
    assert not BackupSchedule.objects.exists()


def test_a_second_schedule_for_the_same_server_is_409(alice_api, server):
    assert _post(alice_api, server).status_code == 201
    response = _post(alice_api, server)
    assert response.status_code == 409 and response.json()["code"] == "SCHEDULE_EXISTS"
    assert BackupSchedule.objects.count() == 1


def test_update_rejects_bad_values_and_changes_nothing(alice_api, server):
    _post(alice_api, server)
    for body in ({"schedule_time": "24:00"}, {"retention_days": "60"}, {"enabled": "false"}, {"unknown": 1}):
        response = alice_api.put(f"/api/backups/schedules/{server.pk}", body, format="json")
        assert response.status_code == 400 and response.json()["code"] == "VALIDATION_ERROR"
    schedule = BackupSchedule.objects.get()
    assert (schedule.schedule_time.strftime("%H:%M"), schedule.retention_days, schedule.enabled) == ("02:00", 30, True)


def test_missing_required_fields_are_named(alice_api):
    response = alice_api.post("/api/backups/schedules", {}, format="json")
    assert response.status_code == 400
    assert {"server_id", "schedule_type", "schedule_time"} <= set(response.json()["details"])


@pytest.mark.parametrize("throttle,url", [("TriggerThrottle", "/api/backups/{sid}/trigger"),
                                            ("RestoreThrottle", "/api/backups/{sid}/restore")])
def test_trigger_and_restore_are_throttled_per_user_with_a_json_429(alice_api, bob_api, bob, make_server,
                                                                     server, monkeypatch, throttle, url):
    from backups.api import views

    cls = getattr(views, throttle)
    monkeypatch.setattr(cls, "THROTTLE_RATES", {**cls.THROTTLE_RATES, cls.scope: "2/hour"})
    codes = [alice_api.post(url.format(sid=server.pk), {}, format="json").status_code for _ in range(3)]
    assert 429 not in codes[:2] and codes[2] == 429
    body = alice_api.post(url.format(sid=server.pk), {}, format="json").json()
    assert body["code"] == "THROTTLED" and body["success"] is False
    bobs = make_server(bob, "bobs", world=False)
    assert bob_api.post(url.format(sid=bobs.pk), {}, format="json").status_code != 429  # per user
