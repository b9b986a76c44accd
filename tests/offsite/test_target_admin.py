"""Storage targets as admins manage them (issue #13): the admin form per
kind (secrets written only, never in the HTML), the "Test this target"
button saying what failed, the API's permission matrix and write-only
secrets, and the site default from MCSITE_OFFSITE_DEFAULT."""

import pytest
from django.core.management import call_command
from django.test import Client

from backups.models import OffsiteCopy, StorageTarget
from backups.services import targets as target_service
from tests.offsite.conftest import S3_KEY_ID, S3_SECRET
from tests.offsite.test_copies import local_target, run_copy, take_backup

pytestmark = pytest.mark.django_db

SECRET = "very-secret-s3-key-4711"


@pytest.fixture
def admin_browser(admin_user):
    browser = Client()
    browser.force_login(admin_user)
    return browser


def test_adding_an_s3_target_in_the_admin_seals_the_secret_and_never_shows_it(admin_browser, moto_s3, s3_bucket):
    response = admin_browser.post("/admin/backups/storagetarget/add/", {
        "name": "offsite-s3", "kind": "s3", "enabled": "on", "is_default": "on", "extra_retention_days": 0,
        "delete_delay_days": 0, "object_lock_days": 0, "s3_endpoint_url": moto_s3.url, "s3_region": "us-east-1",
        "s3_bucket": s3_bucket, "s3_prefix": "mcsite/", "s3_addressing_style": "path",
        "s3_access_key_id": S3_KEY_ID, "s3_secret_access_key": SECRET})
    assert response.status_code == 302, response.content.decode()[:3000]
    target = StorageTarget.objects.get(name="offsite-s3")
    assert target.settings["bucket"] == s3_bucket and target.is_default
    assert target.secrets == {"access_key_id": S3_KEY_ID, "secret_access_key": SECRET}
    assert SECRET not in target.secrets_sealed and SECRET not in str(target.settings)

    page = admin_browser.get(f"/admin/backups/storagetarget/{target.pk}/change/").content.decode()
    assert SECRET not in page and S3_KEY_ID not in page
    assert s3_bucket in page and "access_key_id, secret_access_key" in page  # which are set, not what
    assert 'name="s3_bucket"' in page and 'name="sftp_host"' not in page and 'name="local_path"' not in page

    # Saving again with the secret fields empty keeps them.
    response = admin_browser.post(f"/admin/backups/storagetarget/{target.pk}/change/", {
        "name": "offsite-s3", "enabled": "on", "extra_retention_days": 3, "delete_delay_days": 0,
        "object_lock_days": 0, "s3_endpoint_url": moto_s3.url, "s3_region": "us-east-1", "s3_bucket": s3_bucket,
        "s3_prefix": "mcsite/", "s3_addressing_style": "path", "s3_access_key_id": "", "s3_secret_access_key": ""})
    assert response.status_code == 302, response.content.decode()[:3000]
    target.refresh_from_db()
    assert target.secrets["secret_access_key"] == SECRET and target.extra_retention_days == 3
    assert not target.is_default

    response = admin_browser.post(f"/admin/backups/storagetarget/{target.pk}/test/", follow=True)
    assert "works" in response.content.decode()
    target.refresh_from_db()
    assert target.last_test_ok is True


def test_an_sftp_target_needs_a_pinned_host_key(admin_browser):
    response = admin_browser.post("/admin/backups/storagetarget/add/", {
        "name": "offsite-sftp", "kind": "sftp", "enabled": "on", "extra_retention_days": 0,
        "delete_delay_days": 0, "object_lock_days": 0, "sftp_host": "127.0.0.1", "sftp_port": 22,
        "sftp_username": "mc", "sftp_password": "hunter2-password", "sftp_base_path": "/backups"})
    assert response.status_code == 200
    page = response.content.decode()
    assert "needs &#x27;host_key&#x27;" in page or "needs 'host_key'" in page
    assert "hunter2-password" not in page
    assert not StorageTarget.objects.exists()


def test_the_test_button_says_exactly_what_failed(admin_browser, tmp_path):
    target = local_target(tmp_path)
    (tmp_path / "second-disk").rmdir()  # the share is gone
    response = admin_browser.post(f"/admin/backups/storagetarget/{target.pk}/test/", follow=True)
    page = response.content.decode()
    assert "failed its test" in page and "Step &#x27;connect&#x27; failed" in page
    target.refresh_from_db()
    assert target.last_test_ok is False and "connect" in target.last_test_error

    (tmp_path / "second-disk").mkdir()
    response = admin_browser.post("/admin/backups/storagetarget/", {
        "action": "test_selected", "_selected_action": [target.pk]}, follow=True)
    assert "works: OK: connect, write, read, compare, delete, confirm-delete" in response.content.decode()


def test_copies_show_read_only_in_the_admin_and_inline_on_the_backup(admin_browser, tmp_path, alice, make_server):
    target = local_target(tmp_path)
    record = take_backup(make_server(alice))
    copy = run_copy(OffsiteCopy.objects.get(backup=record))
    page = admin_browser.get(f"/admin/backups/backuprecord/{record.pk}/change/").content.decode()
    assert "off-site copies" in page.lower() and "verified" in page
    listing = admin_browser.get(f"/admin/backups/offsitecopy/?status=verified&target__id__exact={target.pk}")
    assert listing.status_code == 200 and str(copy.backup) in listing.content.decode()


# --- the API ---------------------------------------------------------------------------

def test_only_admins_reach_the_storage_target_api(anon_api, alice_api, admin_api, tmp_path):
    target = local_target(tmp_path)
    for api, code in ((anon_api, 401), (alice_api, 403)):
        assert api.get("/api/storage-targets/").status_code == code
        assert api.post("/api/storage-targets/", {"name": "x", "kind": "local", "settings": {"path": "/tmp"}},
                        format="json").status_code == code
        assert api.get(f"/api/storage-targets/{target.pk}/").status_code == code
        assert api.patch(f"/api/storage-targets/{target.pk}/", {"enabled": False}, format="json").status_code == code
        assert api.post(f"/api/storage-targets/{target.pk}/test/").status_code == code
        assert api.delete(f"/api/storage-targets/{target.pk}/").status_code == code
    target.refresh_from_db()
    assert target.enabled and StorageTarget.objects.count() == 1
    assert admin_api.get("/api/storage-targets/").json()["data"][0]["name"] == target.name
    assert admin_api.get("/api/storage-targets/999999/").json()["code"] == "NOT_FOUND"


def test_the_api_adds_tests_changes_and_deletes_a_target_with_write_only_secrets(admin_api, moto_s3, s3_bucket):
    body = {"name": "b2", "kind": "s3", "settings": {"bucket": s3_bucket, "endpoint_url": moto_s3.url,
                                                     "addressing_style": "path", "prefix": "m/"},
            "secrets": {"access_key_id": S3_KEY_ID, "secret_access_key": SECRET}, "is_default": True}
    response = admin_api.post("/api/storage-targets/", body, format="json")
    assert response.status_code == 201, response.content
    assert SECRET not in response.content.decode()
    data = response.json()["data"]
    assert data["secrets_set"] == ["access_key_id", "secret_access_key"] and "secrets" not in data

    tested = admin_api.post(f"/api/storage-targets/{data['id']}/test/").json()["data"]
    assert tested["ok"] is True and tested["target"]["last_test_ok"] is True

    bad = admin_api.patch(f"/api/storage-targets/{data['id']}/", {"settings": {"bucket": s3_bucket,
                                                                               "endpoint": "typo"}}, format="json")
    assert bad.status_code == 400 and bad.json()["code"] == "VALIDATION_ERROR"
    assert "endpoint" in bad.json()["error"]
    assert admin_api.patch(f"/api/storage-targets/{data['id']}/", {"colour": "red"}, format="json").status_code == 400
    assert StorageTarget.objects.get().settings["endpoint_url"] == moto_s3.url  # nothing changed

    response = admin_api.patch(f"/api/storage-targets/{data['id']}/",
                               {"secrets": {"secret_access_key": "wrong"}}, format="json")
    assert response.status_code == 200
    assert StorageTarget.objects.get().secrets == {"access_key_id": S3_KEY_ID, "secret_access_key": "wrong"}
    assert "wrong" not in response.content.decode()
    assert admin_api.delete(f"/api/storage-targets/{data['id']}/").status_code == 200
    assert not StorageTarget.objects.exists()


def test_a_target_holding_copies_is_not_deleted(admin_api, tmp_path, alice, make_server):
    target = local_target(tmp_path)
    record = take_backup(make_server(alice))
    run_copy(OffsiteCopy.objects.get(backup=record))
    response = admin_api.delete(f"/api/storage-targets/{target.pk}/")
    assert response.status_code == 400 and "holds 1 copies" in response.json()["error"]
    assert StorageTarget.objects.filter(pk=target.pk).exists()


# --- the site default from the environment ---------------------------------------------------

def test_the_default_target_comes_from_the_environment(monkeypatch, tmp_path, moto_s3, s3_bucket):
    folder = tmp_path / "backup2"
    folder.mkdir()
    monkeypatch.setenv("MCSITE_OFFSITE_DEFAULT", f"file://{folder}")
    call_command("register_system_tasks")
    from django_celery_beat.models import PeriodicTask
    assert set(PeriodicTask.objects.filter(name__contains="offsite").values_list("task", flat=True)) == {
        "backups.tasks.sweep_offsite_copies", "backups.tasks.recheck_offsite_copies"}
    target = StorageTarget.objects.get(name="default")
    assert (target.kind, target.settings, target.is_default) == ("local", {"path": str(folder)}, True)

    kind, settings, secrets = target_service.parse_default_url(
        f"s3://{s3_bucket}/mcsite/?endpoint_url={moto_s3.url}&region=eu-central-1",
        {"MCSITE_OFFSITE_S3_ACCESS_KEY_ID": S3_KEY_ID, "MCSITE_OFFSITE_S3_SECRET_ACCESS_KEY": S3_SECRET})
    assert (kind, settings["bucket"], settings["prefix"], settings["endpoint_url"], settings["region"]) == (
        "s3", s3_bucket, "mcsite/", moto_s3.url, "eu-central-1")
    assert secrets == {"access_key_id": S3_KEY_ID, "secret_access_key": S3_SECRET}
    kind, settings, secrets = target_service.parse_default_url(
        "sftp://mc@backup.example:2222/srv/mc?host_key=ssh-ed25519%20AAAAC3Nz", {"MCSITE_OFFSITE_SFTP_PASSWORD": "pw"})
    assert (kind, settings["host"], settings["port"], settings["username"], settings["base_path"],
            settings["host_key"], secrets) == ("sftp", "backup.example", 2222, "mc", "/srv/mc",
                                               "ssh-ed25519 AAAAC3Nz", {"password": "pw"})
