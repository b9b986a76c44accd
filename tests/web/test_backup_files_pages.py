"""The backup's Files page and "Restore into a new folder…": folders are
links, sizes in MiB/KiB, each entry and each detected part has a "Restore
only…" link into the usual preview; a backup without a file list says so
and offers "Verify again"; another user gets a 404."""

from pathlib import Path

import pytest
from django.conf import settings

from backups.models import BackupContents, RestoreRequest
from servers.models import Server

pytestmark = pytest.mark.django_db


def test_the_files_page_lists_a_level_with_restore_links(alice_web, alices_server, take_backup):
    record = take_backup(alices_server)
    url = f"/backup/{alices_server.pk}/backups/{record.pk}/files"
    top = alice_web.get(url).content.decode()
    assert f'href="{url}?path=world"' in top and "Restore into a new folder" in top
    assert "Restore only the Nether" in top and "path=world%2FDIM-1" in top
    world = alice_web.get(url + "?path=world/DIM-1").content.decode()
    assert "region/" in world and "MiB" in world
    preview = alice_web.get(f"/backup/{alices_server.pk}/restore/?backup={record.filename}&path=world/DIM-1")
    assert preview.status_code == 200 and "Only these are replaced" in preview.content.decode()
    page = alice_web.get(f"/backup/{alices_server.pk}").content.decode()
    assert f"/backup/{alices_server.pk}/backups/{record.pk}/files" in page  # the history row's Files link


def test_a_backup_without_a_list_offers_verify_again(alice_web, alices_server, take_backup):
    record = take_backup(alices_server)
    BackupContents.objects.filter(backup=record).delete()
    body = alice_web.get(f"/backup/{alices_server.pk}/backups/{record.pk}/files/").content.decode()
    assert "verify it again" in body and "Verify again" in body


def test_a_bad_path_says_why(alice_web, alices_server, take_backup):
    record = take_backup(alices_server)
    response = alice_web.get(f"/backup/{alices_server.pk}/backups/{record.pk}/files/?path=../etc", follow=True)
    assert "Bad path" in response.content.decode() and "holds" in response.content.decode()


def test_another_user_gets_a_404(bob_web, alices_server, take_backup):
    record = take_backup(alices_server)
    assert bob_web.get(f"/backup/{alices_server.pk}/backups/{record.pk}/files/").status_code == 404
    assert bob_web.post(f"/backup/{alices_server.pk}/backups/{record.pk}/copy/",
                        {"name": "x", "directory": "x"}).status_code == 404
    assert not (Path(settings.MCSITE_SERVERS_ROOT) / "x").exists()


def test_restore_into_a_new_folder_from_the_page(alice, alice_web, alices_server, take_backup):
    record = take_backup(alices_server)
    url = f"/backup/{alices_server.pk}/backups/{record.pk}/copy/"
    assert "Restore into this new folder" in alice_web.get(url).content.decode()
    refused = alice_web.post(url, {"name": "copy", "directory": alices_server.directory})
    assert refused.status_code == 400 and "new (or empty) folder" in refused.content.decode()
    response = alice_web.post(url, {"name": "Test copy", "directory": "test-copy"})
    copy = Server.objects.get(name="Test copy", owner=alice)
    row = RestoreRequest.objects.get(server=copy)
    assert response.status_code == 302 and response["Location"] == f"/backup/{copy.pk}/restores/{row.pk}"
    assert row.kind == "copy"
