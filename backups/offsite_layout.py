"""Where a backup's copy lives on a storage target, and the JSON sidecar
written beside it (issue #13): what `import_backups` needs to rebuild the
records after the database is lost, without opening the archive.

Layout under the target's prefix or base path::

    <server folder>/<backup file name>         the archive, byte for byte
    <server folder>/<backup file name>.json    its sidecar

The server folder is the one relative to the servers root (unique per
site), so copies of two servers never mix and a person browsing the bucket
finds a server's backups by its folder.

This module reads records but imports no Django itself, so the standalone
recovery tools can parse sidecars too."""

import json
from dataclasses import dataclass
from datetime import datetime

SIDECAR_FORMAT = "mcsite-backup-sidecar"
SIDECAR_VERSION = 1
SIDECAR_SUFFIX = ".json"
MAX_SIDECAR_BYTES = 64 * 1024

# The record fields a sidecar carries, as they are on BackupRecord.
RECORD_FIELDS = ("filename", "size_bytes", "sha256", "md5", "compression", "encrypted", "key_fingerprint",
                 "minecraft_version", "world_name", "file_count", "source_bytes", "trigger", "quality_score",
                 "quality_level", "verification_passed")


def remote_name(*, directory: str, filename: str) -> str:
    """The archive's name on a target: the server's folder, then the file name."""
    directory = (directory or "").strip("/")
    if not filename or "/" in filename or filename in (".", ".."):
        raise ValueError(f"not a backup file name: {filename!r}")
    return f"{directory}/{filename}" if directory else filename


def sidecar_name(archive_name: str) -> str:
    return archive_name + SIDECAR_SUFFIX


def is_sidecar(name: str) -> bool:
    return name.endswith(SIDECAR_SUFFIX)


def sidecar_document(record, *, server_name: str, server_directory: str, mcsite_version: str) -> dict:
    """The sidecar of `record` (a BackupRecord or anything with its fields)."""
    taken = getattr(record, "started_at", None) or record.created_at
    document = {
        "format": SIDECAR_FORMAT,
        "version": SIDECAR_VERSION,
        "server_name": server_name,
        "server_directory": server_directory,
        "created_at": record.created_at.isoformat(),
        "taken_at": taken.isoformat(),
        "mcsite_version": mcsite_version,
    }
    for name in RECORD_FIELDS:
        document[name] = getattr(record, name, None)
    return document


def sidecar_bytes(document: dict) -> bytes:
    return json.dumps(document, indent=2, sort_keys=True).encode("utf-8")


@dataclass(frozen=True)
class Sidecar:
    document: dict

    @property
    def created_at(self) -> datetime:
        return datetime.fromisoformat(self.document["created_at"])

    def __getitem__(self, key):
        return self.document[key]

    def get(self, key, default=None):
        return self.document.get(key, default)


class SidecarError(ValueError):
    pass


def parse_sidecar(raw: bytes) -> Sidecar:
    """A sidecar read back from a target, checked before anything trusts it."""
    if len(raw) > MAX_SIDECAR_BYTES:
        raise SidecarError("sidecar too large")
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SidecarError(f"not JSON: {exc}") from None
    if not isinstance(document, dict) or document.get("format") != SIDECAR_FORMAT:
        raise SidecarError("not an mcsite backup sidecar")
    if not isinstance(document.get("version"), int) or document["version"] > SIDECAR_VERSION:
        raise SidecarError(f"sidecar version {document.get('version')!r} is newer than this mcsite understands")
    for key in ("filename", "sha256", "created_at", "compression", "server_directory", "size_bytes"):
        if key not in document:
            raise SidecarError(f"sidecar lacks {key!r}")
    filename = document["filename"]
    if not isinstance(filename, str) or "/" in filename or "\\" in filename or filename in ("", ".", ".."):
        raise SidecarError("bad file name in sidecar")
    sha = document["sha256"]
    if not isinstance(sha, str) or len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise SidecarError("bad sha256 in sidecar")
    if not isinstance(document["size_bytes"], int) or document["size_bytes"] < 0:
        raise SidecarError("bad size in sidecar")
    try:
        datetime.fromisoformat(document["created_at"])
    except (TypeError, ValueError):
        raise SidecarError("bad created_at in sidecar") from None
    return Sidecar(document)
