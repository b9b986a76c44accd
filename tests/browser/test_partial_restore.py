"""Issue #12's "Done when" in a real headless Chromium: a user opens a
backup's files, chooses the Nether, restores only it, and gets their nether
back while logs/ and the overworld played since stay as they were. The
queue worker runs the restore through the services, on the real files.
Screenshots go to test-artifacts/screenshots/partial-restore-*.png."""

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


def test_a_user_restores_only_their_nether_and_keeps_their_logs(live_server, browser, screenshots, queue_worker,
                                                                 alice, make_server, take_backup):  # noqa: F811
    from backups.models import RestoreRequest

    server = make_server(alice, "survival")
    nether = server.path / "world" / "DIM-1"
    if not nether.is_dir():  # the fixture world has one; build it from the overworld's regions otherwise
        (nether / "region").mkdir(parents=True)
        for region in sorted((server.path / "world" / "region").glob("*.mca"))[:3]:
            (nether / "region" / region.name).write_bytes(region.read_bytes())
    nether_at_backup = tree(nether)
    record = take_backup(server)

    # After the backup: the nether is griefed, the overworld played on, the server logged.
    for region in sorted((nether / "region").glob("*.mca")):
        region.write_bytes(b"griefed")
    overworld = sorted((server.path / "world" / "region").glob("*.mca"))[0]
    overworld.write_bytes(b"built since the backup")
    (server.path / "logs").mkdir(exist_ok=True)
    (server.path / "logs" / "latest.log").write_text("[20:15:00] Alex joined the game\n")
    overworld_now = tree(server.path / "world" / "region")

    context, page, errors = _page(browser, live_server, alice)
    page.goto(f"{live_server.url}/backup/{server.pk}")
    page.locator(f"#history tr[data-backup='{record.pk}'] a", has_text="Files").click()
    page.wait_for_selector("#files")
    assert page.locator("#files tr[data-path='world']").is_visible()
    screenshots(page, "partial-restore-01-files")

    page.locator("#parts li[data-part='nether'] a", has_text="Restore only the Nether").click()
    page.wait_for_selector("#partial")
    assert "world/DIM-1" in page.locator("[data-testid=restored-paths]").inner_text()
    screenshots(page, "partial-restore-02-preview")
    page.locator("#confirm button[type=submit]").click()
    page.wait_for_url("**/restores/**")
    assert "Only world/DIM-1 is restored" in page.locator("[data-testid=restore-paths]").inner_text()

    deadline = time.monotonic() + TIMEOUT_MS / 1000
    restore = RestoreRequest.objects.get(server=server)
    while restore.status in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.25)
        restore.refresh_from_db()
    assert restore.status == "succeeded", (restore.error_code, restore.error_message)
    page.reload()
    page.wait_for_selector("#rollback")  # the partial restore can be undone like any other
    screenshots(page, "partial-restore-03-done")

    assert tree(nether) == nether_at_backup  # the nether came back
    assert (server.path / "logs" / "latest.log").read_text() == "[20:15:00] Alex joined the game\n"
    assert tree(server.path / "world" / "region") == overworld_now  # the overworld played since stays
    assert restore.safety_backup is not None
    assert not errors, errors
    context.close()
