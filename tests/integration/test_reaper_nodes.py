"""The reaper and the nodes of SPEC §12: a server's folder and process live
on the host whose worker listens on the server's node queue."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from backups.models import BackupRecord
from backups.tasks import reap_stale_runs
from servers import control
from servers.models import Server
from tests.fakes.fixtures import fakes_under
from tests.integration.conftest import INTEGRATION, wait_for

pytestmark = INTEGRATION


def test_the_reaper_starts_a_server_on_its_own_node_not_on_the_reapers(celery_site, alice, fake_mc,
                                                                          settings):
    server = fake_mc(alice, started=True)
    control.stop(server.process_spec())
    Server.objects.filter(pk=server.pk).update(node="game-host-b", pid=None, pid_create_time=None)
    long_ago = timezone.now() - timedelta(minutes=10)
    record = BackupRecord.objects.create(
        server=server, owner=alice, server_name=server.name, status="running", phase="archiving",
        started_at=long_ago, heartbeat_at=long_ago, server_was_running=True, server_stopped_by_backup=True,
    )
    celery_site.start_worker(queue="default")  # the worker of node "default", where beat's system tasks go

    reap_stale_runs.apply_async(queue="default")
    reaped = re.compile(r"Task backups\.tasks\.reap_stale_runs\[[^\]]+\] succeeded")
    wait_for(lambda: reaped.search(celery_site.log("worker")), timeout=30, message="the reaper to run")

    record.refresh_from_db()
    started_here = fakes_under(settings.MCSITE_SERVERS_ROOT)
    # Game host B's server must be started by game host B's worker (its node
    # queue), never by the host that happened to run the reaper.
    assert started_here == [], f"node 'default' started a server of node 'game-host-b' ({record.error_code})"
    assert record.status == "failed" and record.error_code == "WORKER_LOST"

    # Game host B's worker picks the start up from its own queue.
    celery_site.start_worker(queue="game-host-b", name="worker-b")
    wait_for(lambda: fakes_under(settings.MCSITE_SERVERS_ROOT), timeout=30,
             message="node game-host-b's worker to start its server")
    assert "start_server_after_lost_run" in celery_site.log("worker-b")
