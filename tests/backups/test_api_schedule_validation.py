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
    ("schedule_type", "yearly"), ("schedule_type", 1), ("schedule_type", None),
    ("compression", "rar"), ("encrypt", "yes"),
    ("server_id", "1"), ("server_id", True),
    # Issue #12: the new fields belong to their own type only.
    ("interval_hours", 6), ("cron_expression", "0 3 * * *"),
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


# --- issue #12: hourly and cron --------------------------------------------------

@pytest.mark.parametrize("fields,where,says", [
    ({"schedule_type": "hourly"}, "interval_hours", "required for hourly"),
    ({"schedule_type": "hourly", "interval_hours": 5}, "interval_hours", "1, 2, 3, 4, 6, 8 or 12"),
    ({"schedule_type": "hourly", "interval_hours": 24}, "interval_hours", "1, 2, 3, 4, 6, 8 or 12"),
    ({"schedule_type": "hourly", "interval_hours": "6"}, "interval_hours", "integer"),
    ({"schedule_type": "hourly", "interval_hours": 6.0}, "interval_hours", "integer"),
    ({"schedule_type": "hourly", "interval_hours": 6, "cron_expression": "0 * * * *"}, "cron_expression",
     "Only cron schedules"),
    ({"schedule_type": "daily", "interval_hours": 6}, "interval_hours", "Only hourly schedules"),
    ({"schedule_type": "weekly", "cron_expression": "0 3 * * 0"}, "cron_expression", "Only cron schedules"),
    ({"schedule_type": "cron"}, "cron_expression", "required for cron"),
    ({"schedule_type": "cron", "cron_expression": ""}, "cron_expression", "required for cron"),
    ({"schedule_type": "cron", "cron_expression": 15}, "cron_expression", "string"),
    ({"schedule_type": "cron", "cron_expression": "0 3 * * 1", "interval_hours": 6}, "interval_hours",
     "Only hourly schedules"),
    ({"schedule_type": "cron", "cron_expression": "* * * *"}, "cron_expression", "5 fields"),
    ({"schedule_type": "cron", "cron_expression": "0 0 3 * * *"}, "cron_expression", "5 fields"),
    ({"schedule_type": "cron", "cron_expression": "@daily"}, "cron_expression", "not supported"),
    ({"schedule_type": "cron", "cron_expression": "60 * * * *"}, "cron_expression", "minute"),
    ({"schedule_type": "cron", "cron_expression": "0 24 * * *"}, "cron_expression", "hour"),
    ({"schedule_type": "cron", "cron_expression": "0 3 0 * *"}, "cron_expression", "day-of-month"),
    ({"schedule_type": "cron", "cron_expression": "0 3 * 13 *"}, "cron_expression", "month"),
    ({"schedule_type": "cron", "cron_expression": "0 3 * * 7"}, "cron_expression", "Sunday as 0"),
    ({"schedule_type": "cron", "cron_expression": "0 3 * * 1#2"}, "cron_expression", "day-of-week"),
    ({"schedule_type": "cron", "cron_expression": "0 3 L * *"}, "cron_expression", "not supported"),
    ({"schedule_type": "cron", "cron_expression": "mon 3 * * *"}, "cron_expression", "minute"),
    ({"schedule_type": "cron", "cron_expression": "*/0 * * * *"}, "cron_expression", "minute"),
    ({"schedule_type": "cron", "cron_expression": "0 22-2 * * *"}, "cron_expression", "goes backwards"),
    ({"schedule_type": "cron", "cron_expression": "0 3 30 2 *"}, "cron_expression", "never fires"),
    # Celery ANDs day-of-month and day-of-week where classic cron ORs them: refused, with the reason.
    ({"schedule_type": "cron", "cron_expression": "0 3 1 * 1"}, "cron_expression", "match both"),
    ({"schedule_type": "cron", "cron_expression": "0 3 1-7 * mon-fri"}, "cron_expression", "Classic cron"),
])
def test_hourly_and_cron_fields_are_validated_with_clear_field_errors(alice_api, server, fields, where, says):
    body = {"server_id": server.pk, "schedule_time": "02:30", "retention_days": 30, **fields}
    response = alice_api.post("/api/backups/schedules", body, format="json")
    assert response.status_code == 400, response.json()
    answer = response.json()
    assert answer["code"] == "VALIDATION_ERROR" and answer["success"] is False
    assert where in answer["details"], answer
    assert says in " ".join(answer["details"][where]), answer["details"]
    assert not BackupSchedule.objects.exists()


def test_hourly_needs_its_anchor_time_and_cron_does_not(alice_api, server, make_server, alice):
    response = alice_api.post("/api/backups/schedules", {"server_id": server.pk, "schedule_type": "hourly",
                                                         "interval_hours": 6}, format="json")
    assert response.status_code == 400 and "schedule_time" in response.json()["details"]
    response = alice_api.post("/api/backups/schedules", {"server_id": server.pk, "schedule_type": "cron",
                                                         "cron_expression": "15 3 * * 1,5"}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["data"]["schedule_time"] is None


@pytest.mark.parametrize("expression", [
    "* * * * *", "15 3 * * 1,5", "0 */6 * * mon-fri", "0 3 1-31 * 1", "0 3 1 * *", "0 3 * jan,jul *",
    "5-55/10 * * * *", "0 3 29 2 *", "  30   2 * * SUN ",
])
def test_good_cron_expressions_are_accepted(alice_api, server, expression):
    response = alice_api.post("/api/backups/schedules", {"server_id": server.pk, "schedule_type": "cron",
                                                         "cron_expression": expression}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["data"]["cron_expression"] == " ".join(expression.split())
    assert len(response.json()["data"]["next_runs"]) == 5


def test_updates_keep_each_type_to_its_own_fields(alice_api, server):
    url = f"/api/backups/schedules/{server.pk}"
    assert _post(alice_api, server).status_code == 201  # daily 02:00
    # A field of another type is refused, and nothing changes.
    for body, field in (({"interval_hours": 4}, "interval_hours"), ({"cron_expression": "0 * * * *"}, "cron_expression"),
                        ({"schedule_type": "hourly"}, "interval_hours"), ({"schedule_type": "cron"}, "cron_expression"),
                        ({"schedule_type": "cron", "cron_expression": "0 3 1 * 1"}, "cron_expression")):
        response = alice_api.put(url, body, format="json")
        assert response.status_code == 400 and field in response.json()["details"], (body, response.json())
    schedule = BackupSchedule.objects.get()
    assert (schedule.schedule_type, schedule.interval_hours, schedule.cron_expression) == ("daily", None, "")

    # daily → hourly: the time stays as the anchor.
    response = alice_api.put(url, {"schedule_type": "hourly", "interval_hours": 8}, format="json")
    assert response.status_code == 200, response.json()
    data = response.json()["data"]
    assert (data["schedule_type"], data["schedule_time"], data["interval_hours"]) == ("hourly", "02:00", 8)
    assert response.json()["data"]["description"] == "every 8 hours at :00 from 02:00"
    assert alice_api.put(url, {"interval_hours": 3}, format="json").json()["data"]["interval_hours"] == 3

    # hourly → cron: the interval goes, the time is not used.
    response = alice_api.put(url, {"schedule_type": "cron", "cron_expression": "*/20 9-17 * * 1-5"}, format="json")
    assert response.status_code == 200, response.json()
    data = response.json()["data"]
    assert (data["interval_hours"], data["schedule_time"], data["cron_expression"]) == (None, None,
                                                                                        "*/20 9-17 * * 1-5")

    # cron → weekly needs a time again; then the expression goes.
    response = alice_api.put(url, {"schedule_type": "weekly"}, format="json")
    assert response.status_code == 400 and "schedule_time" in response.json()["details"]
    response = alice_api.put(url, {"schedule_type": "weekly", "schedule_time": "03:00"}, format="json")
    assert response.status_code == 200, response.json()
    data = response.json()["data"]
    assert (data["schedule_type"], data["schedule_time"], data["cron_expression"]) == ("weekly", "03:00", None)

    # The object read back can be sent back as it is (null time and expression included).
    for kind_body in ({"schedule_type": "cron", "cron_expression": "0 4 * * *"},
                      {"schedule_type": "hourly", "schedule_time": "01:15", "interval_hours": 12}):
        data = alice_api.put(url, kind_body, format="json").json()["data"]
        echo = {k: data[k] for k in ("schedule_type", "schedule_time", "interval_hours", "cron_expression",
                                      "retention_days", "enabled", "compression", "encrypt")}
        response = alice_api.put(url, echo, format="json")
        assert response.status_code == 200, response.json()
