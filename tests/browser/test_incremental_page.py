"""Issue #14's "Done when" in a real headless Chromium: a user switches a
server to incremental on its backup page, takes snapshots (one from the
page, through the queue worker), sees what the repository saves, and
restores only Tuesday's nether from a snapshot — while the overworld
played since stays. Screenshots go to
test-artifacts/screenshots/incremental-*.png."""

import hashlib
import os
import time
from pathlib import Path

import pytest

from tests.backups.conftest import take_backup  # noqa: F401  (fixture)
from tests.browser.test_issue12_pages import TIMEOUT_MS, _page

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def tree(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _wait(row, statuses=("queued", "running")):
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while row.status in statuses and time.monotonic() < deadline:
        time.sleep(0.25)
        row.refresh_from_db()
    return row


def test_a_user_switches_to_incremental_and_gets_tuesdays_nether_back(live_server, browser, screenshots,
                                                                      queue_worker, alice, make_server,
                                                                      take_backup):  # noqa: F811
    from backups.models import BackupRecord, RestoreRequest

    server = make_server(alice, "survival")
    context, page, errors = _page(browser, live_server, alice)
    page.goto(f"{live_server.url}/backup/{server.pk}")
    page.locator("#format input[value=incremental]").check()
    page.locator("#format button[type=submit]").click()
    page.wait_for_selector("text=now incremental snapshots")
    screenshots(page, "incremental-01-switched")

    nether = server.path / "world" / "DIM-1"
    nether_on_tuesday = tree(nether)
    tuesday = take_backup(server)
    assert tuesday.filename.startswith("snapshot_")

    # Wednesday: the nether is griefed, the overworld built on; today's snapshot is taken from the page.
    # (valid region files, so that today's snapshot verifies: the nether gets overworld terrain,
    # one overworld region another's chunks)
    overworld = sorted((server.path / "world" / "region").glob("*.mca"))
    for region in sorted((nether / "region").glob("*.mca")):
        region.write_bytes(overworld[0].read_bytes())
    overworld[0].write_bytes(overworld[1].read_bytes())
    page.goto(f"{live_server.url}/backup/{server.pk}")
    page.locator("form[data-backup-now] button").click()
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while not BackupRecord.objects.filter(server=server).exclude(pk=tuesday.pk).exists():
        assert time.monotonic() < deadline, "Backup Now queued nothing"
        time.sleep(0.1)
    today = _wait(BackupRecord.objects.filter(server=server).exclude(pk=tuesday.pk).get())
    assert today.status == "succeeded" and today.verification_passed, (today.error_code, today.error_message)
    overworld_now = tree(server.path / "world" / "region")

    page.goto(f"{live_server.url}/backup/{server.pk}")
    assert page.locator("[data-snapshots]").inner_text().strip() == "2"
    assert "× — saves" in page.locator("[data-dedup]").inner_text()
    assert page.locator(f"#history tr[data-backup='{today.pk}'] td[data-label=Size]").inner_text().startswith("+")
    screenshots(page, "incremental-02-snapshots")

    page.locator(f"#history tr[data-backup='{tuesday.pk}'] a", has_text="Files").click()
    page.wait_for_selector("#files")
    page.locator("#parts li[data-part='nether'] a", has_text="Restore only the Nether").click()
    page.wait_for_selector("#partial")
    screenshots(page, "incremental-03-preview")
    page.locator("#confirm button[type=submit]").click()
    page.wait_for_url("**/restores/**")
    restore = _wait(RestoreRequest.objects.get(server=server))
    assert restore.status == "succeeded", (restore.error_code, restore.error_message)
    page.reload()
    page.wait_for_selector("#rollback")
    screenshots(page, "incremental-04-restored")

    assert tree(nether) == nether_on_tuesday
    assert tree(server.path / "world" / "region") == overworld_now
    assert restore.safety_backup.filename.startswith("snapshot_")
    assert not errors, errors
    context.close()
