"""Issue #12 item 5 in a real Chromium: a restore page opened while the
restore is queued does not keep saying "Queued" while its bar moves. The
worker's writes are made here, on the rows, exactly as a worker makes them;
the page's own script polls and keeps the badge, the bar and the words in
step, then reloads on the result."""

import os

import pytest
from django.utils import timezone

from tests.backups.conftest import take_backup  # noqa: F401  (fixture)

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

MIB = 1024 * 1024


def _login(browser, live_server, user):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(30_000)
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", f"pw-{user.username}")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/servers/")
    return context, page, errors


def test_the_restore_badge_follows_the_status_while_the_bar_moves(live_server, browser, screenshots, alice,
                                                                  make_server, take_backup):  # noqa: F811
    from backups.models import RestoreRequest
    from backups.services import restores

    server = make_server(alice, "survival")
    backup = take_backup(server)
    restore = restores.restore_request(server=server, backup_filename=backup.filename, actor=alice, enqueue=False)
    context, page, errors = _login(browser, live_server, alice)
    page.goto(f"{live_server.url}/backup/{server.pk}/restores/{restore.pk}")
    badge = page.locator("[data-status-badge]")
    assert badge.inner_text() == "Queued"

    RestoreRequest.objects.filter(pk=restore.pk).update(
        status="running", started_at=timezone.now(), phase="extracting", progress_bytes=3 * MIB,
        progress_total=12 * MIB, steps=[{"step": "stopped"}, {"step": "extracting"}])
    page.wait_for_function("document.querySelector('[data-status-badge]').textContent === 'Running'")
    assert "state-running" in badge.get_attribute("class") and "state-queued" not in badge.get_attribute("class")
    message = page.inner_text("[data-progress-message]")
    assert message == "Extracting files · 3.00 of 12.0 MiB", message
    screenshots(page, "issue12-05-restore-badge-running")

    RestoreRequest.objects.filter(pk=restore.pk).update(status="succeeded", phase="done", file_count=42,
                                                        finished_at=timezone.now())
    page.wait_for_function("document.querySelector('[data-status-badge]').textContent === 'Succeeded'")
    page.wait_for_load_state()
    assert "Restore finished: 42 files restored" in page.inner_text("#restore-progress")
    context.close()
    assert not errors, errors
