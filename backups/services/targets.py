"""Storage targets as admins manage them (issue #13): saved through
`target_save`, which checks the settings of the kind, opens the target
config (the backend refuses what it cannot use) and seals the secrets;
`target_test` writes, reads back and deletes a probe and records the
outcome; `default_target_sync` keeps the target named `default` equal to
MCSITE_OFFSITE_DEFAULT. Secrets are never returned: callers see which
secret names are set (`secret_names`)."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from django.db import IntegrityError, transaction
from django.utils import timezone

from backups.models import OffsiteCopy, StorageTarget
from backups.offsite import OffsiteError, TargetConfig, open_target
from mcsite.audit import audit
from mcsite.errors import DomainError, ErrorCode

# The settings an admin may give per kind (anything else is refused), and the secrets.
SETTINGS = {
    "local": ("path", "must_be_mount_point"),
    "s3": ("endpoint_url", "region", "bucket", "prefix", "addressing_style", "part_size_mib", "concurrency",
           "max_attempts", "object_lock_mode", "verify_tls"),
    "sftp": ("host", "port", "username", "host_key", "base_path", "timeout"),
}
REQUIRED = {"local": ("path",), "s3": ("bucket",), "sftp": ("host", "username", "host_key")}
SECRETS = {"local": (), "s3": ("access_key_id", "secret_access_key"),
           "sftp": ("password", "private_key", "private_key_passphrase")}
FIELDS = ("name", "enabled", "is_default", "extra_retention_days", "delete_delay_days", "object_lock_days")
DEFAULT_NAME = "default"


def _invalid(field: str, message: str) -> DomainError:
    return DomainError(ErrorCode.VALIDATION_ERROR, message, details={field: [message]})


def secret_names(target: StorageTarget) -> list[str]:
    return sorted(name for name, value in target.secrets.items() if value)


def _clean_settings(kind: str, settings: dict) -> dict:
    unknown = sorted(set(settings) - set(SETTINGS[kind]))
    if unknown:
        raise _invalid("settings", f"Unknown setting {unknown[0]!r} for a {kind} target "
                                   f"(one of {', '.join(SETTINGS[kind])})")
    cleaned = {k: v for k, v in settings.items() if v not in (None, "")}
    for key in REQUIRED[kind]:
        if not cleaned.get(key):
            raise _invalid(key, f"A {kind} target needs '{key}'")
    if kind == "local" and not Path(str(cleaned["path"])).is_absolute():
        raise _invalid("path", "The folder must be an absolute path, e.g. /mnt/backup2")
    if kind == "sftp" and "port" in cleaned:
        try:
            cleaned["port"] = int(cleaned["port"])
        except (TypeError, ValueError):
            raise _invalid("port", "The port must be a number") from None
    return cleaned


def target_save(*, target: StorageTarget | None = None, kind: str | None = None, settings: dict | None = None,
                secrets: dict | None = None, actor=None, request=None, source: str = "admin",
                **fields) -> StorageTarget:
    """Creates (target None) or changes a target. `settings` replaces the
    settings when given; `secrets` changes only the names it gives (an empty
    value removes that secret; a name left out keeps its stored value)."""
    creating = target is None
    target = target or StorageTarget()
    if creating:
        if kind not in SETTINGS:
            raise _invalid("kind", f"Kind must be one of {', '.join(SETTINGS)}")
        target.kind = kind
    elif kind not in (None, target.kind):
        raise _invalid("kind", "The kind of a target cannot change; add a new target instead")
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise _invalid(unknown[0], f"Unknown field {unknown[0]!r}")
    for name, value in fields.items():
        setattr(target, name, value)
    if creating and not target.name:
        raise _invalid("name", "A target needs a name")
    if settings is not None or creating:
        target.settings = _clean_settings(target.kind, dict(settings or {}))
    stored = dict(target.secrets)
    for name, value in (secrets or {}).items():
        if name not in SECRETS[target.kind]:
            raise _invalid(name, f"A {target.kind} target has no secret {name!r}")
        if value:
            stored[name] = value
        else:
            stored.pop(name, None)
    if target.kind == "sftp" and not (stored.get("password") or stored.get("private_key")):
        raise _invalid("password", "An SFTP target needs a password or a private key")
    if target.object_lock_days and target.kind != "s3":
        raise _invalid("object_lock_days", "Object Lock exists on S3 targets only")
    try:
        open_target(TargetConfig(kind=target.kind, name=target.name or "new", settings=target.settings,
                                 secrets=stored)).close()
    except OffsiteError as exc:
        raise _invalid("settings", exc.message) from None
    target.secrets = stored
    try:
        with transaction.atomic():
            target.full_clean(exclude=["secrets_sealed"])
            target.save()
    except IntegrityError:
        raise _invalid("name", f"A target named {target.name!r} exists already") from None
    except Exception as exc:
        from django.core.exceptions import ValidationError
        if isinstance(exc, ValidationError):
            field, messages = next(iter(exc.message_dict.items()))
            raise _invalid(field, f"{field}: {messages[0]}") from None
        raise
    audit(actor=actor, action="storage_target.create" if creating else "storage_target.change", obj=target,
          request=request, source=source)
    return target


def target_delete(*, target: StorageTarget, actor=None, request=None, source: str = "admin") -> None:
    kept = OffsiteCopy.objects.filter(target=target).exclude(status=OffsiteCopy.Status.DELETED).count()
    if kept:
        raise DomainError(ErrorCode.VALIDATION_ERROR, f"The target {target.name} holds {kept} copies; disable it "
                          "instead, or delete those backups first")
    OffsiteCopy.objects.filter(target=target).delete()
    audit(actor=actor, action="storage_target.delete", obj=target, request=request, source=source)
    target.delete()


def target_test(*, target: StorageTarget) -> tuple[bool, str]:
    """Writes, reads back and deletes a probe; records and returns the outcome
    ('Step 'write' failed: …' says exactly what failed)."""
    try:
        with open_target(target.config()) as remote:
            result = remote.test()
        ok, message = True, f"OK: {', '.join(result.steps)} ({result.detail})"
    except OffsiteError as exc:
        ok, message = False, f"{exc.code}: {exc.message}"
    StorageTarget.objects.filter(pk=target.pk).update(last_test_at=timezone.now(), last_test_ok=ok,
                                                      last_test_error="" if ok else message[:500])
    target.refresh_from_db()
    return ok, message


# --- the site default from the environment ----------------------------------------------

def parse_default_url(url: str, env=os.environ) -> tuple[str, dict, dict]:
    """MCSITE_OFFSITE_DEFAULT → (kind, settings, secrets)."""
    parts = urlsplit(url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    if parts.scheme == "file":
        return "local", {"path": unquote(parts.path)}, {}
    if parts.scheme == "s3":
        settings = {"bucket": parts.netloc, "prefix": unquote(parts.path.lstrip("/"))}
        settings.update({k: query[k] for k in ("endpoint_url", "region", "addressing_style") if k in query})
        secrets = {"access_key_id": env.get("MCSITE_OFFSITE_S3_ACCESS_KEY_ID", ""),
                   "secret_access_key": env.get("MCSITE_OFFSITE_S3_SECRET_ACCESS_KEY", "")}
        return "s3", settings, {k: v for k, v in secrets.items() if v}
    if parts.scheme == "sftp":
        settings = {"host": parts.hostname or "", "port": parts.port or 22, "username": unquote(parts.username or ""),
                    "base_path": unquote(parts.path) or "/", "host_key": query.get("host_key", "")}
        secrets = {"password": env.get("MCSITE_OFFSITE_SFTP_PASSWORD", "")}
        key_file = env.get("MCSITE_OFFSITE_SFTP_PRIVATE_KEY_FILE", "")
        if key_file:
            secrets["private_key"] = Path(key_file).read_text()
        return "sftp", settings, {k: v for k, v in secrets.items() if v}
    raise ValueError(f"MCSITE_OFFSITE_DEFAULT must start with file://, s3:// or sftp:// (got {parts.scheme!r})")


def default_target_sync(env=os.environ) -> StorageTarget | None:
    """Creates or updates the target named `default` (is_default on) from
    MCSITE_OFFSITE_DEFAULT; nothing when it is not set."""
    url = env.get("MCSITE_OFFSITE_DEFAULT", "").strip()
    if not url:
        return None
    kind, settings, secrets = parse_default_url(url, env)
    existing = StorageTarget.objects.filter(name=DEFAULT_NAME).first()
    if existing is not None and existing.kind != kind:
        raise DomainError(ErrorCode.VALIDATION_ERROR, f"The target '{DEFAULT_NAME}' is a {existing.kind} target; "
                          f"MCSITE_OFFSITE_DEFAULT names a {kind} one. Rename or delete it in the admin first.")
    return target_save(target=existing, kind=kind, settings=settings, secrets=secrets, source="environment",
                       **({"name": DEFAULT_NAME} if existing is None else {}), is_default=True)
