"""Issue #12 item 5, the pages' part: progress that never goes quiet.

What the progress endpoints answer is read at every step of a real run (the
service's observer is called in the run's own thread, so each reading sees
exactly what the worker has written so far):

- a backup's verification reports its own bytes (the archive read back), so
  the bar moves through "Verifying" instead of sitting at 90 %;
- a restore's safety backup reports the safety backup's own phase and bytes
  instead of "Server stopped…";
- the overall percentage never goes back, and every answer carries the
  status in words for the badge (site.js keeps the badge in step)."""

import pytest

from backups.models import BackupRecord, RestoreRequest
from backups.services.restore_run import restore_run
from backups.services.runs import backup_run
from tests.backups.conftest import take_backup  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice_web(client, alice):
    client.force_login(alice)
    return client


@pytest.fixture
def alices_server(alice, make_server):
    return make_server(alice, "survival")


def _readings(alice_web, url_of):
    readings = []

    def observer(done=None, total=None, phase=None):
        readings.append(alice_web.get(url_of()).json())

    return readings, observer


def test_backup_verification_reports_its_own_bytes_and_the_bar_never_goes_back(alice_web, alices_server):
    alice_web.post(f"/backup/{alices_server.pk}/trigger", HTTP_ACCEPT="application/json")
    record = BackupRecord.objects.get(server=alices_server)
    readings, observer = _readings(alice_web, lambda: f"/backup/{alices_server.pk}/backups/{record.pk}/progress")
    backup_run(backup_id=record.pk, observer=observer)
    record.refresh_from_db()

    verifying = [r for r in readings if r["phase"] == "verifying" and r["phase_bytes_done"]]
    assert verifying, [(r["phase"], r["phase_bytes_done"], r["bytes_done"], r["bytes_total"]) for r in readings][-8:]
    assert all(r["phase_bytes_total"] == record.size_bytes for r in verifying)  # the archive, read back
    assert verifying[-1]["phase_bytes_done"] == record.size_bytes
    assert "Verifying" in verifying[-1]["message"] and "MiB" in verifying[-1]["message"]
    archiving = [r for r in readings if r["phase"] == "archiving" and r["phase_bytes_done"]]
    assert archiving and archiving[-1]["phase_bytes_total"] == record.source_bytes
    assert max(r["percent"] for r in archiving) < min(r["percent"] for r in verifying) < 100

    percents = [r["percent"] for r in readings]
    assert percents == sorted(percents), percents
    assert readings[0]["status_label"] == "Running"
    final = alice_web.get(f"/backup/{alices_server.pk}/backups/{record.pk}/progress").json()
    assert final["percent"] == 100 and final["status_label"] == "Succeeded"


def test_restore_progress_follows_its_safety_backup(alice_web, alices_server, take_backup):  # noqa: F811
    record = take_backup(alices_server)
    alice_web.post(f"/backup/{alices_server.pk}/restore", {"backup": record.filename})
    restore = RestoreRequest.objects.get()
    url = f"/backup/{alices_server.pk}/restores/{restore.pk}/progress"
    queued = alice_web.get(url).json()
    assert queued["status"] == "queued" and queued["status_label"] == "Queued"

    readings, observer = _readings(alice_web, lambda: url)
    restore_run(restore_id=restore.pk, observer=observer)

    during = [r for r in readings if r["phase"] == "safety_backup"]
    assert during, [r["phase"] for r in readings]
    assert all("Server stopped" not in r["message"] for r in during)
    assert all(r["message"].startswith("Safety backup of the current files") for r in during)
    moving = [r for r in during if r["phase_bytes_done"]]
    assert moving and any("Verifying" in r["message"] for r in moving) and any("Archiving" in r["message"]
                                                                              for r in moving)
    assert len({r["percent"] for r in during}) > 1  # the bar moves while the safety backup is written
    extracting = [r for r in readings if r["phase"] == "extracting" and r["phase_bytes_done"]]
    assert extracting and "Extracting" in extracting[-1]["message"] and "MiB" in extracting[-1]["message"]
    percents = [r["percent"] for r in readings]
    assert percents == sorted(percents), percents
    assert {r["status_label"] for r in readings} == {"Running"}

    page = alice_web.get(f"/backup/{alices_server.pk}/restores/{restore.pk}").content.decode()
    assert 'data-status-badge' in page


def test_restore_page_badge_carries_the_hook_the_script_updates(alice_web, alices_server, take_backup):  # noqa: F811
    record = take_backup(alices_server)
    alice_web.post(f"/backup/{alices_server.pk}/restore", {"backup": record.filename})
    restore = RestoreRequest.objects.get()
    page = alice_web.get(f"/backup/{alices_server.pk}/restores/{restore.pk}").content.decode()
    assert 'data-status-badge' in page and ">Queued<" in page


def test_a_backup_waiting_for_the_players_countdown_says_so(alice_web, alices_server):
    import datetime as dt

    from django.utils import timezone

    alice_web.post(f"/backup/{alices_server.pk}/trigger", HTTP_ACCEPT="application/json")
    record = BackupRecord.objects.get(server=alices_server)
    BackupRecord.objects.filter(pk=record.pk).update(not_before=timezone.now() + dt.timedelta(seconds=42))
    progress = alice_web.get(f"/backup/{alices_server.pk}/backups/{record.pk}/progress").json()
    assert progress["status_label"] == "Queued" and progress["percent"] == 0
    assert progress["message"].startswith("Players are being warned · starts in 4"), progress["message"]
