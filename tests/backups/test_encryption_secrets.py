"""Issue #11 (D): encryption passwords must be strong (Django's password
validators and zxcvbn score >= 3), said clearly when they are not; a weak
password stored before this rule keeps working and is flagged to the admins once."""

import pytest
from django.core import mail

from backups import engine
from backups.models import AlertIncident, BackupSettings
from backups.scheduler import backup_scheduler
from backups.services import config
from mcsite.errors import DomainError

pytestmark = pytest.mark.django_db

STRONG = "correct horse battery staple"


@pytest.mark.parametrize("weak, why", [
    ("x", "too short"),
    ("password123", "very common"),
    ("12345678901234", "entirely numeric"),
    ("minecraft2024", "similar to a commonly used password"),
    ("aaaaaaaaaaaaaaaaaaaa", "Repeats like"),
])
def test_weak_passwords_are_refused_with_the_reason(weak, why):
    with pytest.raises(DomainError) as info:
        backup_scheduler.configure_encryption(True, password=weak)
    exc = info.value
    assert exc.code == "VALIDATION_ERROR"
    assert list(exc.details) == ["password"] and exc.details["password"]
    assert any(why in message for message in exc.details["password"]), exc.details
    assert why in exc.message  # the admin form and the Python API show exc.message
    assert len(weak) < 4 or weak not in exc.message  # the password itself is never echoed
    row = BackupSettings.load()
    assert row.encryption_enabled is False and not row.encryption_secret_sealed


def test_a_strong_password_is_accepted_and_a_key_is_not_judged_as_a_password():
    backup_scheduler.configure_encryption(True, password=STRONG, iterations=100_000)
    assert BackupSettings.load().encryption_mode == "password"
    backup_scheduler.configure_encryption(True, key=engine.generate_key())
    assert BackupSettings.load().encryption_mode == "key"


def test_password_problems_lists_django_and_zxcvbn_feedback():
    problems = config.password_problems("x")
    assert any("at least 8 characters" in p for p in problems)
    assert any("too easy to guess" in p and "Add another word or two" in p for p in problems)
    assert config.password_problems(STRONG) == []


def _store_weak_password(password="minecraft2024"):
    """As an install configured before the rule: written straight to the row."""
    row = BackupSettings.load()
    spec = engine.EncryptionSpec.from_password(password, 100_000)
    row.set_encryption_secret("password", password, spec.fingerprint)
    row.kdf_iterations = 100_000
    row.encryption_enabled = True
    row.save()
    return spec


def test_a_weak_password_stored_before_keeps_working_and_is_flagged_once(settings, alice, make_server,
                                                                         take_backup):
    settings.MCSITE_ALERT_EMAILS = ["ops@example.com"]
    spec = _store_weak_password()
    server = make_server(alice)
    first = take_backup(server)
    second = take_backup(server)
    for record in (first, second):
        assert record.encrypted and record.key_fingerprint == spec.fingerprint and record.verification_passed
    incidents = AlertIncident.objects.filter(kind="weak_encryption_password", subject="site")
    assert incidents.count() == 1 and incidents.get().resolved_at is None
    weak_mails = [m for m in mail.outbox if "weak" in m.subject.lower()]
    assert [m.to for m in weak_mails] == [["ops@example.com"]]  # once, to the admins only
    assert "minecraft2024" not in weak_mails[0].subject + weak_mails[0].body
    assert "similar to a commonly used password" in weak_mails[0].body

    backup_scheduler.configure_encryption(True, password=STRONG, iterations=100_000)  # the admin acts
    assert incidents.get().resolved_at is not None
    assert config.flag_weak_secret() is False
    from backups.services.actions import backup_verify

    assert backup_verify(record=first).verification_passed is True  # the old password is in the keyring


def test_flag_weak_secret_can_be_called_on_its_own(settings):
    settings.MCSITE_ALERT_EMAILS = ["ops@example.com"]
    assert config.flag_weak_secret() is False  # nothing configured
    _store_weak_password("x")
    assert config.flag_weak_secret() is True
    assert config.flag_weak_secret() is True  # still weak: still flagged, but one incident, one mail
    assert AlertIncident.objects.filter(kind="weak_encryption_password").count() == 1
    assert len(mail.outbox) == 1


def test_re_enabling_with_the_stored_weak_password_is_not_refused():
    _store_weak_password("x")
    backup_scheduler.configure_encryption(False)
    backup_scheduler.configure_encryption(True)  # the stored secret, as before
    assert BackupSettings.load().encryption_enabled is True
