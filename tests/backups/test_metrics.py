import pytest
from tests.conftest import issue_token

pytestmark = pytest.mark.django_db


def test_metrics_need_an_admin_or_a_token(client, alice, admin_user, settings):
    assert client.get("/metrics").status_code == 401
    client.force_login(alice)
    assert client.get("/metrics").status_code == 403
    client.logout()
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {issue_token(alice)}").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {issue_token(admin_user)}").status_code == 200
    settings.MCSITE_METRICS_TOKEN = "scrape-secret-0123456789"
    client.logout()
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret-0123456789").status_code == 200
    client.force_login(admin_user)
    assert client.get("/metrics").status_code == 200


def test_metrics_report_backups_per_server(client, admin_user, alice, make_server, take_backup):
    server = make_server(alice, "metered")
    record = take_backup(server)
    client.force_login(admin_user)
    body = client.get("/metrics").content.decode()
    assert 'mcsite_backup_success_ratio{window="24h"} 1.0' in body
    assert f'mcsite_backup_last_size_bytes{{server_id="{server.pk}",server="metered"}} {record.size_bytes}' in body
    assert "mcsite_backup_disk_free_bytes " in body
    assert 'mcsite_backup_records{status="succeeded"} 1' in body


def test_a_logged_in_non_admin_is_told_it_is_for_admins(client, alice):
    client.force_login(alice)
    assert client.get("/metrics").status_code == 403
