"""Issue #12, "Fix what was found", on the web pages and the backup API
object: why verification failed (history row, backup detail, server card,
restore preview), one size unit (MiB), the verification rate beside the
success rate, chart labels that fit, favicon, an SVG lock, form labels, the
admin's name, Start/Stop with a confirmation on the backup page, and a
skipped verification method that reads as neither passed nor failed."""

import re

import pytest

from backups.api.serializers import BackupOutputSerializer
from backups.models import BackupRecord
from backups.services import restores
from backups.views import line_chart

pytestmark = pytest.mark.django_db

REASON = "level.dat invalid: not valid NBT"


@pytest.fixture
def corrupt_backup(alices_server, take_backup):
    """A backup whose world's level.dat is not NBT: it succeeds, scores
    "Fair · 72" and fails world_validation."""
    (alices_server.path / "world" / "level.dat").write_bytes(b"broken")
    record = take_backup(alices_server)
    assert record.verification_passed is False and record.quality_level == "Fair"
    return record


def _row(body: str, record) -> str:
    match = re.search(rf'<tr data-backup="{record.pk}">(.*?)</tr>', body, re.S)
    assert match, "history row not found"
    return match.group(1)


# --- 1. why verification failed ---------------------------------------------------

def test_the_history_row_says_which_method_failed_and_why(alice_web, alices_server, corrupt_backup):
    row = _row(alice_web.get(f"/backup/{alices_server.pk}").content.decode(), corrupt_backup)
    assert "Failed" in row
    assert "World check" in row and REASON in row


def test_the_server_card_says_why_the_last_backup_failed_verification(alice_web, alices_server, corrupt_backup):
    body = alice_web.get("/servers/").content.decode()
    card = body.split(f'data-server="{alices_server.pk}"', 1)[1].split("</article>", 1)[0]
    assert "Verification failed" in card and "World check" in card and REASON in card


def test_the_admin_backup_page_lists_failed_methods_with_reasons(admin_web, corrupt_backup):
    body = admin_web.get(f"/admin/backups/backuprecord/{corrupt_backup.pk}/change/").content.decode()
    assert 'id="verification-methods"' in body
    assert "World check" in body and REASON in body and "Skipped" in body


def test_the_restore_preview_tells_a_corrupt_world_from_a_missing_one(alice_web, alice, alices_server,
                                                                       corrupt_backup, make_server, take_backup):
    preview = restores.restore_preview(server=alices_server, backup_filename=corrupt_backup.filename)
    assert not any("No Minecraft world" in w for w in preview["warnings"]), preview["warnings"]
    assert any(w.startswith("The world's level.dat could not be read: ") and REASON in w
               for w in preview["warnings"]), preview["warnings"]

    page = alice_web.get(f"/backup/{alices_server.pk}/restore?backup={corrupt_backup.filename}").content.decode()
    assert "level.dat could not be read" in page
    facts = page.split('id="backup-facts"', 1)[1].split("</section>", 1)[0]
    assert "World check" in facts and REASON in facts

    empty = make_server(alice, "no-world", world=False)
    without_world = take_backup(empty)
    warnings = restores.restore_preview(server=empty, backup_filename=without_world.filename)["warnings"]
    assert any("No Minecraft world (level.dat) was found" in w for w in warnings), warnings
    assert not any("could not be read" in w for w in warnings)


# --- 10. a skipped method is neither passed nor failed ------------------------------

def test_the_api_reports_each_method_with_a_status_and_a_skipped_one_as_ok_null(alice_api, alices_server,
                                                                                 corrupt_backup):
    body = alice_api.get(f"/api/backups/{alices_server.pk}/backups/{corrupt_backup.pk}").json()
    methods = (body.get("data") or body)["verification"]["methods"]
    assert methods["checksum"]["status"] == "passed" and methods["checksum"]["ok"] is True
    world = methods["world_validation"]
    assert world["status"] == "failed" and world["ok"] is False and REASON in world["errors"][0]
    skipped = methods["restore_test"]
    assert skipped["status"] == "skipped" and skipped["ok"] is None
    assert "skipped" not in skipped


def test_a_stored_record_with_skipped_true_and_ok_false_reads_as_skipped(corrupt_backup):
    methods = BackupOutputSerializer(corrupt_backup).data["verification"]["methods"]
    assert corrupt_backup.verification["methods"]["restore_test"]["ok"] is False  # as the engine stores it
    assert (methods["restore_test"]["status"], methods["restore_test"]["ok"]) == ("skipped", None)


def test_the_pages_show_a_skipped_method_as_skipped_not_failed(alice_web, alices_server, corrupt_backup):
    row = _row(alice_web.get(f"/backup/{alices_server.pk}").content.decode(), corrupt_backup)
    reasons = row.split('data-testid="verification-reasons"', 1)[1].split("</ul>", 1)[0]
    assert "World check" in reasons and "Restore test" not in reasons  # only failed methods give a reason
    checks = row.split('data-testid="verification-checks"', 1)[1].split("</ul>", 1)[0]
    assert re.search(r'data-method="restore_test" data-status="skipped".*?Restore test: Skipped', checks, re.S)
    assert re.search(r'data-method="checksum" data-status="passed".*?Checksum: Passed', checks, re.S)


# --- 8. one unit, chart labels that fit, the verification rate -----------------------

def test_sizes_are_written_in_mib_everywhere(alice_web, alices_server, take_backup):
    record = take_backup(alices_server)
    expected = f"{record.size_bytes / 2**20:.2f} MiB"
    page = alice_web.get(f"/backup/{alices_server.pk}").content.decode()
    assert expected in _row(page, record)
    usage = page.split('id="usage"', 1)[1].split("</section>", 1)[0]
    assert "MiB" in usage
    for body in (page, alice_web.get("/servers/").content.decode(),
                 alice_web.get(f"/backup/{alices_server.pk}/restore?backup={record.filename}").content.decode()):
        text = re.sub(r"<[^>]+>", " ", body)
        assert not re.search(r"\d\s?(bytes|KB|MB|GB|TB)\b", text), re.findall(r".{30}\d\s?(?:KB|MB|GB|bytes)\b", text)


def test_the_charts_top_label_fits_left_of_the_plot():
    chart = line_chart([("a", 18.3), ("b", 123.4)], unit="MiB")
    labels = [chart["top_label"], chart["mid_label"], "0"]
    assert float(chart["top_label"]) >= 123.4
    # 12 px text: a digit or a point is at most ~7.5 px wide in the fonts Chromium falls back to.
    assert all(len(label) * 7.5 <= chart["left"] - 6 for label in labels), (labels, chart["left"])
    assert chart["unit"] == "MiB"


def test_the_page_shows_the_verification_rate_the_api_reports(alice_web, alices_server, take_backup):
    take_backup(alices_server)
    (alices_server.path / "world" / "level.dat").write_bytes(b"broken")
    take_backup(alices_server)
    take_backup(alices_server)
    page = alice_web.get(f"/backup/{alices_server.pk}").content.decode()
    success = re.search(r'data-testid="success-rate-24h"[^>]*>(.*?)</', page, re.S).group(1)
    verified = re.search(r'data-testid="verification-rate-24h"[^>]*>(.*?)</', page, re.S).group(1)
    assert "100 %" in success and "33 %" in verified


# --- 10. smaller ones -----------------------------------------------------------------

def test_every_page_has_an_inline_svg_favicon(client, alice_web):
    for body in (client.get("/accounts/login/").content.decode(), alice_web.get("/servers/").content.decode()):
        assert re.search(r'<link rel="icon" type="image/svg\+xml" href="data:image/svg\+xml,', body)


def test_the_lock_is_an_inline_svg_not_an_emoji(alice_web, alices_server, take_backup):
    record = take_backup(alices_server)
    BackupRecord.objects.filter(pk=record.pk).update(locked=True)
    row = _row(alice_web.get(f"/backup/{alices_server.pk}").content.decode(), record)
    assert "\U0001f512" not in row and 'class="icon icon-lock"' in row and "<svg" in row


def test_server_form_labels_are_spelled_out(alice_web):
    body = alice_web.get("/servers/new/").content.decode()
    for label in ("Memory (MiB)", "RCON host", "RCON port", "Stop timeout (seconds)"):
        assert label in body, label
    assert "Memory mb" not in body and "Rcon host" not in body


def test_the_admin_is_branded(admin_web):
    body = admin_web.get("/admin/").content.decode()
    assert "mcsite administration" in body
    assert "Django administration" not in body and "Django site admin" not in body


def test_the_backup_page_has_start_and_a_stop_that_asks_first(alice_web, alices_server, monkeypatch):
    calls = []
    from servers.services import ControlOutcome

    def record(action):
        return lambda **kw: calls.append((action, kw["server"].pk)) or ControlOutcome(True, action)

    monkeypatch.setattr("servers.services.server_stop", record("stop"))
    monkeypatch.setattr("servers.services.server_start", record("start"))
    page = alice_web.get(f"/backup/{alices_server.pk}").content.decode()
    assert f'action="/servers/{alices_server.pk}/start/"' in page
    assert f'value="/backup/{alices_server.pk}"' in page  # comes back to this page

    # Stop without the confirmation: a page that asks, nothing stopped.
    asked = alice_web.post(f"/servers/{alices_server.pk}/stop/", {"next": f"/backup/{alices_server.pk}"})
    assert asked.status_code == 200 and not calls
    body = asked.content.decode()
    assert "Stop alice-world?" in body and 'name="confirmed" value="1"' in body
    assert f'value="/backup/{alices_server.pk}"' in body

    done = alice_web.post(f"/servers/{alices_server.pk}/stop/", {"next": f"/backup/{alices_server.pk}",
                                                                  "confirmed": "1"})
    assert done.status_code == 302 and done["Location"] == f"/backup/{alices_server.pk}"
    assert calls == [("stop", alices_server.pk)]

    started = alice_web.post(f"/servers/{alices_server.pk}/start/", {"next": f"/backup/{alices_server.pk}"})
    assert started.status_code == 302 and calls[-1] == ("start", alices_server.pk)


def test_the_stop_confirmation_is_owner_scoped(bob_web, alices_server):
    assert bob_web.post(f"/servers/{alices_server.pk}/stop/").status_code == 404
    assert bob_web.get(f"/servers/{alices_server.pk}/stop/").status_code in (404, 405)
