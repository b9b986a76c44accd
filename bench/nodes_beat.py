"""One beat, 1 000 servers on 10 game hosts, all scheduled for the same
minute (issue #15): is every backup task sent within 60 s of that minute,
exactly once, to its node's queue, while the status API stays fast?

    .venv/bin/python -m bench.nodes_beat [--servers 1000] [--nodes 10]

It creates (and drops afterwards) a database `mcsite_bench_nodes` on the
server of $BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres),
uses Redis database 15 of $BENCH_REDIS_URL (default redis://127.0.0.1:6379)
as the broker, creates the servers and their daily schedules through the
services (one PeriodicTask each, on its node's queue), starts one real beat
(django-celery-beat's DatabaseScheduler) and no workers: the tasks are
counted and read in the node queues, where they wait (the "no-op" of the
issue). Meanwhile this process plays the web tier (MCSITE_NODE=web) and
times the status API through Django's test client, the nodes' reports
refreshed every 5 s as their heartbeats would. The result goes into
docs/benchmarks.md between the nodes-bench markers."""

import argparse
import base64
import datetime as dt
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.api_latency import _drop_database, _prepare_database
from bench.doc import write_section

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- nodes-bench:start -->", "<!-- nodes-bench:end -->"
DB_NAME = "mcsite_bench_nodes"
TASK = "backups.tasks.run_scheduled_backup"


def _seed(servers: int, node_count: int, at: dt.datetime):
    from django.contrib.auth.models import User
    from django.utils import timezone

    from backups.services.schedules import backup_schedule_create
    from servers.models import Node, Server

    owner = User.objects.create_superuser("bench", "", "bench-password")
    names = [f"node-{i}" for i in range(node_count)]
    Node.objects.bulk_create([Node(name=n, hostname=f"{n}.bench", last_heartbeat=timezone.now(),
                                   backup_root_free=500 * 2**30, backup_root_total=1000 * 2**30) for n in names])
    Server.objects.bulk_create([Server(owner=owner, name=f"server-{i:04d}", directory=f"server-{i:04d}",
                                       node=names[i % node_count]) for i in range(servers)], batch_size=1000)
    created = time.perf_counter()
    for server in Server.objects.all():
        backup_schedule_create(server=server, data={"schedule_type": "daily", "schedule_time": at.time()},
                               actor=owner)
    seconds = time.perf_counter() - created
    statuses: dict[str, dict] = {n: {} for n in names}
    for pk, node in Server.objects.values_list("pk", "node"):
        statuses[node][str(pk)] = {"state": "stopped", "running": False, "pid": None, "uptime_seconds": None,
                                   "folder": True, "warnings": []}
    for name, entries in statuses.items():
        Node.objects.filter(name=name).update(statuses=entries)
    return owner, names, list(Server.objects.values_list("pk", flat=True)), seconds


def _keep_nodes_fresh(stop: threading.Event) -> None:
    """What the nodes' heartbeats would write: last_heartbeat every 5 s."""
    from django.db import connection
    from django.utils import timezone

    from servers.models import Node

    try:
        while not stop.wait(5):
            Node.objects.update(last_heartbeat=timezone.now())
    finally:
        connection.close()


def _queued(redis_client, names) -> dict:
    return {name: redis_client.llen(name) for name in names}


def _schedule_ids(redis_client, names) -> list[int]:
    ids = []
    for name in names:
        for raw in redis_client.lrange(name, 0, -1):
            message = json.loads(raw)
            if message["headers"].get("task") != TASK:
                continue
            body = json.loads(base64.b64decode(message["body"]))
            ids.append(int(body[1]["schedule_id"]))
    return ids


def run(servers: int, node_count: int, broker_url: str) -> str:
    import django
    import redis

    django.setup()
    from django.core.management import call_command
    from django.test import Client

    from mcsite.models import ApiToken

    call_command("migrate", verbosity=0)
    logging.getLogger("mcsite.audit").setLevel(logging.WARNING)  # 1 000 schedule.create lines say nothing here
    now = dt.datetime.now(dt.timezone.utc)
    due = (now + dt.timedelta(minutes=3)).replace(second=0, microsecond=0)  # time to seed and start beat
    owner, names, server_ids, seed_seconds = _seed(servers, node_count, due)
    if dt.datetime.now(dt.timezone.utc) > due - dt.timedelta(seconds=20):
        raise SystemExit("seeding took too long for the chosen minute; run again")
    _, key = ApiToken.issue(owner)
    client = Client()
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
    broker = redis.Redis.from_url(broker_url)
    broker.flushdb()

    stop = threading.Event()
    fresh = threading.Thread(target=_keep_nodes_fresh, args=(stop,), daemon=True)
    fresh.start()
    folder = Path(tempfile.mkdtemp(prefix="mcsite-bench-beat-"))
    beat_log = open(folder / "beat.log", "wb")  # noqa: SIM115 — the child writes it
    beat = subprocess.Popen(
        [str(Path(sys.executable).parent / "celery"), "-A", "mcsite", "beat", "-l", "info",
         "--scheduler", "django_celery_beat.schedulers:DatabaseScheduler", "--pidfile", str(folder / "beat.pid"),
         "--schedule", str(folder / "beat-schedule")],
        cwd=ROOT, env={**os.environ, "MCSITE_NODE": "web"}, stdout=beat_log, stderr=subprocess.STDOUT)
    samples: list[float] = []
    arrivals: list[tuple[float, int]] = []
    try:
        pick = 0
        end = due + dt.timedelta(seconds=90)
        while dt.datetime.now(dt.timezone.utc) < end:
            sid = server_ids[pick % len(server_ids)]
            pick += 1
            url = f"/api/backups/{sid}/status" if pick % 2 else f"/api/servers/{sid}"
            started = time.perf_counter()
            response = client.get(url, **headers)
            elapsed = (time.perf_counter() - started) * 1000
            assert response.status_code == 200, (url, response.status_code, response.content[:300])
            if dt.datetime.now(dt.timezone.utc) >= due - dt.timedelta(seconds=5):
                samples.append(elapsed)
            if pick % 10 == 0:
                total = sum(_queued(broker, names).values())
                seconds = (dt.datetime.now(dt.timezone.utc) - due).total_seconds()
                if not arrivals or arrivals[-1][1] != total:
                    arrivals.append((seconds, total))
        time.sleep(30)  # anything sent twice would show up now
        ids = _schedule_ids(broker, names)
        per_queue = _queued(broker, names)
    finally:
        beat.terminate()
        beat.wait(timeout=30)
        beat_log.close()
        stop.set()
        fresh.join(timeout=10)
    from backups.models import BackupSchedule

    expected = set(BackupSchedule.objects.values_list("pk", flat=True))
    complete_at = next((s for s, total in arrivals if total >= servers), None)
    first_at = next((s for s, total in arrivals if total > 0), None)
    duplicates = len(ids) - len(set(ids))
    samples.sort()
    p95 = samples[int(len(samples) * 0.95) - 1] if samples else float("nan")
    ok_sent = set(ids) == expected and duplicates == 0 and complete_at is not None and complete_at <= 60
    load = os.getloadavg()
    lines = [
        f"Measured {dt.date.today().isoformat()} on {platform.node()} ({os.cpu_count()} cores, load "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {platform.python_implementation()} {platform.python_version()}), "
        f"PostgreSQL and Redis on this machine: {servers} servers on {node_count} node queues, each with a daily "
        f"schedule at {due:%H:%M} UTC (created through the services in {seed_seconds:.0f} s), one beat "
        "(DatabaseScheduler), no workers (the tasks wait in their queues and are read there).",
        "",
        "| What | Result | Goal |",
        "|---|---|---|",
        f"| backup tasks in the node queues | {len(ids)} for {len(expected)} schedules, {duplicates} twice, "
        f"{len(expected - set(ids))} missing | every one, exactly once |",
        f"| first / last task queued after the minute | {first_at:.1f} s / {complete_at:.1f} s |"
        f" all within 60 s |" if complete_at is not None and first_at is not None else
        "| first / last task queued after the minute | not all arrived | all within 60 s |",
        f"| per queue | {min(per_queue.values())}–{max(per_queue.values())} tasks | {servers // node_count} each |",
        f"| status API while it happens ({len(samples)} requests: `/api/backups/{{id}}/status` and "
        f"`/api/servers/{{id}}`, one client) | p50 {statistics.median(samples):.1f} ms, p95 {p95:.1f} ms, "
        f"max {samples[-1]:.1f} ms | p95 ≤ 100 ms |",
        "",
        f"Verdict: {'met' if ok_sent and p95 <= 100 else 'NOT met'}. Run it with "
        "`.venv/bin/python -m bench.nodes_beat` (part of `make bench`).",
    ]
    return "\n".join(lines)


def write_doc(section: str) -> None:
    write_section(START, END, "One beat, 1 000 servers on 10 game hosts", section)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    admin_url = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    broker_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379").rstrip("/") + "/15"
    try:
        import redis

        redis.Redis.from_url(broker_url).ping()
        bench_url = _prepare_database(admin_url, DB_NAME)
    except Exception as exc:  # noqa: BLE001 — no PostgreSQL or Redis: say so and skip
        print(f"Nodes benchmark skipped: PostgreSQL at {admin_url} or Redis at {broker_url} is not usable ({exc})")
        return 0
    scratch = tempfile.mkdtemp(prefix="mcsite-bench-")
    os.environ.update({
        "DJANGO_SETTINGS_MODULE": "mcsite.settings", "DATABASE_URL": bench_url, "CACHE_URL": "locmemcache://",
        "MCSITE_BACKUP_ROOT": scratch, "MCSITE_SERVERS_ROOT": scratch, "MCSITE_LOG_DIR": scratch,
        "MCSITE_RUN_DIR": scratch, "MCSITE_THROTTLE_USER": "1000000/min", "CELERY_BROKER_URL": broker_url,
        "MCSITE_ALLOWED_HOSTS": "testserver", "MCSITE_NODE": "web", "MCSITE_TIME_ZONE": "UTC",
    })
    try:
        section = run(args.servers, args.nodes, broker_url)
    finally:
        _drop_database(admin_url, DB_NAME)
    if not args.no_write:
        write_doc(section)
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
