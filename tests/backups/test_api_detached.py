"""Backups kept when their server was deleted stay reachable by their owner
(list, download, delete) and by nobody else."""

import pytest

from backups import storage
from servers.services import server_delete

pytestmark = pytest.mark.django_db


@pytest.fixture
def kept(alice, make_server, take_backup):
    server = make_server(alice, "retired-world")
    record = take_backup(server)
    server_delete(server=server, delete_backups=False, actor=alice)
    record.refresh_from_db()
    return record


def test_owner_lists_downloads_and_deletes_kept_backups(alice_api, kept):
    listed = alice_api.get("/api/backups/detached").json()
    assert [b["filename"] for b in listed["data"]] == [kept.filename]
    assert listed["data"][0]["server_id"] is None and listed["data"][0]["server_name"] == "retired-world"
    download = alice_api.get(f"/api/backups/detached/{kept.pk}/download")
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == storage.absolute_path(kept.storage_path).read_bytes()
    deleted = alice_api.delete(f"/api/backups/detached/{kept.pk}/")
    assert deleted.status_code == 200 and deleted.json()["data"]["status"] == "deleted"
    assert not storage.file_present(kept)
    assert alice_api.get("/api/backups/detached").json()["data"] == []


def test_another_user_sees_nothing(bob_api, anon_api, kept):
    assert bob_api.get("/api/backups/detached").json()["data"] == []
    for response in (bob_api.get(f"/api/backups/detached/{kept.pk}"),
                     bob_api.get(f"/api/backups/detached/{kept.pk}/download"),
                     bob_api.delete(f"/api/backups/detached/{kept.pk}")):
        assert response.status_code == 404 and "retired-world" not in response.content.decode()
    assert anon_api.get("/api/backups/detached").status_code == 401
    assert storage.file_present(kept)


def test_a_backup_of_an_existing_server_is_not_detached(alice_api, alice, make_server, take_backup):
    record = take_backup(make_server(alice, "alive"))
    assert alice_api.get(f"/api/backups/detached/{record.pk}").json()["code"] == "BACKUP_NOT_FOUND"
