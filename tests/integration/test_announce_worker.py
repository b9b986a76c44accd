"""Telling the players through a real Celery worker (issue #12): a fake
Minecraft server with players online hears the countdown in order, then
stops, starts again and hears the done message — and while the countdown
runs, the worker (one process) is free to do other work."""

import re

from django.utils import timezone
from rest_framework.test import APIClient

from backups.models import BackupRecord
from backups.services.runs import backup_run, backup_trigger
from tests.conftest import issue_token
from tests.integration.conftest import INTEGRATION, wait_finished, wait_for

pytestmark = INTEGRATION

SAID = re.compile(r"\[Rcon\] (.*)$")


def console(server) -> list[str]:
    path = server.path / "logs" / "mcsite-console.log"
    return path.read_text(encoding="utf-8", errors="replace").splitlines() if path.exists() else []


def said(server) -> list[str]:
    return [m.group(1) for m in map(SAID.search, console(server)) if m]


def test_the_countdown_is_said_in_order_and_the_worker_is_free_meanwhile(celery_site, alice, fake_mc):
    server = fake_mc(alice, started=True, flags=("--players", "alice,bob"))
    baseline = backup_trigger(server=server, actor=alice, enqueue=False)  # nothing said: not queued
    baseline = backup_run(backup_id=baseline.pk)
    assert baseline.status == "succeeded", baseline.error_message
    server.announce_countdown = "3,1"
    server.save()
    celery_site.start_worker(concurrency=1)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token(alice)}")

    response = api.post(f"/api/backups/{server.pk}/trigger")
    assert response.status_code == 202, response.json()
    data = response.json()["data"]
    assert data["status"] == "queued" and data["not_before"]
    record = BackupRecord.objects.get(pk=data["id"])
    assert said(server) == ["The server stops for a backup in 3 seconds."]

    # The one worker process verifies another backup during the countdown.
    assert api.post(f"/api/backups/{server.pk}/backups/{baseline.pk}/verify").status_code == 202
    wait_for(lambda: BackupRecord.objects.filter(pk=baseline.pk, verified_at__gt=baseline.verified_at).exists(),
             timeout=30, message="the verification to run during the countdown")
    record.refresh_from_db()
    assert record.status == "queued" and timezone.now() < record.not_before

    record = wait_finished(record.pk, timeout=120)
    assert (record.status, record.error_code) == ("succeeded", ""), record.error_message
    assert record.started_at >= record.not_before
    wait_for(lambda: "Backup finished." in said(server), timeout=60, message="the done message")
    # In this order in the console (the baseline backup's own stop came before).
    lines, at = console(server), 0
    for text in ("[Rcon] The server stops for a backup in 3 seconds.",
                 "[Rcon] The server stops for a backup in 1 seconds.", "Stopping server", "--- mcsite start",
                 "[Rcon] Backup finished."):
        at = next(i for i in range(at, len(lines)) if text in lines[i])
    assert said(server) == ["The server stops for a backup in 3 seconds.",
                            "The server stops for a backup in 1 seconds.", "Backup finished."]
    assert re.search(r"Task backups\.tasks\.announce_backup\[[^\]]+\] received", celery_site.log("worker"))
