"""Keys survive the host (issue #13): the encryption key or password lives
only in the database, sealed with the site secret, so losing the host loses
every encrypted backup and copy unless the key material was exported.

``export_document()`` is the JSON of ``manage.py export_keys`` and the admin's
"Export encryption keys" button (format: docs/format.md, "The keys export"):
every secret in clear, current first, then the keyring's older ones.
``record_export()`` sets ``keys_exported_at`` and audits it (never the
secrets) once the document has been handed over. ``export_needed()`` tells
the pages to warn admins while encryption is on and no export is newer than
the last change (``keys_changed_at``, kept by ``config.settings_encryption_set``).
"""

from __future__ import annotations

import base64
import datetime as dt
import socket

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from backups.engine import EncryptionSpec
from backups.engine.cli import KEYS_FORMAT, KEYS_VERSION, UsageError, specs_from_document
from backups.models import BackupSettings
from backups.services.config import _retire_current_secret  # one way to put a secret in the keyring
from mcsite.audit import audit
from mcsite.errors import DomainError, ErrorCode
from mcsite.sealing import unseal

WARNING = ("This file holds backup encryption keys and passwords IN CLEAR. Anyone who has it and a backup "
           "can read the backup. Store it offline (a password manager, a safe, a printed copy), apart from "
           "the backups, and never beside them on the same host or bucket.")


def _secret_text(mode: str, secret: str) -> str:
    """A password as typed; a key as standard base64 (it may have been given URL-safe)."""
    if mode == "key":
        return base64.b64encode(EncryptionSpec.from_key(secret).secret).decode("ascii")
    return secret


def export_document(config: BackupSettings | None = None) -> dict:
    """Every key and password of the site, in clear. Raises DomainError when
    encryption has never been configured (there is nothing to export)."""
    config = config or BackupSettings.load()
    keys = []
    if config.encryption_secret_sealed:
        mode = config.encryption_mode
        keys.append({
            "kind": "archive", "current": True, "mode": mode, "fingerprint": config.encryption_fingerprint,
            "iterations": config.kdf_iterations if mode == "password" else 0,
            "secret": _secret_text(mode, config.encryption_secret), "retired_at": None,
        })
    for entry in config.keyring:
        mode = entry.get("mode")
        keys.append({
            "kind": "archive", "current": False, "mode": mode, "fingerprint": entry.get("fingerprint"),
            "iterations": entry.get("iterations", 600_000) if mode == "password" else 0,
            "secret": _secret_text(mode, unseal(entry["sealed"])),
            "retired_at": entry.get("retired_at") or entry.get("added_at"),
        })
    repositories = repository_keys()
    if not keys and not repositories:
        raise DomainError(ErrorCode.VALIDATION_ERROR,
                          "Encryption has never been configured: there is no key or password to export")
    return {
        "format": KEYS_FORMAT,
        "version": KEYS_VERSION,
        "warning": WARNING,
        "created_at": timezone.now().astimezone(dt.timezone.utc).isoformat(),
        "site": {"name": socket.gethostname(), "node": settings.MCSITE_NODE},
        "encryption_enabled": config.encryption_enabled,
        "keys": keys,
        "repositories": repositories,
    }


def repository_keys() -> list[dict]:
    """Each incremental repository's key-encryption key (issue #14), with
    where the repository is: with it, ``python -m backups.repo`` or
    ``import_backups`` open the repository without the database."""
    from backups.models import SnapshotRepository

    return [{"server": row.server_name, "server_id": row.server_id, "repository_id": row.repo_uid,
             "target": row.target.name if row.target_id else None, "node": row.node or None,
             "location": row.location, "key": base64.b64encode(row.kek).decode("ascii")}
            for row in SnapshotRepository.objects.select_related("target").order_by("pk")]


def record_export(document: dict, *, actor=None, source: str = "python", request=None,
                  destination: str = "") -> BackupSettings:
    """The document was handed over: ``keys_exported_at`` = its time; audited
    with the fingerprints it held (never the secrets)."""
    exported_at = dt.datetime.fromisoformat(document["created_at"])
    with transaction.atomic():
        config = BackupSettings.objects.select_for_update().get(pk=BackupSettings.load().pk)
        config.keys_exported_at = exported_at
        config.save(update_fields=["keys_exported_at", "updated_at"])
        audit(actor=actor, action="settings.keys_export", obj=config, source=source, request=request,
              detail={"fingerprints": [k["fingerprint"] for k in document["keys"]],
                      "count": len(document["keys"]), "destination": destination,
                      "repositories": [r["repository_id"] for r in document.get("repositories", [])]})
    return config


def export_needed(config: BackupSettings | None = None) -> bool:
    """Encryption is on or an incremental repository exists, and the keys
    changed since the last export (or were never exported)."""
    config = config or BackupSettings.load()
    from backups.models import SnapshotRepository

    has_repositories = SnapshotRepository.objects.exists()
    if not (config.encryption_enabled and config.encryption_secret_sealed) and not has_repositories:
        return False
    if config.keys_exported_at is None:
        return True
    return config.keys_changed_at is not None and config.keys_changed_at > config.keys_exported_at


def keys_import(document: dict, *, actor=None, source: str = "python") -> dict:
    """Loads a keys export into this site (a new install after the old host
    was lost). Every secret the site does not know joins its keyring, so
    backups encrypted with it decrypt again; when the site has no current
    secret of its own, the export's current one becomes it and encryption is
    on or off as the export says. A site's own current secret is never
    replaced. Idempotent. Returns {"added": [fingerprints], "current": fp}.
    Raises DomainError for a document that is not an export (nothing changes)."""
    try:
        specs = specs_from_document(document, where="the keys file")
    except UsageError as exc:
        raise DomainError(ErrorCode.VALIDATION_ERROR, str(exc)) from None
    entries = list(zip(document["keys"], specs))
    added = []
    with transaction.atomic():
        config = BackupSettings.objects.select_for_update().get(pk=BackupSettings.load().pk)
        known = {config.encryption_fingerprint} | {e.get("fingerprint") for e in config.keyring}
        now = timezone.now()
        for position, (entry, spec) in enumerate(entries):
            if spec.fingerprint in known:
                continue
            if not config.encryption_secret_sealed and position == 0 and entry.get("current", True):
                config.kdf_iterations = spec.iterations if spec.mode_name == "password" else config.kdf_iterations
                config.set_encryption_secret(spec.mode_name, entry["secret"], spec.fingerprint)
                config.encryption_enabled = bool(document.get("encryption_enabled", True))
            else:
                current = (config.encryption_mode, config.encryption_secret_sealed, config.encryption_fingerprint,
                           config.kdf_iterations)
                # Put it in the keyring the way a retired secret goes there, then restore the current one.
                config.set_encryption_secret(spec.mode_name, entry["secret"], spec.fingerprint)
                config.kdf_iterations = spec.iterations if spec.mode_name == "password" else current[3]
                _retire_current_secret(config)
                (config.encryption_mode, config.encryption_secret_sealed, config.encryption_fingerprint,
                 config.kdf_iterations) = current
            known.add(spec.fingerprint)
            added.append(spec.fingerprint)
        if added:
            # The secrets came from an export, which exists: no reason to ask for a new one.
            config.keys_changed_at = config.keys_exported_at = now
        config.save()
        audit(actor=actor, action="settings.keys_import", obj=config, source=source,
              detail={"added": added, "current": config.encryption_fingerprint})
    return {"added": added, "current": config.encryption_fingerprint}
