"""Real-browser fixtures: headless /usr/bin/chromium through Playwright's
sync API, and a queue worker thread that does what the Celery worker does in
`make run` — it picks up queued BackupRecord / RestoreRequest rows and
pending off-site copies and runs them through the services (real engine,
real files, real storage targets)."""

import os
import shutil
import threading
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update"]


@pytest.fixture(autouse=True)
def _owners_group(transactional_db):
    """The "Owners" group comes from a data migration; a transactional
    test's flush empties it, so put it back for the actors."""
    from django.contrib.auth.models import Group, Permission

    group, _ = Group.objects.get_or_create(name="Owners")
    group.permissions.add(*Permission.objects.filter(content_type__app_label__in=["servers", "backups"]))


@pytest.fixture
def browser(live_server):
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip(f"{CHROMIUM} is not installed (CI installs it; apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            # Playwright runs an event loop in this thread, so the test's ORM
            # calls got a database connection of their own (asgiref keys
            # connections by context): close it here, in that same context,
            # or it outlives the test database.
            from django.db import connections

            connections.close_all()
            chromium.close()


@pytest.fixture
def screenshots(settings):
    folder = Path(settings.BASE_DIR) / "test-artifacts" / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)

    def shoot(page, name: str) -> Path:
        path = folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return shoot


class QueueWorker(threading.Thread):
    """Polls for queued runs and calls backup_run / restore_run, as the
    Celery tasks do. With the in-memory SQLite test database it uses the
    connection the live server shares (as Django's LiveServerThread does);
    with PostgreSQL it has a connection of its own."""

    def __init__(self, shared_connections: dict):
        super().__init__(name="test-queue-worker", daemon=True)
        self.shared_connections = shared_connections
        self.halt = threading.Event()
        self.ran: list[tuple[str, int, str]] = []
        self.errors: list[BaseException] = []

    def run(self) -> None:
        from django.db import connections

        from backups.models import BackupRecord, OffsiteCopy, RestoreRequest
        from backups.services.offsite import copy_run
        from backups.services.restore_run import restore_run
        from backups.services.runs import backup_run

        for alias, connection in self.shared_connections.items():
            connections[alias] = connection
        try:
            while not self.halt.wait(0.25):
                for pk in list(BackupRecord.objects.filter(status="queued").values_list("pk", flat=True)):
                    record = backup_run(backup_id=pk, task_id=f"test-worker-{pk}")
                    self.ran.append(("backup", pk, record.status if record else "skipped"))
                for pk in list(RestoreRequest.objects.filter(status="queued").values_list("pk", flat=True)):
                    row = restore_run(restore_id=pk, task_id=f"test-worker-{pk}")
                    self.ran.append(("restore", pk, row.status if row else "skipped"))
                for pk in list(OffsiteCopy.objects.filter(status="pending", attempts=0).values_list("pk", flat=True)):
                    copy = copy_run(copy_id=pk, task_id=f"test-worker-copy-{pk}")
                    self.ran.append(("copy", pk, copy.status if copy else "skipped"))
        except BaseException as exc:  # noqa: BLE001 — reported by the fixture, not lost in a thread
            self.errors.append(exc)
        finally:
            if not self.shared_connections:
                connections.close_all()


@pytest.fixture
def queue_worker(live_server):
    from django.db import connections

    shared = {c.alias: c for c in connections.all() if c.vendor == "sqlite" and c.is_in_memory_db()}
    worker = QueueWorker(shared)
    worker.start()
    yield worker
    worker.halt.set()
    worker.join(timeout=60)
    assert not worker.errors, worker.errors


os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
