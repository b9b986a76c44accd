"""A schedule made through the API fires from a real beat (DatabaseScheduler)
into a real worker, and disabling it reaches the running beat (issue #5)."""

import re
import time
from datetime import timedelta

from django.utils import timezone

from backups.models import BackupRecord
from tests.integration.conftest import INTEGRATION, next_whole_minute, wait_finished, wait_for

pytestmark = INTEGRATION

MARGIN = timedelta(seconds=10)  # beat looks at the database every 2 s (--max-interval 2)


def test_schedule_fires_once_then_disabling_it_stops_beat_without_a_restart(celery_site, alice, alice_api,
                                                                           make_server):
    server = make_server(alice)
    celery_site.start_worker()
    beat = celery_site.start_beat()

    fire_at = next_whole_minute()
    response = alice_api.post("/api/backups/schedules", {
        "server_id": server.pk, "schedule_type": "daily", "schedule_time": f"{fire_at:%H:%M}",
        "retention_days": 7, "enabled": True,
    }, format="json")
    assert response.status_code == 201, response.json()
    schedule_id = response.json()["data"]["id"]

    record = wait_for(lambda: BackupRecord.objects.filter(server=server).first(), timeout=150, interval=0.5,
                      message=f"the schedule to fire at {fire_at:%H:%M}")
    record = wait_finished(record.pk)
    assert (record.trigger, record.status, record.verification_passed) == ("scheduled", "succeeded", True), \
        record.error_message
    assert record.created_at >= fire_at

    quiet_at = next_whole_minute()
    response = alice_api.put(f"/api/backups/schedules/{server.pk}",
                             {"enabled": False, "schedule_time": f"{quiet_at:%H:%M}"}, format="json")
    assert response.status_code == 200, response.json()
    assert (response.json()["data"]["enabled"], response.json()["data"]["schedule_time"]) == \
        (False, f"{quiet_at:%H:%M}")
    time.sleep(max(0.0, (quiet_at + MARGIN - timezone.now()).total_seconds()))

    assert beat.poll() is None, "beat must have run throughout, never restarted"
    assert BackupRecord.objects.filter(server=server).count() == 1
    # Beat itself must not have sent it again (the task would only skip a
    # disabled schedule, which would hide a beat that missed the change).
    sends = re.findall(rf"Sending due task backup-schedule:{schedule_id} ", celery_site.log("beat"))
    assert len(sends) == 1, celery_site.log("beat")[-3000:]


def test_an_every_minute_cron_schedule_fires_from_the_real_beat(celery_site, alice, alice_api, make_server):
    """Issue #12: a `cron` schedule is a crontab beat runs like any other —
    `* * * * *` is sent at the next whole minute (under ~75 s in all)."""
    server = make_server(alice)
    celery_site.start_worker()
    celery_site.start_beat()

    response = alice_api.post("/api/backups/schedules", {
        "server_id": server.pk, "schedule_type": "cron", "cron_expression": "* * * * *",
        "retention_days": 1, "enabled": True,
    }, format="json")
    assert response.status_code == 201, response.json()
    data = response.json()["data"]
    assert (data["schedule_time"], data["description"]) == (None, "every minute")
    expected = data["next_run"]
    assert data["next_runs"][0] == expected and len(data["next_runs"]) == 5

    record = wait_for(lambda: BackupRecord.objects.filter(server=server).first(), timeout=75, interval=0.5,
                      message=f"the cron schedule to fire at {expected}")
    # Stop it before the next minute: one run is the point, not a backup a minute.
    assert alice_api.put(f"/api/backups/schedules/{server.pk}", {"enabled": False},
                         format="json").status_code == 200
    record = wait_finished(record.pk)
    assert (record.trigger, record.status) == ("scheduled", "succeeded"), record.error_message
    fired_at = timezone.datetime.fromisoformat(expected)
    assert fired_at <= record.created_at < fired_at + MARGIN
    sends = re.findall(rf"Sending due task backup-schedule:{data['id']} ", celery_site.log("beat"))
    assert len(sends) == 1, celery_site.log("beat")[-3000:]
