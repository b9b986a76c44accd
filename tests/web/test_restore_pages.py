"""Restore from the web: preview (restore_preview), confirmation
(restore_request), progress, and rollback (restore_rollback)."""

import pytest

from backups.models import BackupRecord, RestoreRequest
from backups.services.restore_run import restore_run
from mcsite.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_the_preview_shows_contents_space_and_real_warnings(alice_web, alices_server, take_backup):
    record = take_backup(alices_server)
    response = alice_web.get(f"/backup/{alices_server.pk}/restore", {"backup": record.filename})
    assert response.status_code == 200
    body = response.content.decode()
    assert f'data-testid="file-count">{record.file_count}<' in body
    assert 'data-testid="world-name">' + record.world_name in body
    assert 'data-testid="minecraft-version">1.14.4' in body
    assert "Space needed" in body
    assert "current files in the server folder will be replaced" in body  # a warning from restore_preview
    assert "Restore this backup" in body
    assert not RestoreRequest.objects.exists()  # a preview changes nothing


@pytest.mark.parametrize("name", ["nope.tar.gz", "../../etc/passwd", ""])
def test_a_preview_of_an_unknown_file_says_backup_not_found(alice_web, alices_server, name):
    response = alice_web.get(f"/backup/{alices_server.pk}/restore", {"backup": name}, follow=True)
    assert "Backup not found" in response.content.decode()


def test_a_backup_of_another_server_cannot_be_restored_here(alice_web, alice, make_server, take_backup):
    mine, other = make_server(alice, "mine"), make_server(alice, "other")
    record = take_backup(other)
    response = alice_web.post(f"/backup/{mine.pk}/restore", {"backup": record.filename}, follow=True)
    assert "Backup not found" in response.content.decode()
    assert not RestoreRequest.objects.exists()


def test_another_user_gets_404_for_preview_confirm_progress_and_rollback(alice_web, bob_web, alices_server,
                                                                         take_backup):
    record = take_backup(alices_server)
    alice_web.post(f"/backup/{alices_server.pk}/restore", {"backup": record.filename})
    restore = RestoreRequest.objects.get()
    base = f"/backup/{alices_server.pk}"
    for url in (f"{base}/restore?backup={record.filename}", f"{base}/restores/{restore.pk}",
                f"{base}/restores/{restore.pk}/progress"):
        assert bob_web.get(url).status_code == 404, url
    assert bob_web.post(f"{base}/restore", {"backup": record.filename}).status_code == 404
    assert bob_web.post(f"{base}/restores/{restore.pk}/rollback").status_code == 404
    assert RestoreRequest.objects.count() == 1


def test_confirm_restores_then_rollback_undoes_it(alice_web, alices_server, take_backup):
    record = take_backup(alices_server)
    marker = alices_server.path / "made-after-the-backup.txt"
    marker.write_text("new")

    response = alice_web.post(f"/backup/{alices_server.pk}/restore", {"backup": record.filename})
    restore = RestoreRequest.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/backup/{alices_server.pk}/restores/{restore.pk}"
    assert AuditEvent.objects.filter(action="restore.restore", source="web").exists()
    queued = alice_web.get(f"/backup/{alices_server.pk}/restores/{restore.pk}/progress").json()
    assert queued["status"] == "queued" and not queued["done"]

    restore_run(restore_id=restore.pk)  # what the Celery worker does
    assert not marker.exists()
    progress = alice_web.get(f"/backup/{alices_server.pk}/restores/{restore.pk}/progress").json()
    assert progress["done"] and progress["ok"] and progress["percent"] == 100 and progress["can_roll_back"]
    page = alice_web.get(f"/backup/{alices_server.pk}/restores/{restore.pk}").content.decode()
    assert "Restore finished" in page and "Roll back" in page
    assert "Safety backup" in page

    response = alice_web.post(f"/backup/{alices_server.pk}/restores/{restore.pk}/rollback")
    rollback = RestoreRequest.objects.get(kind="rollback")
    assert response["Location"] == f"/backup/{alices_server.pk}/restores/{rollback.pk}"
    restore_run(restore_id=rollback.pk)
    assert marker.read_text() == "new"
    restore.refresh_from_db()
    assert restore.status == "rolled_back"
    page = alice_web.get(f"/backup/{alices_server.pk}").content.decode()
    assert "rolled back" in page.lower()


def test_rolling_back_an_unfinished_restore_is_explained(alice_web, alices_server, take_backup):
    record = take_backup(alices_server)
    alice_web.post(f"/backup/{alices_server.pk}/restore", {"backup": record.filename})
    restore = RestoreRequest.objects.get()
    response = alice_web.post(f"/backup/{alices_server.pk}/restores/{restore.pk}/rollback", follow=True)
    assert "Only a finished restore can be rolled back" in response.content.decode()


def test_a_restore_is_refused_while_a_backup_runs(alice_web, alices_server, take_backup):
    record = take_backup(alices_server)
    alice_web.post(f"/backup/{alices_server.pk}/trigger")
    response = alice_web.post(f"/backup/{alices_server.pk}/restore", {"backup": record.filename}, follow=True)
    assert "A backup is already in progress" in response.content.decode()
    assert not RestoreRequest.objects.exists()
    assert BackupRecord.objects.filter(status="queued").count() == 1


def test_the_restore_page_keeps_excluded_paths_unless_unticked(alice_web, alices_server, take_backup):
    (alices_server.path / "logs").mkdir(exist_ok=True)
    (alices_server.path / "logs" / "latest.log").write_text("today")
    record = take_backup(alices_server)
    body = alice_web.get(f"/backup/{alices_server.pk}/restore", {"backup": record.filename}).content.decode()
    assert 'name="keep_excluded" value="1" checked' in body
    assert "kept from the current folder: logs" in body and "keep_excluded false" not in body

    alice_web.post(f"/backup/{alices_server.pk}/restore", {"backup": record.filename, "keep_excluded": "0"})
    restore = RestoreRequest.objects.get()
    assert restore.keep_excluded is False
    restore = restore_run(restore_id=restore.pk)
    assert restore.status == "succeeded" and not (alices_server.path / "logs").exists()
