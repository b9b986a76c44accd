"""Packs: the files blobs are stored in (issue #14, item 1; after restic's
pack format).

    sealed blob ‖ sealed blob ‖ … ‖ sealed header ‖ header length (4 bytes, little endian)

The header lists every blob: its kind (data: file pieces; tree: snapshot
documents), id, offset, sealed length and plaintext length, and is sealed
with the label ``pack-header`` (crypto.RepoKey.seal_meta). A pack's name is
the SHA-256 of its bytes, so a changed pack is found without the key. A
pack is written whole (to a temporary name, then renamed) before any index
names it: a crash leaves at most an unreferenced pack, never a reference to
a missing one.
"""

from __future__ import annotations

import hashlib
import io
import struct
from dataclasses import dataclass

from backups.repo.crypto import BlobError, RepoKey

TARGET_SIZE = 16 * 1024 * 1024
DATA, TREE = 0, 1
_ENTRY = struct.Struct("<B32sQII")
_HEADER_LABEL = b"pack-header"
_MAX_HEADER = 64 * 1024 * 1024


class PackError(Exception):
    """A pack whose header cannot be read (truncated, changed, another key)."""


@dataclass(frozen=True)
class Entry:
    kind: int
    blob_id: bytes
    offset: int
    length: int  # sealed
    raw_length: int  # plaintext


class PackWriter:
    """Collects sealed blobs until ``full``; ``finish()`` gives (pack id, bytes, entries)."""

    def __init__(self, key: RepoKey, target_size: int | None = None):
        self.key = key
        self.target_size = target_size or TARGET_SIZE  # read now: tests make packs small
        self._buffer = io.BytesIO()
        self.entries: list[Entry] = []
        self._ids: set[bytes] = set()

    def __contains__(self, blob_id: bytes) -> bool:
        return blob_id in self._ids

    def add(self, plaintext: bytes, *, kind: int = DATA, blob_id: bytes | None = None) -> bytes:
        blob_id, sealed = self.key.seal(plaintext, blob_id=blob_id)
        if blob_id in self._ids:
            return blob_id  # already in this pack
        offset = self._buffer.tell()
        self._buffer.write(sealed)
        self.entries.append(Entry(kind, blob_id, offset, len(sealed), len(plaintext)))
        self._ids.add(blob_id)
        return blob_id

    @property
    def size(self) -> int:
        return self._buffer.tell()

    @property
    def full(self) -> bool:
        return self.size >= self.target_size

    def finish(self) -> tuple[str, bytes, list[Entry]]:
        header = b"".join(_ENTRY.pack(e.kind, e.blob_id, e.offset, e.length, e.raw_length) for e in self.entries)
        sealed = self.key.seal_meta(header, _HEADER_LABEL)
        self._buffer.write(sealed)
        self._buffer.write(struct.pack("<I", len(sealed)))
        data = self._buffer.getvalue()
        return hashlib.sha256(data).hexdigest(), data, list(self.entries)


def read_header(key: RepoKey, read_at, size: int) -> list[Entry]:
    """The entries of a pack of ``size`` bytes; ``read_at(offset, length)``
    reads from it (a local file, or a ranged GET)."""
    if size < 4:
        raise PackError("too short to be a pack")
    (length,) = struct.unpack("<I", read_at(size - 4, 4))
    if length > min(size - 4, _MAX_HEADER) or length == 0:
        raise PackError("header length out of range (truncated or not a pack)")
    try:
        header = key.open_meta(read_at(size - 4 - length, length), _HEADER_LABEL)
    except BlobError as exc:
        raise PackError(f"header: {exc.why}") from None
    if len(header) % _ENTRY.size:
        raise PackError("header of a wrong size")
    entries = [Entry(*_ENTRY.unpack_from(header, i)) for i in range(0, len(header), _ENTRY.size)]
    end = size - 4 - length
    for entry in entries:
        if entry.offset + entry.length > end:
            raise PackError("an entry points past the blobs")
    return entries


def read_blob(key: RepoKey, read_at, entry: Entry) -> bytes:
    """One blob's plaintext, authenticated (BlobError names it when it is not)."""
    plaintext = key.open(entry.blob_id, read_at(entry.offset, entry.length), max_size=max(entry.raw_length, 1))
    if len(plaintext) != entry.raw_length:
        raise BlobError(entry.blob_id, "its length differs from the pack header's")
    return plaintext


def bytes_reader(data: bytes):
    return lambda offset, length: data[offset:offset + length]


def file_reader(fh):
    def read_at(offset: int, length: int) -> bytes:
        fh.seek(offset)
        return fh.read(length)
    return read_at
