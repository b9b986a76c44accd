"""The seed's Python API: settings persist site-wide, secrets are sealed and
never shown, the next backups use them, old backups decrypt after rotation."""

import pytest

from backups import engine, storage
from backups.models import BackupSettings
from backups.scheduler import backup_scheduler
from mcsite.errors import DomainError

pytestmark = pytest.mark.django_db


def test_configure_compression_persists_and_applies_to_the_next_backup(alice, make_server, take_backup):
    backup_scheduler.configure_compression("bzip2")
    assert BackupSettings.objects.get().compression == "bzip2"
    record = take_backup(make_server(alice))
    assert record.compression == "bzip2" and record.filename.endswith(".tar.bz2")
    with pytest.raises(DomainError) as excinfo:
        backup_scheduler.configure_compression("rar")
    assert excinfo.value.code == "VALIDATION_ERROR"


def test_password_encryption_is_sealed_and_used(alice, make_server, take_backup):
    backup_scheduler.configure_encryption(True, password="correct horse battery staple", iterations=100_000)
    row = BackupSettings.objects.get()
    assert row.encryption_enabled and row.encryption_mode == "password"
    assert "correct horse" not in row.encryption_secret_sealed
    record = take_backup(make_server(alice))
    assert record.encrypted and record.filename.endswith(".tar.gz.enc")
    assert record.verification_passed and record.quality_score == 100
    head = storage.absolute_path(record.storage_path).read_bytes()[:6]
    assert head == b"MCSENC"


def test_key_rotation_keeps_old_backups_readable(alice, make_server, take_backup):
    server = make_server(alice)
    backup_scheduler.configure_encryption(True, key=engine.generate_key())
    old = take_backup(server)
    backup_scheduler.configure_encryption(True, key=engine.generate_key())
    new = take_backup(server)
    assert old.key_fingerprint != new.key_fingerprint
    from backups.services.actions import backup_verify

    assert backup_verify(record=old).verification_passed is True


def test_a_bad_key_is_refused_and_changes_nothing():
    with pytest.raises(DomainError) as excinfo:
        backup_scheduler.configure_encryption(True, key="not base64 of 32 bytes")
    assert excinfo.value.code == "VALIDATION_ERROR"
    assert BackupSettings.load().encryption_enabled is False


def test_disable_encryption(alice, make_server, take_backup):
    backup_scheduler.configure_encryption(True, password="pw-for-a-while", iterations=100_000)
    backup_scheduler.configure_encryption(False)
    record = take_backup(make_server(alice))
    assert record.encrypted is False


def test_a_schedule_override_beats_the_site_setting(alice, make_server, take_backup):
    import datetime as dt

    from backups.services import schedules

    server = make_server(alice)
    schedules.backup_schedule_create(server=server, data={"schedule_type": "daily", "schedule_time": dt.time(2),
                                                          "compression": "zstd"}, actor=alice)
    server.refresh_from_db()
    record = take_backup(server, trigger="scheduled")
    assert record.compression == "zstd" and record.filename.endswith(".tar.zst")
