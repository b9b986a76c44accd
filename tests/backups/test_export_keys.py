"""Issue #13, keys survive the host: `manage.py export_keys` and the admin's
"Export encryption keys" button write every key and password (rotated ones
too) in clear, the standalone command opens old and new backups with that file
alone, and the pages warn superusers until an export is newer than the last
change of the keys."""

import io
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from backups import engine, storage
from backups.models import BackupSettings
from backups.scheduler import backup_scheduler
from mcsite.models import AuditEvent

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery staple"
BANNER = "Export the backup encryption keys."
EXPORT_URL = "admin:backups_backupsettings_export_keys"


def _standalone(*args, cwd) -> subprocess.CompletedProcess:
    """`python -m backups.engine ...` as after a disaster: no Django settings, no database."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DJANGO", "MCSITE", "DATABASE", "PYTEST"))}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", "backups.engine", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def _web(user, **kwargs) -> Client:
    client = Client(**kwargs)
    client.force_login(user)
    return client


@pytest.fixture
def rotated(alice, make_server, take_backup):
    """A site that encrypted with a password, then rotated to a key: one backup each."""
    backup_scheduler.configure_encryption(True, password=PASSWORD, iterations=100_000)
    server = make_server(alice)
    old = take_backup(server)
    key = engine.generate_key()
    backup_scheduler.configure_encryption(True, key=key)
    new = take_backup(server)
    assert old.encrypted and new.encrypted and old.key_fingerprint != new.key_fingerprint
    return {"old": old, "new": new, "key": key}


def test_the_command_exports_every_key_and_they_open_old_and_new_backups(rotated, tmp_path):
    out = tmp_path / "keys.json"
    err = io.StringIO()
    call_command("export_keys", "--output", str(out), stderr=err)

    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    doc = json.loads(out.read_text())
    assert doc["format"] == "mcsite-keys" and doc["version"] == 1 and "IN CLEAR" in doc["warning"]
    assert doc["encryption_enabled"] is True and doc["site"]["name"]
    current, older = doc["keys"]
    assert (current["current"], current["mode"], current["fingerprint"], current["secret"]) == (
        True, "key", rotated["new"].key_fingerprint, rotated["key"])
    assert (older["current"], older["mode"], older["fingerprint"], older["secret"], older["iterations"]) == (
        False, "password", rotated["old"].key_fingerprint, PASSWORD, 100_000)
    assert older["retired_at"]
    assert "IN CLEAR" in err.getvalue() and str(out) in err.getvalue()

    row = BackupSettings.load()
    assert row.keys_exported_at is not None and row.keys_exported_at.isoformat() == doc["created_at"]
    event = AuditEvent.objects.get(action="settings.keys_export")
    assert event.source == "command" and event.detail["fingerprints"] == [current["fingerprint"],
                                                                          older["fingerprint"]]
    assert PASSWORD not in json.dumps(event.detail) and rotated["key"] not in json.dumps(event.detail)

    # After the disaster: only the backup files and the export.
    for record in (rotated["old"], rotated["new"]):
        path = storage.absolute_path(record.storage_path)
        done = _standalone("verify", path, "--keys-file", out, "--sha256", record.sha256, cwd=tmp_path)
        assert done.returncode == 0, done.stderr + done.stdout
        assert done.stdout.splitlines()[-1] == "result   PASSED"
        extracted = _standalone("extract", path, "--keys-file", out, "--to", tmp_path / f"srv-{record.pk}",
                                cwd=tmp_path)
        assert extracted.returncode == 0, extracted.stderr
        assert (tmp_path / f"srv-{record.pk}" / "world" / "level.dat").is_file()
    old_file = storage.absolute_path(rotated["old"].storage_path)
    without = _standalone("verify", old_file, "--key", rotated["key"], cwd=tmp_path)
    assert without.returncode == 3 and "DECRYPTION_FAILED" in without.stderr


def test_the_command_never_overwrites_a_file(rotated, tmp_path):
    out = tmp_path / "keys.json"
    out.write_text("an older export")
    with pytest.raises(CommandError, match="exists already") as info:
        call_command("export_keys", "--output", str(out))
    assert info.value.returncode == 1
    assert out.read_text() == "an older export"
    assert BackupSettings.load().keys_exported_at is None


def test_the_command_writes_to_standard_output_with_a_dash(rotated):
    buffer = io.StringIO()
    call_command("export_keys", "--output", "-", stdout=buffer)
    doc = json.loads(buffer.getvalue())
    assert [k["fingerprint"] for k in doc["keys"]] == [rotated["new"].key_fingerprint,
                                                       rotated["old"].key_fingerprint]
    assert BackupSettings.load().keys_exported_at is not None
    assert AuditEvent.objects.get(action="settings.keys_export").detail["destination"] == "stdout"


def test_the_command_by_default_writes_a_new_dated_file_in_the_current_folder(rotated, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    call_command("export_keys", stderr=io.StringIO())
    written = [p for p in tmp_path.iterdir() if re.fullmatch(r"mcsite-keys-\d{8}_\d{6}\.json", p.name)]
    assert len(written) == 1 and stat.S_IMODE(written[0].stat().st_mode) == 0o600


def test_nothing_to_export_before_encryption_is_configured(tmp_path):
    with pytest.raises(CommandError, match="never been configured"):
        call_command("export_keys", "--output", str(tmp_path / "keys.json"))
    assert not (tmp_path / "keys.json").exists()


def test_a_key_given_url_safe_is_exported_in_the_standard_alphabet():
    key = engine.generate_key()
    while "+" not in key and "/" not in key:
        key = engine.generate_key()
    backup_scheduler.configure_encryption(True, key=key.replace("+", "-").replace("/", "_"))
    buffer = io.StringIO()
    call_command("export_keys", "--output", "-", stdout=buffer)
    assert json.loads(buffer.getvalue())["keys"][0]["secret"] == key


def test_the_documented_example_has_the_exported_fields(rotated):
    buffer = io.StringIO()
    call_command("export_keys", "--output", "-", stdout=buffer)
    doc = json.loads(buffer.getvalue())
    text = (ROOT / "docs" / "format.md").read_text()
    example = json.loads(re.search(r"## The keys export.*?```json\n(.*?)```", text, flags=re.S).group(1))
    assert set(example) == set(doc)
    assert set(example["site"]) == set(doc["site"])
    assert {frozenset(k) for k in example["keys"]} == {frozenset(k) for k in doc["keys"]}


# --- the banner --------------------------------------------------------------------------------------

def test_the_banner_warns_superusers_until_an_export_and_again_after_a_rotation(admin_user, alice):
    admin, owner = _web(admin_user), _web(alice)
    pages = [reverse("server-list"), reverse("admin:index")]

    def shown(client) -> list:
        return [BANNER in client.get(url).content.decode() for url in pages]

    assert shown(admin) == [False, False]  # no encryption: nothing to lose
    backup_scheduler.configure_encryption(True, password=PASSWORD, iterations=100_000)
    assert BackupSettings.load().keys_changed_at is not None
    assert shown(admin) == [True, True]
    assert shown(owner) == [False, False]  # not for other users, staff or not

    call_command("export_keys", "--output", "-", stdout=io.StringIO())
    assert shown(admin) == [False, False]
    backup_scheduler.configure_encryption(False)
    backup_scheduler.configure_encryption(True)  # back on with the same secret: nothing new to export
    assert shown(admin) == [False, False]

    backup_scheduler.configure_encryption(True, key=engine.generate_key())  # rotated
    assert shown(admin) == [True, True]
    backup_scheduler.configure_encryption(False)
    assert shown(admin) == [False, False]  # encryption off: no warning


# --- the admin button ----------------------------------------------------------------------------------

def test_the_settings_page_has_the_button(admin_user, rotated):
    page = _web(admin_user).get(reverse("admin:backups_backupsettings_change", args=[1])).content.decode()
    assert "Export encryption keys" in page and reverse(EXPORT_URL) in page
    assert "an export is needed" in page


def test_the_admin_export_is_a_post_only_superuser_only_uncached_audited_download(admin_user, alice, rotated):
    url = reverse(EXPORT_URL)
    admin = _web(admin_user)
    assert admin.get(url).status_code == 405
    assert _web(alice).post(url).status_code in (302, 403)  # staff but not superuser: never the keys
    assert Client().post(url).status_code == 302  # anonymous: to the login page
    assert _web(admin_user, enforce_csrf_checks=True).post(url).status_code == 403  # no CSRF token
    assert BackupSettings.load().keys_exported_at is None
    assert not AuditEvent.objects.filter(action="settings.keys_export").exists()

    response = admin.post(url)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert re.fullmatch(r'attachment; filename="mcsite-keys-\d{8}_\d{6}\.json"',
                        response["Content-Disposition"])
    assert "no-store" in response["Cache-Control"] and "private" in response["Cache-Control"]
    doc = json.loads(response.content)
    assert [k["secret"] for k in doc["keys"]] == [rotated["key"], PASSWORD]
    event = AuditEvent.objects.get(action="settings.keys_export")
    assert (event.actor, event.source, event.detail["destination"]) == (admin_user, "admin", "download")
    assert BackupSettings.load().keys_exported_at is not None
    assert BANNER not in admin.get(reverse("server-list")).content.decode()


def test_the_admin_export_without_any_key_says_so(admin_user):
    response = _web(admin_user).post(reverse(EXPORT_URL), follow=True)
    assert response.status_code == 200
    assert "never been configured" in response.content.decode()
    assert not AuditEvent.objects.filter(action="settings.keys_export").exists()
