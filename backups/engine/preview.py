"""inspect_archive: what a backup holds, for restore previews.

The manifest is the archive's last member, so this reads the whole stream
(decrypting and decompressing, but not hashing members or checking chunks):
cost is one decompression pass — about the time of ``tar -t`` on the same
file. ``bytes_read`` and ``duration_seconds`` report it.
"""
from __future__ import annotations

import posixpath
import time
from dataclasses import asdict, dataclass, field

from . import world
from .errors import DECRYPTION_FAILED, EngineError
from .reader import ArchiveStream

_LEVEL_DAT_LIMIT = 64 * 1024 * 1024


@dataclass
class ArchiveInfo:
    path: str
    size_bytes: int
    file_count: int
    total_bytes: int
    world_name: str | None
    minecraft_version: str | None
    worlds: list = field(default_factory=list)
    manifest: dict | None = None  # {"version", "created", "files", "bytes", ...} without the file list
    compression: str | None = None
    encrypted: bool = False
    key_fingerprint: str | None = None
    bytes_read: int = 0
    duration_seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def inspect_archive(path, *, keyring=None) -> ArchiveInfo:
    """File count, uncompressed size, world name(s) and Minecraft version of a backup.

    Raises ``EngineError`` (DECRYPTION_FAILED, BACKUP_CORRUPTED, BACKUP_NOT_FOUND)
    when the archive cannot be read, or is truncated, damaged or has a bad
    manifest. A level.dat that cannot be parsed (within ``world``'s caps) is
    skipped: that world is just not listed.
    """
    started = time.monotonic()
    worlds, files, total = [], 0, 0
    with ArchiveStream(path, keyring=keyring) as stream:
        if stream.format.encrypted and not keyring:
            raise EngineError(DECRYPTION_FAILED, "Backup is encrypted and no key or password was given")
        for info, name in stream.members():
            if not info.isfile():
                continue
            files += 1
            total += info.size
            if world.is_level_dat(name) and info.size <= _LEVEL_DAT_LIMIT:
                try:
                    found = world.parse_level_dat(stream.extractfile(info).read())
                except (ValueError, OSError, EOFError):
                    continue
                worlds.append({"path": posixpath.dirname(name) or ".", **found})
        stream.finish()
        stream.raise_problems()  # a truncated or damaged archive is not previewed as if whole
        manifest = None
        if stream.manifest is not None:
            manifest = {k: v for k, v in stream.manifest.items() if k not in ("files", "symlinks")}
        fmt = stream.format
        size, bytes_read = stream.size, stream.raw.bytes_read
    worlds.sort(key=lambda w: (w["path"].count("/"), w["path"]))
    return ArchiveInfo(
        path=stream.path, size_bytes=size, file_count=files, total_bytes=total,
        world_name=worlds[0]["level_name"] if worlds else None,
        minecraft_version=next((w["minecraft_version"] for w in worlds if w["minecraft_version"]), None),
        worlds=worlds, manifest=manifest, compression=fmt.compression, encrypted=fmt.encrypted,
        key_fingerprint=fmt.key_fingerprint, bytes_read=bytes_read,
        duration_seconds=round(time.monotonic() - started, 3),
    )
