"""The seed's Quick Start, in a real headless Chromium against a live server:
log in, create a server with "Enable Automated Backups", see its schedule
and next run, "Backup Now" and watch the bar reach the end, see the new
backup's quality badge, restore it through preview and confirmation, and as
another user get a 404 for the page. Runs are executed by the QueueWorker
thread (tests/browser/conftest.py) calling backup_run / restore_run — the
real engine on real files — in place of the Celery worker of `make run`.
Screenshots go to test-artifacts/screenshots/."""

import os
import re

import pytest

# Playwright's sync API runs an event loop in this thread; the ORM calls the
# test makes beside it are ordinary synchronous ones.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

TIMEOUT_MS = 30_000


def _log_in(page, base: str, username: str, password: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


def test_quick_start_in_a_real_browser(live_server, queue_worker, browser, screenshots, alice, bob,
                                       make_server_dir):
    from backups.models import BackupRecord, BackupSchedule, RestoreRequest
    from servers.models import Server

    make_server_dir("survival")
    base = live_server.url
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    js_errors = []
    page.on("pageerror", lambda error: js_errors.append(str(error)))

    # Log in.
    page.goto(f"{base}/servers/")
    assert "/accounts/login/" in page.url
    screenshots(page, "01-login")
    _log_in(page, base, "alice", "pw-alice")
    page.wait_for_url(f"{base}/servers/")

    # Create a server with "Enable Automated Backups".
    page.click("text=New server")
    page.fill("#id_name", "survival")
    page.fill("#id_directory", "survival")
    assert page.is_checked("#id_backup-enable_automated_backups")
    page.select_option("#id_backup-schedule_type", "daily")
    page.fill("#id_backup-schedule_time", "02:00")
    page.fill("#id_backup-retention_days", "30")
    screenshots(page, "02-server-create")
    page.click("text=Create server")
    page.wait_for_url(f"{base}/servers/")
    server = Server.objects.get(name="survival", owner=alice)
    assert BackupSchedule.objects.filter(server=server, enabled=True).exists()

    # The schedule and its next run are on the list.
    card = page.locator(f"[data-server='{server.pk}']")
    assert card.locator("[data-testid=schedule-summary]").inner_text().strip() == "Daily at 02:00 UTC"
    assert re.search(r"\d{4}, 02:00 UTC", card.locator("[data-testid=next-run]").inner_text())
    screenshots(page, "03-server-list")

    # Backup Now, and the bar reaches the end.
    card.locator("text=Manage Backups").click()
    page.wait_for_url(re.compile(rf"/backup/{server.pk}$"))
    assert "Next run:" in page.locator("#schedule").inner_text()
    screenshots(page, "04-backup-page")
    page.click("button:has-text('Backup Now')")
    page.wait_for_selector("#progress[data-state=succeeded]")
    assert page.inner_text("[data-progress-percent]").strip() == "100 %"
    assert "Backup finished" in page.inner_text("[data-progress-message]")
    record = BackupRecord.objects.get(server=server, status="succeeded")
    assert ("backup", record.pk, "succeeded") in queue_worker.ran

    # The new backup is in the history (swapped in without a reload) with its badge.
    row = page.locator(f"#history tr[data-backup='{record.pk}']")
    row.wait_for()
    badge = row.locator(f".badge.quality-{record.quality_level.lower()}")
    assert record.quality_level in badge.inner_text()
    assert record.sha256[:12] in row.inner_text()
    assert page.locator("#charts svg polyline").count() == 2
    page.wait_for_timeout(500)  # let the bar's CSS transition finish before the picture
    screenshots(page, "05-backup-done")

    # The page on a phone: one column, each backup a block with its actions under its name.
    phone = context.new_page()
    phone.set_viewport_size({"width": 390, "height": 844})
    phone.goto(f"{base}/backup/{server.pk}")
    assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    screenshots(phone, "06-backup-page-phone")
    phone.close()

    # Restore: preview with the real contents and warnings, then confirm.
    row.locator("text=Restore…").click()
    page.wait_for_url(re.compile(r"/restore\?backup="))
    assert page.inner_text("[data-testid=file-count]").strip() == str(record.file_count)
    assert page.inner_text("[data-testid=minecraft-version]").strip() == "1.14.4"
    assert "will be replaced" in page.inner_text(".warnings")
    screenshots(page, "07-restore-preview")
    page.click("button:has-text('Restore this backup')")
    restore = RestoreRequest.objects.get(server=server)
    page.wait_for_url(re.compile(rf"/restores/{restore.pk}$"))
    page.wait_for_selector("#restore-progress[data-state=succeeded]")
    # The badge follows the run at once; the page then reloads when the run
    # ends, to offer what comes next (rollback).
    page.wait_for_selector("[data-testid=restore-status]:has-text('Succeeded')")
    page.wait_for_selector("button:has-text('Roll back')")
    assert "Restore finished" in page.inner_text("#restore-progress")
    assert page.locator("button:has-text('Roll back')").is_visible()
    screenshots(page, "08-restore-done")
    restore.refresh_from_db()
    assert restore.status == "succeeded" and restore.safety_backup is not None

    # Another user: the same page is a 404.
    page.click("button:has-text('Log out')")
    page.wait_for_url(re.compile(r"/accounts/login/"))
    _log_in(page, base, "bob", "pw-bob")
    page.wait_for_url(f"{base}/servers/")
    assert "survival" not in page.inner_text("main")
    response = page.goto(f"{base}/backup/{server.pk}")
    assert response.status == 404
    assert "Not found" in page.inner_text("main")
    screenshots(page, "09-other-user-404")

    context.close()
    assert not js_errors, js_errors
