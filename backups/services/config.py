"""Site-wide backup settings (SPEC §8): compression and encryption, stored in
the BackupSettings row so every process (web, worker, beat, shell) sees the
same values. Secrets are sealed at rest and never shown back."""

import logging

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from backups.engine import EncryptionSpec, Keyring
from backups.engine.errors import EngineError
from backups.models import BackupSettings, Compression
from mcsite.audit import audit
from mcsite.errors import DomainError, ErrorCode
from mcsite.sealing import seal, unseal

logger = logging.getLogger("mcsite.backups")

MIN_PASSWORD_SCORE = 3  # zxcvbn: 3 = "safely unguessable: moderate protection from offline attacks"
WEAK_PASSWORD_ALERT = "weak_encryption_password"
_ZXCVBN_MAX_CHARS = 100  # zxcvbn's cost grows fast with length; 100 characters judge any real password

def _invalid(field: str, message: str) -> DomainError:
    return DomainError(ErrorCode.VALIDATION_ERROR, message, details={field: [message]})


def settings_compression_set(*, compression: str, actor=None, source: str = "python") -> BackupSettings:
    if compression not in Compression.values:
        raise _invalid("compression", f"Unknown compression {compression!r}; choose one of {', '.join(Compression.values)}")
    with transaction.atomic():
        config = BackupSettings.objects.select_for_update().get(pk=BackupSettings.load().pk)
        config.compression = compression
        config.save(update_fields=["compression", "updated_at"])
        audit(actor=actor, action="settings.compression", obj=config, source=source, detail={"compression": compression})
    return config


CHECK_FIELDS = ("verify_world", "restore_test", "disk_warning_percent", "disk_emergency_percent",
                "safety_backup_days", "recheck_days", "recheck_batch")


def settings_checks_set(*, actor=None, source: str = "python", **values) -> BackupSettings:
    """Verification methods and disk thresholds (80 % warning, 90 % emergency by default)."""
    unknown = set(values) - set(CHECK_FIELDS)
    if unknown:
        raise _invalid(sorted(unknown)[0], f"Unknown setting {sorted(unknown)[0]!r}")
    for field in ("disk_warning_percent", "disk_emergency_percent"):
        if field in values and not (isinstance(values[field], int) and 1 <= values[field] <= 100):
            raise _invalid(field, "A percentage between 1 and 100")
    days = values.get("safety_backup_days")
    if days is not None and not (isinstance(days, int) and 1 <= days <= 365):
        raise _invalid("safety_backup_days", "A number of days between 1 and 365")
    for field, low, high, what in (("recheck_days", 0, 365, "A number of days between 0 (never) and 365"),
                                   ("recheck_batch", 1, 1000, "A number of backups between 1 and 1000")):
        if field in values and not (isinstance(values[field], int) and not isinstance(values[field], bool)
                                    and low <= values[field] <= high):
            raise _invalid(field, what)
    warning = values.get("disk_warning_percent", BackupSettings.load().disk_warning_percent)
    emergency = values.get("disk_emergency_percent", BackupSettings.load().disk_emergency_percent)
    if warning > emergency:
        raise _invalid("disk_warning_percent", "The warning threshold must not be above the emergency one")
    with transaction.atomic():
        config = BackupSettings.objects.select_for_update().get(pk=BackupSettings.load().pk)
        for field, value in values.items():
            setattr(config, field, value)
        config.save(update_fields=[*values, "updated_at"])
        audit(actor=actor, action="settings.checks", obj=config, source=source, detail=dict(values))
    return config


def settings_encryption_set(
    *, enabled: bool, password: str | None = None, key: str | None = None, iterations: int | None = None,
    actor=None, source: str = "python",
) -> BackupSettings:
    """Turns encryption on with a new password or key (the previous secret is
    kept in the keyring so older backups still decrypt), back on with the
    stored secret, or off."""
    if not isinstance(enabled, bool):
        raise _invalid("enabled", "enabled must be True or False")
    if password is not None and key is not None:
        raise _invalid("key", "Give a password or a key, not both")
    with transaction.atomic():
        config = BackupSettings.objects.select_for_update().get(pk=BackupSettings.load().pk)
        if iterations is not None:
            if isinstance(iterations, bool) or not isinstance(iterations, int) or not 100_000 <= iterations <= 10_000_000:
                raise _invalid("iterations", "iterations must be an integer between 100000 and 10000000")
            config.kdf_iterations = iterations
        if enabled and password is not None:
            problems = password_problems(password) if isinstance(password, str) and password else []
            if problems:
                raise DomainError(ErrorCode.VALIDATION_ERROR,
                                  "The encryption password is too weak: " + " ".join(problems),
                                  details={"password": problems})
        if enabled and (password is not None or key is not None):
            try:
                spec = (EncryptionSpec.from_password(password, config.kdf_iterations) if password is not None
                        else EncryptionSpec.from_key(key))
            except EngineError as exc:
                raise _invalid("password" if password is not None else "key", exc.message) from None
            _retire_current_secret(config)
            config.set_encryption_secret(spec.mode_name, password if password is not None else key, spec.fingerprint)
            config.keys_changed_at = timezone.now()  # the pages warn until an export is newer (services/keys.py)
        elif enabled and not config.encryption_secret_sealed:
            raise _invalid("password", "Encryption needs a password or a key the first time it is enabled")
        config.encryption_enabled = enabled
        config.save()
        audit(actor=actor, action="settings.encryption", obj=config, source=source,
              detail={"enabled": enabled, "mode": config.encryption_mode, "fingerprint": config.encryption_fingerprint})
    if enabled and (password is not None or key is not None):  # a new secret, judged above
        from backups.alerts import alert_resolve

        alert_resolve(kind=WEAK_PASSWORD_ALERT, subject="site")
    return config


# --- password strength (issue #11) --------------------------------------------

def password_problems(password: str) -> list[str]:
    """Why ``password`` is too weak to encrypt backups with ([] if it is not):
    Django's AUTH_PASSWORD_VALIDATORS (no user) and zxcvbn's score >= 3 with
    its feedback. The password itself never appears in the messages."""
    problems: list[str] = []
    try:
        validate_password(password, user=None)
    except ValidationError as exc:
        problems.extend(exc.messages)
    from zxcvbn import zxcvbn

    result = zxcvbn(password[:_ZXCVBN_MAX_CHARS])
    if result["score"] < MIN_PASSWORD_SCORE:
        feedback = result.get("feedback") or {}
        why = " ".join(filter(None, [feedback.get("warning") or "", *(feedback.get("suggestions") or [])]))
        problems.append(f"The password is too easy to guess (strength {result['score']}/4, "
                        f"{MIN_PASSWORD_SCORE} needed).{' ' + why if why else ''}")
    return problems


_judged: dict[str, tuple[str, ...]] = {}  # stable fingerprint -> problems; a password never changes


def flag_weak_secret(config: BackupSettings | None = None, spec: EncryptionSpec | None = None) -> bool:
    """True when the password backups are encrypted with (``spec``, by default
    the configured one) is weak; then the admins get ONE alert (an open
    ``weak_encryption_password`` incident for "site", resolved when a new
    password or key is set). Backups keep using it: a password accepted
    before the strength rule must not stop them. Never raises."""
    try:
        if spec is None:
            spec = current_encryption_spec(config)
        if spec is None or spec.mode_name != "password":
            return False
        problems = _judged.get(spec.fingerprint)
        if problems is None:
            problems = _judged[spec.fingerprint] = tuple(password_problems(spec.secret.decode("utf-8")))
        if not problems:
            return False
        from backups.alerts import alert_open

        alert_open(
            kind=WEAK_PASSWORD_ALERT, subject="site", title="The backup encryption password is weak",
            body=("Backups are encrypted with a password that would not be accepted today. They still "
                  "work, but set a stronger password (or a key) in the admin's backup settings or with "
                  "backup_scheduler.configure_encryption(True, password=...). Older backups stay "
                  "readable.\n\nWhy: " + " ".join(problems)),
        )
        return True
    except Exception:  # noqa: BLE001 — a warning must never fail a backup
        logger.exception("weak_secret_check_failed")
        return False


def _retire_current_secret(config: BackupSettings) -> None:
    if not config.encryption_secret_sealed:
        return
    known = {entry["fingerprint"] for entry in config.keyring}
    if config.encryption_fingerprint not in known:
        config.keyring = [*config.keyring, {
            "fingerprint": config.encryption_fingerprint,
            "mode": config.encryption_mode,
            "sealed": seal(unseal(config.encryption_secret_sealed)),
            "iterations": config.kdf_iterations,
            "retired_at": timezone.now().isoformat(),
        }]


def _spec(mode: str, secret: str, iterations: int) -> EncryptionSpec:
    return EncryptionSpec.from_password(secret, iterations) if mode == "password" else EncryptionSpec.from_key(secret)


def current_encryption_spec(config: BackupSettings | None = None) -> EncryptionSpec | None:
    config = config or BackupSettings.load()
    if not config.encryption_secret_sealed:
        return None
    return _spec(config.encryption_mode, config.encryption_secret, config.kdf_iterations)


def decryption_keyring(config: BackupSettings | None = None) -> Keyring:
    """Every secret this site has used, current first."""
    config = config or BackupSettings.load()
    specs = []
    current = current_encryption_spec(config)
    if current is not None:
        specs.append(current)
    for entry in config.keyring:
        try:
            specs.append(_spec(entry["mode"], unseal(entry["sealed"]), entry.get("iterations", 600_000)))
        except (ValueError, EngineError):
            continue
    return Keyring(specs)


def encryption_spec_for(record, config: BackupSettings | None = None) -> EncryptionSpec | None:
    """The secret a queued encrypted backup was promised (by its key
    fingerprint): the current one, or one kept in the keyring since."""
    if not record.encrypted:
        return None
    config = config or BackupSettings.load()
    spec = current_encryption_spec(config)
    if spec is None or spec.fingerprint != record.key_fingerprint:
        spec = next((s for s in decryption_keyring(config).specs if s.fingerprint == record.key_fingerprint), None)
    if spec is None:
        raise DomainError(ErrorCode.VALIDATION_ERROR, "The encryption secret of this backup is no longer configured")
    flag_weak_secret(config, spec)  # a weak password still encrypts; the admins hear of it once
    return spec


def effective_options(schedule=None, config: BackupSettings | None = None) -> tuple[str, EncryptionSpec | None]:
    """Compression and encryption for the next backup: the schedule's own
    choice where it has one, else the site's."""
    config = config or BackupSettings.load()
    compression = (schedule.compression if schedule is not None and schedule.compression else config.compression)
    encrypt = config.encryption_enabled
    if schedule is not None and schedule.encrypt is not None:
        encrypt = schedule.encrypt
    spec = current_encryption_spec(config) if encrypt else None
    if encrypt and spec is None:
        raise DomainError(ErrorCode.VALIDATION_ERROR, "Encryption is requested but no password or key is configured")
    return compression, spec
