"""Issue #11: who owns a backup is who owns its server now, not who owned it
when the backup was taken. After an admin gives alice's server to bob, alice
loses every door to its backups — web pages, admin changelist, change page
and every admin action — and bob gains them; kept backups of a deleted server
belong to its last owner; deleting a user never deletes another user's
history."""

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.test import RequestFactory

from backups import storage
from backups.models import BackupRecord, RestoreRequest
from mcsite.models import AuditEvent
from servers.models import Server
from servers.services import server_delete, server_update

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/backups/backuprecord/"
DOORS = ["backup.verify", "backup.lock", "backup.unlock", "backup.delete", "restore.restore"]


@pytest.fixture
def moved(alice, bob, admin_user, alices_server, take_backup):
    """A backup of alice's server, then the server given to bob through the
    admin's change form path (server_update with owner, by a superuser)."""
    record = take_backup(alices_server)
    server_update(server=Server.objects.get(pk=alices_server.pk), data={"owner": bob}, actor=admin_user)
    record.refresh_from_db()
    return record


def _action(client, action, pk, **extra):
    return client.post(CHANGELIST, {"action": action, ACTION_CHECKBOX_NAME: [pk], **extra}, follow=True)


def test_admin_move_through_the_change_form_moves_the_backups(admin_web, alice, bob, alices_server, take_backup):
    record = take_backup(alices_server)
    page = admin_web.get(f"/admin/servers/server/{alices_server.pk}/change/")
    form = page.context["adminform"].form
    post = {name: form[name].value() if form[name].value() is not None else "" for name in form.fields}
    post.update({"owner": str(bob.pk), "exclude_patterns": "\n".join(alices_server.exclude_patterns),
                 "backup_schedule-TOTAL_FORMS": "0", "backup_schedule-INITIAL_FORMS": "0",
                 "backup_schedule-MIN_NUM_FORMS": "0", "backup_schedule-MAX_NUM_FORMS": "1"})
    response = admin_web.post(f"/admin/servers/server/{alices_server.pk}/change/", post)
    assert response.status_code == 302, response.content.decode()[:3000]
    assert Server.objects.get(pk=alices_server.pk).owner == bob
    assert not BackupRecord.objects.for_user(alice).filter(pk=record.pk).exists()
    assert BackupRecord.objects.for_user(bob).filter(pk=record.pk).exists()


def test_old_owner_loses_the_web_pages_and_new_owner_gains_them(alice_web, bob_web, moved, alices_server):
    base = f"/backup/{alices_server.pk}"
    urls = [base, f"{base}/backups/{moved.pk}/progress", f"{base}/restore?backup={moved.filename}"]
    for url in urls:
        response = alice_web.get(url)
        assert response.status_code == 404, url
        assert moved.filename not in response.content.decode()
        assert bob_web.get(url).status_code == 200, url
    assert alice_web.post(f"{base}/backups/{moved.pk}/lock", {"locked": "1"}).status_code == 404
    assert alice_web.post(f"{base}/backups/{moved.pk}/verify").status_code == 404
    assert alice_web.post(f"{base}/restore", {"backup": moved.filename}).status_code == 404
    assert moved.filename not in alice_web.get("/servers/").content.decode()
    bob_web.post(f"{base}/backups/{moved.pk}/lock", {"locked": "1"})
    moved.refresh_from_db()
    assert moved.locked


def test_old_owner_loses_the_admin_changelist_and_change_page(alice_web, bob_web, moved):
    assert moved.filename not in alice_web.get(CHANGELIST).content.decode()
    response = alice_web.get(f"{CHANGELIST}{moved.pk}/change/", follow=True)
    assert moved.filename not in response.content.decode() and moved.sha256 not in response.content.decode()
    assert moved.filename in bob_web.get(CHANGELIST).content.decode()
    assert bob_web.get(f"{CHANGELIST}{moved.pk}/change/").status_code == 200


@pytest.mark.parametrize("confirm", [{}, {"confirm": "yes"}])
def test_old_owner_cannot_restore_the_moved_backup_from_the_admin(alice_web, moved, confirm):
    response = _action(alice_web, "restore_selected", moved.pk, **confirm)
    assert moved.filename not in response.content.decode()
    assert not RestoreRequest.objects.exists()


def test_old_owner_cannot_lock_verify_or_delete_the_moved_backup_from_the_admin(alice_web, moved, monkeypatch):
    sent = []
    monkeypatch.setattr("backups.services.lifecycle.send_task", lambda *a, **k: sent.append((a, k)))
    _action(alice_web, "lock_selected", moved.pk)
    _action(alice_web, "verify_selected", moved.pk)
    _action(alice_web, "delete_selected_files", moved.pk)
    moved.refresh_from_db()
    assert not moved.locked and moved.status == "succeeded" and storage.file_present(moved)
    assert sent == [] and not AuditEvent.objects.filter(action__in=DOORS).exists()


def test_new_owner_gains_every_admin_action(bob_web, moved, monkeypatch):
    preview = _action(bob_web, "restore_selected", moved.pk)
    assert 'name="confirm" value="yes"' in preview.content.decode()
    _action(bob_web, "restore_selected", moved.pk, confirm="yes")
    restore = RestoreRequest.objects.get()
    assert restore.server_id == moved.server_id and restore.requested_by.username == "bob"
    _action(bob_web, "lock_selected", moved.pk)
    moved.refresh_from_db()
    assert moved.locked
    _action(bob_web, "unlock_selected", moved.pk)
    _action(bob_web, "delete_selected_files", moved.pk)
    moved.refresh_from_db()
    assert moved.status == "deleted" and not storage.file_present(moved)


@pytest.mark.parametrize("action", ["restore_selected", "verify_selected", "lock_selected", "unlock_selected",
                                    "delete_selected_files"])
def test_every_admin_action_rechecks_the_server_even_when_handed_an_unscoped_queryset(alice, moved, action,
                                                                                      monkeypatch):
    """Defence in depth: the actions themselves refuse a backup whose server
    the actor may not see, whatever queryset they are given."""
    from django.contrib import admin
    from django.contrib.messages.storage.fallback import FallbackStorage

    sent = []
    monkeypatch.setattr("backups.services.lifecycle.send_task", lambda *a, **k: sent.append((a, k)))
    BackupRecord.objects.filter(pk=moved.pk).update(locked=action == "unlock_selected")
    request = RequestFactory().post(CHANGELIST, {"confirm": "yes"})
    request.user = alice
    request.session = {}
    request._messages = FallbackStorage(request)
    model_admin = admin.site.get_model_admin(BackupRecord)
    getattr(model_admin, action)(request, BackupRecord.objects.filter(pk=moved.pk))
    moved.refresh_from_db()
    assert not RestoreRequest.objects.exists() and sent == []
    assert not AuditEvent.objects.filter(action__in=DOORS).exists()
    assert moved.status == "succeeded" and storage.file_present(moved)
    assert moved.locked is (action == "unlock_selected")


def test_kept_backups_of_a_deleted_server_belong_to_its_last_owner(alice_web, bob_web, bob, moved, alices_server):
    server_delete(server=Server.objects.get(pk=alices_server.pk), delete_backups=False, actor=bob)
    assert moved.filename not in alice_web.get("/servers/").content.decode()
    assert moved.filename not in alice_web.get(CHANGELIST).content.decode()
    assert alice_web.post(f"/backups/kept/{moved.pk}/delete/").status_code == 404
    assert moved.filename in bob_web.get("/servers/").content.decode()
    assert moved.filename in bob_web.get(CHANGELIST).content.decode()
    bob_web.post(f"/backups/kept/{moved.pk}/delete/")
    moved.refresh_from_db()
    assert moved.status == "deleted"


def test_deleting_the_old_owner_keeps_the_new_owners_history(alice, bob_web, moved, alices_server):
    alice.delete()
    moved.refresh_from_db()
    assert moved.server_id == alices_server.pk and storage.file_present(moved)
    assert moved.filename in bob_web.get(f"/backup/{alices_server.pk}").content.decode()
