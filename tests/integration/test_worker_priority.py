"""The game host comes first (issue #16): a real worker started with the default
priority settings runs, and its pool process runs, at nice 10 and I/O priority
best-effort 7 with the configured thread cap; the web side is left alone; a
backup through that worker still succeeds and verifies."""

import os

import psutil
from rest_framework.test import APIClient

from backups.models import BackupRecord
from tests.conftest import issue_token
from tests.integration.conftest import INTEGRATION, wait_finished, wait_for

pytestmark = INTEGRATION


def test_the_worker_and_its_pool_run_backups_at_low_cpu_and_io_priority(celery_site, alice, make_server):
    server = make_server(alice)
    worker = celery_site.start_worker(concurrency=1, env={
        "MCSITE_BACKUP_NICE": "10", "MCSITE_BACKUP_IO_PRIORITY": "best-effort:7", "MCSITE_BACKUP_THREADS": "1"})
    main = psutil.Process(worker.pid)
    wait_for(lambda: main.children(), timeout=30, message="the worker's pool process")
    for process in [main, *main.children()]:
        assert process.nice() == 10, process
        io = process.ionice()
        assert (io.ioclass, io.value) == (psutil.IOPRIO_CLASS_BE, 7), process
    assert "Worker runs backups at nice 10, I/O priority best-effort:7, 1 thread(s) per operation" \
        in celery_site.log("worker")
    assert os.getpriority(os.PRIO_PROCESS, 0) == 0  # this (web) process is not lowered

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token(alice)}")
    response = api.post(f"/api/backups/{server.pk}/trigger")
    assert response.status_code == 202, response.json()
    record = wait_finished(response.json()["data"]["id"])
    assert (record.status, record.verification_passed) == ("succeeded", True), record.error_message
    assert BackupRecord.objects.filter(server=server, status="succeeded").count() == 1
