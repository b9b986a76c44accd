"""List endpoints use a constant number of queries, whatever the rows."""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from backups import storage
from backups.models import BackupRecord, BackupSchedule, RestoreRequest
from servers.models import Server

pytestmark = pytest.mark.django_db


def _seed(owner, servers_root, rows: int):
    first = None
    for i in range(rows):
        directory = f"{owner.username}-s{i}"
        (servers_root / directory).mkdir()
        server = Server.objects.create(owner=owner, name=f"s{i}", directory=directory)
        BackupSchedule.objects.create(server=server, schedule_time=dt.time(2))
        first = first or server
    for i in range(rows):
        path = storage.server_backup_dir(first.pk) / f"b{i}.tar.gz"
        path.write_bytes(b"x")
        record = BackupRecord.objects.create(server=first, owner=owner, server_name=first.name, filename=path.name,
                                             storage_path=storage.relative_path(path), status="succeeded",
                                             size_bytes=1, sha256="0" * 64)
        RestoreRequest.objects.create(server=first, backup=record, backup_filename=path.name, status="succeeded",
                                      safety_backup=record)
    return first


def _count(api, url) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = api.get(url)
    assert response.status_code == 200, response.content
    return len(ctx.captured_queries)


@pytest.mark.parametrize("url", ["/api/servers", "/api/backups/schedules", "/api/backups/{sid}/history",
                                 "/api/backups/{sid}/available", "/api/backups/{sid}/restores",
                                 "/api/backups/{sid}/status"])
def test_list_endpoints_use_the_same_number_of_queries_for_1_and_50_rows(
        alice, alice_api, bob, bob_api, settings, url):
    small = _seed(alice, settings.MCSITE_SERVERS_ROOT, 1)
    big = _seed(bob, settings.MCSITE_SERVERS_ROOT, 50)
    few = _count(alice_api, url.format(sid=small.pk))
    many = _count(bob_api, url.format(sid=big.pk))
    assert few == many, (few, many)
