"""API latency at scale: 1 000 servers and 100 000 backup records on
PostgreSQL, p50/p95 of history, available, status and the schedules list.

    .venv/bin/python -m bench.api_latency [--servers 1000] [--backups-per-server 100] [--requests 200]

It creates (and drops afterwards) a database `mcsite_bench` on the server
of $BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres),
times requests through Django's test client in this process (views,
serializers and SQL; no HTTP server in between), and writes the table into
docs/benchmarks.md between the api-bench markers."""

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import tempfile
import time
from urllib.parse import urlparse, urlunparse

from bench.doc import write_section

START, END = "<!-- api-bench:start -->", "<!-- api-bench:end -->"
DB_NAME = "mcsite_bench"


def _prepare_database(admin_url: str, name: str = DB_NAME) -> str:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    parsed = urlparse(admin_url)
    return urlunparse(parsed._replace(path=f"/{name}"))


def _drop_database(admin_url: str, name: str = DB_NAME) -> None:
    import psycopg

    from django.db import connections

    connections.close_all()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _seed(servers: int, per_server: int) -> tuple:
    from django.contrib.auth.models import User
    from django.utils import timezone

    from backups.models import BackupRecord, BackupSchedule
    from servers.models import Server

    owner = User.objects.create_superuser("bench", "", "bench-password")
    now = timezone.now()
    Server.objects.bulk_create(
        [Server(owner=owner, name=f"server-{i:04d}", directory=f"server-{i:04d}") for i in range(servers)],
        batch_size=1000)
    server_ids = list(Server.objects.values_list("pk", flat=True))
    BackupSchedule.objects.bulk_create(
        [BackupSchedule(server_id=pk, schedule_time=dt.time(2, 0), schedule_type="daily") for pk in server_ids],
        batch_size=1000)
    batch = []
    for pk in server_ids:
        for n in range(per_server):
            taken = now - dt.timedelta(days=n)
            batch.append(BackupRecord(
                server_id=pk, owner=owner, server_name=f"server-{pk}", filename=f"server_backup_{n:05d}.tar.gz",
                storage_path=f"server-{pk}/server_backup_{n:05d}.tar.gz",
                status="succeeded" if n % 10 else "failed", size_bytes=10_000_000 + n, sha256="ab" * 32,
                created_at=taken, started_at=taken, finished_at=taken + dt.timedelta(seconds=30),
                duration_seconds=30.0, verification_passed=bool(n % 10), quality_score=100 if n % 10 else 40,
                quality_level="Excellent" if n % 10 else "Poor"))
            if len(batch) >= 10_000:
                BackupRecord.objects.bulk_create(batch)
                batch.clear()
    BackupRecord.objects.bulk_create(batch)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return owner, server_ids


def _time(client, url: str, count: int, headers: dict) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    samples = []
    queries = 0
    for i in range(count):
        target = url(i) if callable(url) else url
        started = time.perf_counter()
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(target, **headers)
        samples.append((time.perf_counter() - started) * 1000)
        queries = len(ctx.captured_queries)
        assert response.status_code == 200, (target, response.status_code, response.content[:200])
    samples.sort()
    return {
        "p50": statistics.median(samples),
        "p95": samples[int(len(samples) * 0.95) - 1],
        "max": samples[-1],
        "queries": queries,
    }


def run(servers: int, per_server: int, requests: int) -> str:
    import random

    import django
    from django.test import Client

    django.setup()
    from django.core.management import call_command
    from mcsite.models import ApiToken

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    owner, server_ids = _seed(servers, per_server)
    seeded = time.perf_counter() - started
    _, key = ApiToken.issue(owner)
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
    client = Client()
    rng = random.Random(7)
    pick = [rng.choice(server_ids) for _ in range(requests)]
    endpoints = {
        "history": lambda i: f"/api/backups/{pick[i]}/history",
        "history, last page": lambda i: f"/api/backups/{pick[i]}/history?page={max(1, -(-per_server // 50))}",
        "available": lambda i: f"/api/backups/{pick[i]}/available",
        "status": lambda i: f"/api/backups/{pick[i]}/status",
        "schedules list": lambda i: "/api/backups/schedules",
        "schedules list, last page": lambda i: f"/api/backups/schedules?page={max(1, -(-servers // 50))}",
    }
    _time(client, endpoints["history"], 10, headers)  # warm caches and connections
    results = {name: _time(client, url, requests, headers) for name, url in endpoints.items()}
    lines = [
        f"Measured {dt.date.today().isoformat()} on {platform.node()} ({os.cpu_count()} cores, "
        f"{platform.python_implementation()} {platform.python_version()}), PostgreSQL, "
        f"{servers} servers and {servers * per_server:,} backup records (seeded in {seeded:.0f} s), "
        f"{requests} requests per endpoint through Django's test client in one process "
        "(views, serializers and SQL; no HTTP hop). Goal: p95 ≤ 100 ms.",
        "",
        "| Endpoint | p50 ms | p95 ms | max ms | SQL queries |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        lines.append(f"| {name} | {r['p50']:.1f} | {r['p95']:.1f} | {r['max']:.1f} | {r['queries']} |")
    lines.append("")
    lines.append("Run it with `.venv/bin/python -m bench.api_latency` (part of `make bench`).")
    return "\n".join(lines)


def write_doc(section: str) -> None:
    write_section(START, END, "API at scale", section)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=1000)
    parser.add_argument("--backups-per-server", type=int, default=100)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    admin_url = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    try:
        bench_url = _prepare_database(admin_url)
    except Exception as exc:  # noqa: BLE001 — no PostgreSQL: say so and skip
        print(f"API benchmark skipped: PostgreSQL at {admin_url} is not usable ({exc})")
        return 0
    scratch = tempfile.mkdtemp(prefix="mcsite-bench-")
    os.environ.update({
        "DJANGO_SETTINGS_MODULE": "mcsite.settings", "DATABASE_URL": bench_url, "CACHE_URL": "locmemcache://",
        "MCSITE_BACKUP_ROOT": scratch, "MCSITE_SERVERS_ROOT": scratch, "MCSITE_LOG_DIR": scratch,
        "MCSITE_THROTTLE_USER": "1000000/min", "CELERY_BROKER_URL": "memory://",
        "MCSITE_ALLOWED_HOSTS": "testserver",
    })
    try:
        section = run(args.servers, args.backups_per_server, args.requests)
    finally:
        _drop_database(admin_url)
    if not args.no_write:
        write_doc(section)
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
