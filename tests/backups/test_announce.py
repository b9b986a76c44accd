"""Telling the players (issue #12): a real fake-Minecraft process with
players online hears the countdown over RCON in order, then the stop, then
the done message; nobody online means no wait; live backups say nothing
unless asked; RCON failures never fail a backup; the settings are checked
at every door. Tasks are recorded where they would go to the broker (the
worker's side is run here, as a worker would run it); the integration test
tests/integration/test_announce_worker.py runs them on a real worker."""

import datetime as dt
import re

import pytest
from django.utils import timezone

from backups.models import BackupRecord
from backups.services import announce, lifecycle
from backups.services.maintenance import QUEUED_TOO_LONG, reap_stale_runs
from backups.services.runs import backup_run, backup_trigger
from servers.announcements import AnnouncementError, normalise_countdown, parse_countdown, say_text
from servers.forms import ServerForm

pytestmark = pytest.mark.django_db

SAID = re.compile(r"\[Rcon\] (.*)$")


def console(server) -> list[str]:
    """The fake's console, as mcsite keeps it (logs/, across restarts)."""
    path = server.path / "logs" / "mcsite-console.log"
    return path.read_text(encoding="utf-8", errors="replace").splitlines() if path.exists() else []


def said(server) -> list[str]:
    return [m.group(1) for m in map(SAID.search, console(server)) if m]


@pytest.fixture
def sent(monkeypatch):
    """What would go to the broker: (task, kwargs, queue, countdown)."""
    calls = []

    def record(name, *, kwargs, queue, countdown=None):
        calls.append((name, kwargs, queue, countdown))

    monkeypatch.setattr(lifecycle, "send_task", record)
    return calls


def _trigger(server, capture):
    with capture(execute=True):
        return backup_trigger(server=server, actor=server.owner)


# --- the settings ----------------------------------------------------------------

def test_countdown_marks_are_normalised_longest_first_and_bounded():
    assert parse_countdown("10, 60,30") == [60, 30, 10]
    assert normalise_countdown("1,2,2") == "2,1"
    assert parse_countdown("") == [] and parse_countdown("  ") == []
    for bad in ("0", "601", "ten", "10,,5", "-5", "1.5", ",".join(str(n) for n in range(1, 12)), "٣"):
        with pytest.raises(AnnouncementError):
            parse_countdown(bad)


def test_say_text_is_one_line_whatever_is_stored():
    assert say_text("Stop in {seconds} s\nnow\r\x00op me", seconds=30) == "Stop in 30 s now op me"


def test_the_api_refuses_bad_announcement_settings_and_changes_nothing(alice, alice_api, make_server):
    server = make_server(alice)
    url = f"/api/servers/{server.pk}"
    for body, field in (({"announce_countdown": "0,30"}, "announce_countdown"),
                        ({"announce_countdown": "700"}, "announce_countdown"),
                        ({"announce_countdown": "1,2,3,4,5,6,7,8,9,10,11"}, "announce_countdown"),
                        ({"announce_message": "Stop soon\n/op mallory"}, "announce_message"),
                        ({"announce_message": "x" * 201}, "announce_message"),
                        ({"announce_done_message": "do\u2028ne"}, "announce_done_message"),
                        ({"announce": "yes"}, "announce")):
        response = alice_api.patch(url, body, format="json")
        assert response.status_code == 400, body
        assert response.json()["code"] == "VALIDATION_ERROR" and field in response.json()["details"]
    server.refresh_from_db()
    assert (server.announce, server.announce_countdown) == (True, "60,30,10")
    response = alice_api.patch(url, {"announce_countdown": "10, 60,30", "announce_message": "Backup in {seconds}s",
                                     "announce_live": True}, format="json")
    assert response.status_code == 200, response.json()
    data = response.json()["data"]
    assert (data["announce_countdown"], data["announce_message"], data["announce_live"]) == (
        "60,30,10", "Backup in {seconds}s", True)


def test_the_web_form_and_admin_form_check_the_same_rules(alice, make_server):
    server = make_server(alice)
    data = {"name": server.name, "directory": server.directory, "memory_mb": 1024, "rcon_host": "127.0.0.1",
            "rcon_port": 25575, "stop_timeout": 60, "backup_mode": "stop", "node": "default", "announce": "on",
            "announce_countdown": "5,600,601", "announce_message": "line\nbreak", "announce_done_message": "ok"}
    form = ServerForm(data, instance=server, user=alice)
    assert not form.is_valid()
    assert set(form.errors) == {"announce_countdown", "announce_message"}
    form = ServerForm({**data, "announce_countdown": "5, 30", "announce_message": "In {seconds} s"},
                      instance=server, user=alice)
    assert form.is_valid(), form.errors
    assert form.cleaned_data["announce_countdown"] == "30,5"


# --- stop mode, players online ------------------------------------------------------

def test_players_online_hear_the_countdown_then_the_stop_then_the_done_message(
        alice, fake_mc, sent, django_capture_on_commit_callbacks):
    server = fake_mc(alice, started=True, flags=("--players", "alice,bob"))
    server.announce_countdown = "2,1"
    server.save()

    record = _trigger(server, django_capture_on_commit_callbacks)
    record.refresh_from_db()
    # The first warning at once; the run is queued, not started, and not held by anyone.
    assert said(server) == ["The server stops for a backup in 2 seconds."]
    assert record.status == "queued"
    assert dt.timedelta(seconds=1) < record.not_before - timezone.now() <= dt.timedelta(seconds=2)
    node = server.node
    assert sent == [("announce_backup", {"backup_id": record.pk, "seconds": 1}, node, 1),
                    ("run_backup", {"backup_id": record.pk}, node, 2)]

    # What the worker does when each task is due.
    assert announce.backup_announce_warning(backup_id=record.pk, seconds=1)
    record = backup_run(backup_id=record.pk)
    assert record.status == "succeeded", record.error_message
    assert record.warnings == []

    lines = console(server)
    first, second = (next(i for i, line in enumerate(lines) if text in line)
                     for text in ("in 2 seconds", "in 1 seconds"))
    stopping = next(i for i, line in enumerate(lines) if "Stopping server" in line)
    done = next(i for i, line in enumerate(lines) if "[Rcon] Backup finished." in line)
    restarted = max(i for i, line in enumerate(lines) if "--- mcsite start" in line)
    assert first < second < stopping < restarted < done
    assert said(server) == ["The server stops for a backup in 2 seconds.",
                            "The server stops for a backup in 1 seconds.", "Backup finished."]


def test_an_empty_countdown_warns_once_without_waiting(alice, fake_mc, sent, django_capture_on_commit_callbacks):
    server = fake_mc(alice, started=True, flags=("--players", "alice"))
    server.announce_countdown = ""
    server.announce_message = "Backup now ({seconds} s)"
    server.save()
    record = _trigger(server, django_capture_on_commit_callbacks)
    assert said(server) == ["Backup now (0 s)"]
    assert sent == [("run_backup", {"backup_id": record.pk}, server.node, None)]


def test_nobody_online_means_no_wait(alice, fake_mc, sent, django_capture_on_commit_callbacks):
    server = fake_mc(alice, started=True)  # `list`: 0 players
    record = _trigger(server, django_capture_on_commit_callbacks)
    assert sent == [("run_backup", {"backup_id": record.pk}, server.node, None)]
    assert said(server) == ["The server stops for a backup in 0 seconds."]
    record.refresh_from_db()
    assert record.not_before <= timezone.now()


def test_a_stopped_server_is_told_nothing(alice, fake_mc, sent, django_capture_on_commit_callbacks):
    server = fake_mc(alice, started=False)
    record = _trigger(server, django_capture_on_commit_callbacks)
    assert sent == [("run_backup", {"backup_id": record.pk}, server.node, None)]
    record.refresh_from_db()
    assert record.not_before is None and record.warnings == []


def test_announce_off_says_nothing(alice, fake_mc, sent, django_capture_on_commit_callbacks):
    server = fake_mc(alice, started=True, flags=("--players", "alice"))
    server.announce = False
    server.save()
    record = _trigger(server, django_capture_on_commit_callbacks)
    assert sent == [("run_backup", {"backup_id": record.pk}, server.node, None)]
    assert said(server) == []


# --- live mode ------------------------------------------------------------------------

def test_live_mode_says_nothing_unless_asked(alice, fake_mc, sent, django_capture_on_commit_callbacks):
    server = fake_mc(alice, started=True, backup_mode="live", flags=("--players", "alice"))
    server.announce_countdown = "1"
    server.save()
    record = _trigger(server, django_capture_on_commit_callbacks)
    assert sent == [("run_backup", {"backup_id": record.pk}, server.node, None)]
    record = backup_run(backup_id=record.pk)
    assert record.status == "succeeded", record.error_message
    assert said(server) == []

    server.announce_live = True
    server.save()
    sent.clear()
    record = _trigger(server, django_capture_on_commit_callbacks)
    assert sent == [("run_backup", {"backup_id": record.pk}, server.node, 1)]
    record = backup_run(backup_id=record.pk)
    assert record.status == "succeeded", record.error_message
    assert said(server) == ["The server stops for a backup in 1 seconds.", "Backup finished."]


# --- failures and stops -------------------------------------------------------------------

def test_rcon_failures_never_fail_the_backup_they_are_warnings(alice, fake_mc, sent,
                                                                django_capture_on_commit_callbacks):
    server = fake_mc(alice, started=True, flags=("--players", "alice"))
    server.rcon_password = "not-the-password"
    server.save()
    record = _trigger(server, django_capture_on_commit_callbacks)
    assert sent == [("run_backup", {"backup_id": record.pk}, server.node, None)]
    record = backup_run(backup_id=record.pk)
    assert record.status == "succeeded", record.error_message
    assert "Players were not warned: RCON could not say who is online (list)" in record.warnings
    assert said(server) == []


def test_a_later_warning_says_nothing_once_the_backup_no_longer_waits(alice, fake_mc, sent,
                                                                      django_capture_on_commit_callbacks):
    server = fake_mc(alice, started=True, flags=("--players", "alice"))
    server.announce_countdown = "2,1"
    server.save()
    record = _trigger(server, django_capture_on_commit_callbacks)
    # Stopped meanwhile (what a cancel or the reaper does: the record leaves queued).
    assert lifecycle.end(record, status="failed", only_from=("queued",))
    assert not announce.backup_announce_warning(backup_id=record.pk, seconds=1)
    assert backup_run(backup_id=record.pk) is None
    assert said(server) == ["The server stops for a backup in 2 seconds."]


def test_the_reaper_leaves_a_counting_down_run_alone_until_not_before_plus_its_grace(alice, make_server):
    server = make_server(alice)
    now = timezone.now()
    record = BackupRecord.objects.create(server=server, owner=alice, server_name=server.name, phase="queued",
                                         created_at=now - QUEUED_TOO_LONG - dt.timedelta(minutes=5),
                                         not_before=now - QUEUED_TOO_LONG + dt.timedelta(minutes=5))
    assert reap_stale_runs(now=now)["backups"] == 0
    record.refresh_from_db()
    assert record.status == "queued"
    assert reap_stale_runs(now=now + dt.timedelta(minutes=10))["backups"] == 1
    record.refresh_from_db()
    assert (record.status, record.error_code) == ("failed", "WORKER_LOST")


def test_the_api_and_history_show_when_a_counting_down_backup_starts(alice, alice_api, fake_mc, sent, client,
                                                                       django_capture_on_commit_callbacks):
    server = fake_mc(alice, started=True, flags=("--players", "alice"))
    server.announce_countdown = "300"
    server.save()
    record = _trigger(server, django_capture_on_commit_callbacks)
    data = alice_api.get(f"/api/backups/{server.pk}/history").json()["data"]
    row = next(item for item in data if item["id"] == record.pk)
    assert row["status"] == "queued" and row["not_before"]
    client.force_login(alice)
    page = client.get(f"/backup/{server.pk}").content.decode()
    assert re.search(r"Players are being warned · starts in 29\d s", page)


def test_a_scheduled_backup_warns_too_and_leaves_the_run_to_a_task(alice, fake_mc, sent,
                                                                   django_capture_on_commit_callbacks):
    from backups.services import schedules
    from backups.services.scheduled import backup_scheduled_run

    server = fake_mc(alice, started=True, flags=("--players", "alice"))
    server.announce_countdown = "1"
    server.save()
    schedule = schedules.backup_schedule_create(
        server=server, data={"schedule_type": "daily", "schedule_time": dt.time(3, 0)}, actor=alice)
    with django_capture_on_commit_callbacks(execute=True):
        record = backup_scheduled_run(schedule_id=schedule.pk)
    record.refresh_from_db()
    assert (record.status, record.trigger) == ("queued", "scheduled")  # the beat task did not wait
    assert sent == [("run_backup", {"backup_id": record.pk}, server.node, 1)]
    assert said(server) == ["The server stops for a backup in 1 seconds."]
    record = backup_run(backup_id=record.pk)
    assert record.status == "succeeded", record.error_message
    assert said(server)[-1] == "Backup finished."
