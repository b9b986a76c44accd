"""Load (issue #10): 50 servers whose schedules fire in the same minute, with
the documented default worker concurrency (MCSITE_WORKER_CONCURRENCY=2, as
`make run` starts it). A real beat sends each schedule once, a real worker
runs them against Redis and PostgreSQL: every backup ends succeeded, exactly
one per server, none lost, none doubled, every file whole on disk."""

import re
import time
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from backups import storage
from backups.engine import file_digests
from backups.models import BackupRecord, BackupSchedule
from tests.integration.conftest import INTEGRATION, next_whole_minute, wait_for

pytestmark = INTEGRATION

SERVERS = 50
WITH_WORLD = range(0, SERVERS, 10)  # five carry the real 1.14.4 world, so verification checks a world
WORKER_CONCURRENCY = 2  # README: MCSITE_WORKER_CONCURRENCY defaults to 2 (mcsite/run.py)
MARGIN = timedelta(seconds=20)  # time to create 50 schedules and for beat (--max-interval 2) to load them
BEAT_SLACK = timedelta(seconds=5)  # the schedules must all exist this long before they fire
FINISH_TIMEOUT = 150  # seconds after the minute for all 50 to end (they take 3-5 s on 2 cores)
QUIET = 6  # seconds to watch for extra backups after the last one (3 beat ticks)


def _diagnosis(celery_site, servers) -> str:
    rows = BackupRecord.objects.filter(server__in=servers).order_by("server_id", "pk")
    counts = {}
    for row in rows:
        counts.setdefault(row.server_id, []).append(f"#{row.pk} {row.status}/{row.phase} {row.error_code}")
    missing = [s.name for s in servers if s.pk not in counts]
    doubled = {pk: runs for pk, runs in counts.items() if len(runs) > 1}
    unfinished = [f"{row.server_name} #{row.pk} {row.status}/{row.phase}" for row in rows
                  if row.status in ("queued", "running")]
    failed = [f"{row.server_name} #{row.pk} {row.error_code}: {row.error_message}" for row in rows
              if row.status not in ("queued", "running", "succeeded")]
    return (f"\nrecords={rows.count()} missing={missing}\ndoubled={doubled}\nunfinished={unfinished}\n"
            f"failed={failed}\n--- beat log (tail) ---\n{celery_site.log('beat')[-6000:]}"
            f"\n--- worker log (tail) ---\n{celery_site.log('worker')[-12000:]}")


def test_fifty_schedules_in_one_minute_each_back_up_their_server_exactly_once(celery_site, alice, alice_api,
                                                                              make_server):
    servers = [make_server(alice, f"s{i:02d}", world=i in WITH_WORLD) for i in range(SERVERS)]
    celery_site.start_worker(concurrency=WORKER_CONCURRENCY)
    beat = celery_site.start_beat()

    fire_at = next_whole_minute(MARGIN)
    schedule_ids = {}
    for server in servers:
        response = alice_api.post("/api/backups/schedules", {
            "server_id": server.pk, "schedule_type": "daily", "schedule_time": f"{fire_at:%H:%M}",
            "retention_days": 7, "enabled": True,
        }, format="json")
        assert response.status_code == 201, response.json()
        schedule_ids[server.pk] = response.json()["data"]["id"]
    created_by = timezone.now()
    assert created_by <= fire_at - BEAT_SLACK, (
        f"this machine took until {created_by:%H:%M:%S} to create the schedules for {fire_at:%H:%M}: "
        "too late to be sure beat loaded them, not a finding about the site")
    assert BackupSchedule.objects.filter(server__in=servers, enabled=True).count() == SERVERS

    finished = BackupRecord.objects.filter(server__in=servers).exclude(status__in=["queued", "running"])
    deadline = (fire_at - timezone.now()).total_seconds() + FINISH_TIMEOUT
    try:
        wait_for(lambda: finished.values("server").distinct().count() >= SERVERS, timeout=deadline,
                 interval=1, message=f"all {SERVERS} scheduled backups of {fire_at:%H:%M} to finish")
    except AssertionError as exc:
        raise AssertionError(f"{exc}{_diagnosis(celery_site, servers)}") from None
    took = (timezone.now() - fire_at).total_seconds()

    # Beat ticks every 2 s: a schedule sent twice, or a late redelivery, would show up now.
    time.sleep(QUIET)
    assert beat.poll() is None, "beat must have run throughout"
    records = list(BackupRecord.objects.filter(server__in=servers).order_by("server_id"))
    assert len(records) == SERVERS and {r.server_id for r in records} == {s.pk for s in servers}, \
        _diagnosis(celery_site, servers)

    problems = []
    world_servers = {servers[i].pk for i in WITH_WORLD}
    for record in records:
        name = f"{record.server_name} (#{record.pk})"
        outcome = (record.trigger, record.status, record.verification_passed)
        if outcome != ("scheduled", "succeeded", True):
            problems.append(f"{name}: {outcome} {record.error_code} {record.error_message}")
            continue
        if record.created_at < fire_at:
            problems.append(f"{name}: created {record.created_at:%H:%M:%S}, before the schedule fired")
        if record.server_id in world_servers and record.world_name != "world":
            problems.append(f"{name}: world {record.world_name!r} (verification {record.verification})")
        path = storage.absolute_path(record.storage_path)
        if not path.is_file():
            problems.append(f"{name}: no file at {record.storage_path}")
            continue
        if path.stat().st_size != record.size_bytes:
            problems.append(f"{name}: {path.stat().st_size} bytes on disk, {record.size_bytes} recorded")
        if file_digests(path)[0] != record.sha256:
            problems.append(f"{name}: SHA-256 of the file differs from the recorded {record.sha256}")
    assert not problems, "\n".join(problems) + _diagnosis(celery_site, servers)
    assert len({r.storage_path for r in records}) == SERVERS

    backup_root = storage.backup_root()
    assert backup_root == settings.MCSITE_BACKUP_ROOT.resolve()
    assert not list(backup_root.rglob(".partial-*")), sorted(map(str, backup_root.rglob(".partial-*")))
    archives = sorted(p.relative_to(backup_root).as_posix() for p in backup_root.rglob("*") if p.is_file())
    assert archives == sorted(r.storage_path for r in records)

    beat_log, worker_log = celery_site.log("beat"), celery_site.log("worker")
    for schedule_id in schedule_ids.values():
        sends = re.findall(rf"Sending due task backup-schedule:{schedule_id} ", beat_log)
        assert len(sends) == 1, f"schedule {schedule_id} sent {len(sends)} times:\n{beat_log[-6000:]}"
    received = re.findall(r"Task backups\.tasks\.run_scheduled_backup\[[^\]]+\] received", worker_log)
    assert len(received) == SERVERS, worker_log[-12000:]
    assert "backup_run_skipped" not in worker_log
    assert not re.search(r"\b(ERROR|CRITICAL)\b", worker_log), worker_log[-12000:]
    print(f"\n{SERVERS} scheduled backups of {fire_at:%H:%M:%S} all finished {took:.1f} s after it")
