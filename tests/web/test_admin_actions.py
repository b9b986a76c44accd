"""Admin actions on backups go through the services: deleting the files of
backups kept after their server was deleted."""

def test_admin_delete_action_removes_files_of_kept_backups_of_a_deleted_server(client, alice, make_server,
                                                                               take_backup):
    from backups import storage
    from backups.models import BackupRecord
    from servers.services import server_delete

    server = make_server(alice, "gone-but-kept")
    record = take_backup(server)
    server_delete(server=server, delete_backups=False, actor=alice)
    record.refresh_from_db()
    assert record.server is None and storage.file_present(record)
    client.force_login(alice)
    response = client.post("/admin/backups/backuprecord/", {"action": "delete_selected_files",
                                                            "_selected_action": [record.pk]}, follow=True)
    assert response.status_code == 200
    record.refresh_from_db()
    assert record.status == "deleted" and not storage.file_present(record)
