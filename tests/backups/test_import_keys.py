"""Issue #13, keys survive the host, the way back: a new install loads the
keys export (`manage.py import_keys FILE`, or `import_backups --keys-file`)
so that backups encrypted on the lost host restore again — the rotated-out
secrets too — and new backups are encrypted as before. Loading is
idempotent, refuses a file that is not an export, and never changes a site
that already has its own current secret (the export's keys join its
keyring instead)."""

import json

import pytest
from django.core.management import CommandError, call_command

from backups import engine, storage
from backups.models import BackupSettings
from backups.scheduler import backup_scheduler
from backups.services import config as config_service
from backups.services import keys as keys_service
from mcsite.models import AuditEvent

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"


@pytest.fixture
def lost_site(alice, make_server, take_backup, tmp_path):
    """A site that encrypted with a password, then rotated to a key, exported
    its keys, and was then lost: its backups stay, its database does not."""
    backup_scheduler.configure_encryption(True, password=PASSWORD, iterations=100_000)
    server = make_server(alice)
    old = take_backup(server)
    backup_scheduler.configure_encryption(True, key=engine.generate_key())
    new = take_backup(server)
    export = tmp_path / "keys.json"
    export.write_text(json.dumps(keys_service.export_document()))
    files = {name: storage.absolute_path(r.storage_path) for name, r in (("old", old), ("new", new))}
    current = BackupSettings.load().encryption_fingerprint
    BackupSettings.objects.all().delete()  # the new install's database knows no key
    assert not BackupSettings.load().encryption_secret_sealed
    return {"export": export, "files": files, "current": current}


def _opens(path) -> bool:
    report = engine.verify_backup(path, keyring=config_service.decryption_keyring(), check_world=False)
    integrity = report.methods["archive_integrity"]
    return integrity.ok and not integrity.skipped


def test_import_keys_makes_old_and_new_backups_readable_and_encrypts_as_before(lost_site, capsys):
    assert not _opens(lost_site["files"]["old"]) and not _opens(lost_site["files"]["new"])
    call_command("import_keys", str(lost_site["export"]))
    config = BackupSettings.load()
    assert config.encryption_enabled and config.encryption_fingerprint == lost_site["current"]
    assert _opens(lost_site["files"]["old"]) and _opens(lost_site["files"]["new"])
    assert len(config.keyring) == 1  # the rotated-out password
    assert not keys_service.export_needed(config)  # the keys came from an export: nothing new to export
    out = capsys.readouterr().out
    assert "2 keys" in out and lost_site["current"] in out and PASSWORD not in out
    assert AuditEvent.objects.filter(action="settings.keys_import").exists()

    call_command("import_keys", str(lost_site["export"]))  # again: nothing changes
    again = BackupSettings.load()
    assert again.keyring == config.keyring and again.encryption_fingerprint == config.encryption_fingerprint


def test_a_site_with_its_own_key_keeps_it_and_adds_the_exported_ones(lost_site):
    own = engine.generate_key()
    backup_scheduler.configure_encryption(True, key=own)
    mine = BackupSettings.load().encryption_fingerprint
    call_command("import_keys", str(lost_site["export"]))
    config = BackupSettings.load()
    assert config.encryption_fingerprint == mine
    assert {e["fingerprint"] for e in config.keyring} >= {lost_site["current"]}
    assert _opens(lost_site["files"]["old"]) and _opens(lost_site["files"]["new"])


@pytest.mark.parametrize("content", ["not json", json.dumps({"format": "something-else", "keys": []}),
                                     json.dumps({"format": "mcsite-keys", "version": 99, "keys": []})])
def test_a_file_that_is_not_an_export_is_refused_and_changes_nothing(tmp_path, content, db):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    with pytest.raises(CommandError):
        call_command("import_keys", str(bad))
    assert not BackupSettings.load().encryption_secret_sealed


def test_import_backups_takes_the_keys_file_too(lost_site):
    from backups.models import StorageTarget

    StorageTarget.objects.create(name="offsite", kind="local", settings={"path": str(lost_site["export"].parent)})
    call_command("import_backups", "--target", "offsite", "--keys-file", str(lost_site["export"]))
    assert BackupSettings.load().encryption_fingerprint == lost_site["current"]
