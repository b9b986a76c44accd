"""Issue #13's "Done when", in a real headless Chromium against moto's S3
server over HTTP: an admin adds an S3 target in the admin (only the S3
fields show once "S3" is chosen) and tests it; the owner's "Backup Now"
backup is copied and shows "verified" on her page; the keys are exported.
Then the backup root, the server folder and the database are lost. As
docs/operations.md ("Disaster recovery") says: the same target is added
again, the server created again on its folder, `import_keys` and
`import_backups` run, and the owner restores her (encrypted) world byte for
byte from the page. The queue worker (tests/browser/conftest.py) runs the
backup, the copy and the restore through the services.
Screenshots go to test-artifacts/screenshots/offsite-*.png."""

import hashlib
import io
import os
import re
import shutil
from pathlib import Path

import pytest
from django.core.management import call_command

from tests.browser.test_issue12_pages import TIMEOUT_MS, _page
from tests.offsite.conftest import S3_KEY_ID, S3_SECRET, moto_s3, s3_bucket  # noqa: F401 (fixtures)

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

# On PostgreSQL, as in production and CI: the queue worker, the live server and the test each have
# a connection of their own (and the flush below empties the real database).
pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def tree(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _admin_adds_the_s3_target(browser, live_server, admin, moto, bucket, screenshots, shot: str) -> None:
    context, page, errors = _page(browser, live_server, admin)
    page.goto(f"{live_server.url}/admin/backups/storagetarget/add/")
    page.select_option("#id_kind", "s3")
    assert page.locator("#id_s3_bucket").is_visible()
    assert not page.locator("#id_sftp_host").is_visible() and not page.locator("#id_local_path").is_visible()
    page.fill("#id_name", "offsite-s3")
    page.fill("#id_s3_endpoint_url", moto.url)
    page.fill("#id_s3_region", "us-east-1")
    page.fill("#id_s3_bucket", bucket)
    page.fill("#id_s3_prefix", "mcsite/")
    page.select_option("#id_s3_addressing_style", "path")
    page.fill("#id_s3_access_key_id", S3_KEY_ID)
    page.fill("#id_s3_secret_access_key", S3_SECRET)
    page.check("#id_is_default")  # every server's backups are copied there
    screenshots(page, f"offsite-{shot}-add-target")
    page.click("input[name=_save]")
    page.wait_for_url(re.compile(r"/admin/backups/storagetarget/$"))
    page.click("text=offsite-s3")
    page.click("[data-testid=test-target]")
    message = page.locator(".messagelist:not(.key-export-banner)").inner_text()
    assert "works" in message and "failed" not in message, message
    assert S3_SECRET not in page.content()
    assert not errors, errors
    context.close()


def _wait(page, predicate, what: str) -> None:
    for _ in range(int(TIMEOUT_MS / 250)):
        if predicate():
            return
        page.wait_for_timeout(250)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_new_user_gets_their_world_back_from_s3_after_losing_disk_and_database(
        live_server, browser, screenshots, queue_worker, admin_user, alice, make_server, moto_s3, s3_bucket,  # noqa: F811
        tmp_path, settings):
    from django.contrib.auth.models import User

    from backups import engine
    from backups.models import BackupRecord, OffsiteCopy, RestoreRequest
    from backups.services import config as config_service
    from servers.models import Server
    from tests.conftest import _user

    config_service.settings_encryption_set(enabled=True, key=engine.generate_key())
    server = make_server(alice, "survival")
    world_at_backup = tree(server.path)

    # -- 1. The admin adds the S3 target in the admin and tests it.
    _admin_adds_the_s3_target(browser, live_server, admin_user, moto_s3, s3_bucket, screenshots, "1")

    # -- 2. The owner's backup is copied there and verified; she sees it on her page.
    context, page, errors = _page(browser, live_server, alice)
    page.goto(f"{live_server.url}/backup/{server.pk}")
    page.click("button:has-text('Backup Now')")
    page.wait_for_selector("#progress[data-state=succeeded]")
    record = BackupRecord.objects.get(server=server, status="succeeded")
    assert record.encrypted
    _wait(page, lambda: OffsiteCopy.objects.filter(backup=record, status="verified").exists(), "the verified copy")
    page.reload()
    copies = page.locator(f"#history tr[data-backup='{record.pk}'] [data-testid=offsite-copies]")
    assert "offsite-s3: Verified" in copies.inner_text()
    screenshots(page, "offsite-2-copy-verified")
    context.close()
    keys_file = tmp_path / "usb" / "mcsite-keys.json"
    keys_file.parent.mkdir()
    call_command("export_keys", "--output", str(keys_file), stdout=io.StringIO())

    # -- 3. The machine is lost: the backup root, the server folder and the database.
    shutil.rmtree(settings.MCSITE_BACKUP_ROOT)
    settings.MCSITE_BACKUP_ROOT.mkdir()
    shutil.rmtree(server.path)
    call_command("flush", "--no-input", stdout=io.StringIO())
    assert not User.objects.exists() and not BackupRecord.objects.exists()

    # -- 4. Recovery as docs/operations.md says: users, the same target, the server on its folder, keys, records.
    admin = _user("root", superuser=True)
    alice = _user("alice")
    _admin_adds_the_s3_target(browser, live_server, admin, moto_s3, s3_bucket, screenshots, "4")
    server.path.mkdir()
    server = Server.objects.create(owner=alice, name="survival", directory="survival")
    out = io.StringIO()
    call_command("import_keys", str(keys_file), stdout=out)
    call_command("import_backups", "--target", "offsite-s3", stdout=out)
    assert "imported (backup id" in out.getvalue(), out.getvalue()
    imported = BackupRecord.objects.get(server=server)
    assert (imported.filename, imported.sha256, imported.encrypted) == (record.filename, record.sha256, True)

    # -- 5. She restores it from her page: read from the copy, the world byte for byte.
    context, page, errors = _page(browser, live_server, alice)
    page.goto(f"{live_server.url}/backup/{server.pk}")
    row = page.locator(f"#history tr[data-backup='{imported.pk}']")
    assert "offsite-s3: Verified" in row.inner_text()
    row.locator("text=Restore…").click()
    page.wait_for_url(re.compile(r"/restore\?backup="))
    assert "on target offsite-s3" in page.locator(".warnings").inner_text()
    screenshots(page, "offsite-5-restore-preview")
    page.click("button:has-text('Restore this backup')")
    restore = RestoreRequest.objects.get(server=server)
    page.wait_for_url(re.compile(rf"/restores/{restore.pk}$"))
    page.wait_for_selector("#restore-progress[data-state=succeeded]")
    screenshots(page, "offsite-5-restored")
    restore.refresh_from_db()
    assert restore.status == "succeeded", (restore.error_code, restore.error_message)
    restored = {path: digest for path, digest in tree(server.path).items() if not path.startswith("logs/")}
    assert restored == world_at_backup
    assert not errors, errors
    context.close()
