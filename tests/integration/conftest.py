"""Fixtures for the integration tests (issue #5): real parts, no mocks.

`celery_site` points this process's Celery app at a Redis database of the
test's own and starts a real `celery worker` (and, on request, `celery beat`
with the DatabaseScheduler) as subprocesses that use the test's PostgreSQL
database, folders and secret key. Everything is killed at teardown — whole
process groups, and every fake Minecraft server under the test's folder —
before pytest-django flushes the database."""

import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import quote, urlparse, urlunparse
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from tests.backups.conftest import fake_mc  # noqa: F401  (fixture)
from tests.conftest import redis_url
from tests.fakes.fixtures import fake_server_factory, kill_fakes_under  # noqa: F401  (fixture)

BIN = Path(sys.executable).parent
# Every test here: real services, slow, and a database the worker can see.
INTEGRATION = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow,
               pytest.mark.django_db(transaction=True)]
FIRST_REDIS_DB = 13  # xdist worker gwN uses database 13 - N, so parallel runs never share a queue


def wait_for(predicate, *, timeout: float, interval: float = 0.1, message: str = "condition"):
    """Polls until predicate() returns something truthy; returns it."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {message}")
        time.sleep(interval)


def next_whole_minute(margin: timedelta = timedelta(seconds=10)) -> datetime:
    """The next HH:MM:00 in MCSITE_TIME_ZONE that is at least `margin` away
    (what a daily schedule made now can be set to and still fire)."""
    now = timezone.now().astimezone(ZoneInfo(settings.MCSITE_TIME_ZONE))
    minute = (now + timedelta(minutes=1)).replace(second=0, microsecond=0)
    while minute - now < margin:
        minute += timedelta(minutes=1)
    return minute


def integration_broker_url() -> str:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = FIRST_REDIS_DB - int(worker.removeprefix("gw") or 0)
    if index < 1:
        pytest.fail(f"too many xdist workers for the integration tests' Redis databases ({worker})")
    return urlunparse(urlparse(redis_url())._replace(path=f"/{index}"))


def worker_database_url() -> str:
    """The database pytest-django created (test_<name>, test_<name>_gw0, …)."""
    db = connection.settings_dict
    credentials = quote(db["USER"] or "", safe="")
    if db.get("PASSWORD"):
        credentials += ":" + quote(db["PASSWORD"], safe="")
    host = db["HOST"] or "127.0.0.1"
    return f"postgres://{credentials}@{host}:{db['PORT'] or 5432}/{quote(db['NAME'], safe='')}"


def _send_to(app, url: str | None) -> None:
    """Makes this process publish to `url` (None: back to the configured
    broker). `broker_write_url` is what Celery publishes with, and unlike
    `broker_url` no CELERY_BROKER_URL in the environment overrides it. Kombu
    keeps its pools in a process-wide registry: close and forget them, and
    drop the app's references as Celery itself does after a fork."""
    from kombu import pools

    app.conf.broker_write_url = url
    pools.reset()
    app._pool = None
    app.amqp._producer_pool = None


class CelerySite:
    """The worker and beat of one test, and what they wrote to their logs."""

    def __init__(self, folder: Path, env: dict):
        self.folder = folder
        self.env = env
        self.processes: dict[str, subprocess.Popen] = {}

    def _start(self, name: str, argv: list[str], ready: str, env: dict | None = None) -> subprocess.Popen:
        log = open(self.folder / f"{name}.log", "ab")  # noqa: SIM115 — the child owns it
        # start_new_session: a process group of its own, so killpg also takes the pool children.
        proc = subprocess.Popen([str(BIN / "celery"), "-A", "mcsite", *argv], cwd=settings.BASE_DIR,
                                env={**self.env, **(env or {})}, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        self.processes[name] = proc
        try:
            wait_for(lambda: ready in self.log(name) or proc.poll() is not None, timeout=60,
                     message=f"celery {name} to start")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; its log:\n{self.log(name)[-4000:]}") from None
        assert proc.poll() is None, f"celery {name} exited with {proc.returncode}:\n{self.log(name)[-4000:]}"
        return proc

    def start_worker(self, queue: str = "default", name: str = "worker",
                     concurrency: int = 1, env: dict | None = None) -> subprocess.Popen:
        """`make run` uses MCSITE_WORKER_CONCURRENCY (2); one process keeps most tests deterministic.
        `env`: settings of this worker's own (a game host: MCSITE_NODE and its roots)."""
        node = f"itest-{uuid.uuid4().hex[:8]}@%h"
        return self._start(name, ["worker", "-Q", queue, "--concurrency", str(concurrency), "-l", "info",
                                  "-n", node, "--without-gossip", "--without-mingle"], ready=" ready.", env=env)

    def start_beat(self) -> subprocess.Popen:
        return self._start("beat", ["beat", "-l", "info", "--max-interval", "2",
                                    "--scheduler", "django_celery_beat.schedulers:DatabaseScheduler",
                                    "--pidfile", str(self.folder / "beat.pid"),
                                    "--schedule", str(self.folder / "beat-schedule")], ready="beat: Starting")

    def log(self, name: str) -> str:
        path = self.folder / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def kill(self, name: str) -> None:
        """SIGKILL to the whole process group: the main process and its pool children."""
        proc = self.processes.get(name)
        if proc is None or proc.returncode is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)

    def kill_all(self) -> None:
        for name in list(self.processes):
            self.kill(name)


@pytest.fixture(autouse=True)
def _owners_group(transactional_db):
    """The "Owners" group comes from a data migration, and a transactional
    test's flush empties it: put it back for the actors."""
    from django.contrib.auth.models import Group, Permission

    group, _ = Group.objects.get_or_create(name="Owners")
    group.permissions.add(*Permission.objects.filter(content_type__app_label__in=["servers", "backups"]))


@pytest.fixture
def celery_site(transactional_db, settings, tmp_path, monkeypatch):
    """A Redis database of the test's own for this process and its worker and
    beat (start them with `celery_site.start_worker()` / `.start_beat()`)."""
    import redis

    from mcsite.celery import app

    broker_url = integration_broker_url()
    redis.Redis.from_url(broker_url).flushdb()
    settings.MCSITE_RUN_DIR = tmp_path / "run"
    folder = tmp_path / "celery"
    folder.mkdir()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("MCSITE_", "CELERY_", "DATABASE_URL", "CACHE_URL", "PYTEST_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="mcsite.settings_test",
        DATABASE_URL=worker_database_url(),
        CELERY_BROKER_URL=broker_url,
        CACHE_URL="locmemcache://",
        MCSITE_SECRET_KEY=settings.SECRET_KEY,
        MCSITE_TIME_ZONE=settings.MCSITE_TIME_ZONE,
        MCSITE_SERVERS_ROOT=str(settings.MCSITE_SERVERS_ROOT),
        MCSITE_BACKUP_ROOT=str(settings.MCSITE_BACKUP_ROOT),
        MCSITE_LOG_DIR=str(tmp_path / "logs"),
        MCSITE_RUN_DIR=str(settings.MCSITE_RUN_DIR),
        # Tests share two cores with other tests, not with a game: a niced worker would
        # just be slow. test_worker_priority.py starts one at the defaults.
        MCSITE_BACKUP_NICE="0",
        MCSITE_BACKUP_IO_PRIORITY="none",
        PYTHONUNBUFFERED="1",
    )
    monkeypatch.delenv("CELERY_BROKER_WRITE_URL", raising=False)
    _send_to(app, broker_url)
    site = CelerySite(folder, env)
    try:
        yield site
    finally:
        site.kill_all()
        kill_fakes_under(Path(settings.MCSITE_SERVERS_ROOT))
        _send_to(app, None)
        redis.Redis.from_url(broker_url).flushdb()


def add_bulk(folder: Path, megabytes: int) -> None:
    """Incompressible files, so archiving takes seconds and can be watched (or interrupted)."""
    bulk = folder / "bulk"
    bulk.mkdir()
    for index in range(megabytes // 16):
        (bulk / f"blob{index:03d}.bin").write_bytes(os.urandom(16 * 2**20))


def wait_finished(backup_id: int, *, timeout: float = 90):
    """The backup record once it has left queued/running."""
    from backups.models import BackupRecord

    finished = BackupRecord.objects.filter(pk=backup_id).exclude(status__in=["queued", "running"])
    return wait_for(finished.first, timeout=timeout, interval=0.2, message=f"backup {backup_id} to finish")
