"""Digests computed the way the remote side computes them, with bounded buffers.

S3's checksum of a multipart object uploaded with ``ChecksumAlgorithm=SHA256``
is *composite*: ``base64(sha256(d1 + d2 + … + dN)) + "-N"`` where ``dI`` is the
raw 32-byte SHA-256 of part I. ``composite_sha256`` computes the same string
from the local file, so a copy is checked without downloading it again.
"""
from __future__ import annotations

import base64
import hashlib
import math
import os
from dataclasses import dataclass, field

MIB = 1024 * 1024
READ_CHUNK = 1 * MIB          # every read of a file, local or remote, is at most this
MIN_PART_SIZE = 5 * MIB       # S3's smallest part (except the last one)
DEFAULT_PART_SIZE = 16 * MIB
MAX_PARTS = 10_000            # S3's most parts per upload


def choose_part_size(file_size: int, requested: int | None = None) -> int:
    """The part size for ``file_size``: ``requested`` (default 16 MiB), doubled
    until the file fits in 10 000 parts."""
    part_size = int(requested or DEFAULT_PART_SIZE)
    if part_size < MIN_PART_SIZE:
        raise ValueError(f"part size must be at least {MIN_PART_SIZE} bytes")
    while math.ceil(file_size / part_size) > MAX_PARTS:
        part_size *= 2
    return part_size


def part_ranges(file_size: int, part_size: int) -> list[tuple[int, int, int]]:
    """``(part_number, offset, length)`` for each part; an empty file is one empty part."""
    if file_size == 0:
        return [(1, 0, 0)]
    return [(i + 1, off, min(part_size, file_size - off))
            for i, off in enumerate(range(0, file_size, part_size))]


def composite_from_digests(digests: list[bytes]) -> str:
    joined = hashlib.sha256(b"".join(digests)).digest()
    return f"{base64.b64encode(joined).decode()}-{len(digests)}"


@dataclass
class FileDigests:
    size: int
    sha256: str                      # hex, of the whole file
    part_size: int
    part_digests: list[bytes] = field(default_factory=list)

    @property
    def composite(self) -> str:
        return composite_from_digests(self.part_digests)


def file_digests(path: str | os.PathLike, part_size: int) -> FileDigests:
    """One pass over ``path``: the whole-file SHA-256 and each part's SHA-256."""
    size = os.stat(path).st_size
    whole = hashlib.sha256()
    digests = []
    with open(path, "rb") as fh:
        for _number, _offset, length in part_ranges(size, part_size):
            part = hashlib.sha256()
            left = length
            while left:
                chunk = fh.read(min(READ_CHUNK, left))
                if not chunk:
                    raise OSError(f"{path} became shorter while it was read")
                part.update(chunk)
                whole.update(chunk)
                left -= len(chunk)
            digests.append(part.digest())
    return FileDigests(size=size, sha256=whole.hexdigest(), part_size=part_size, part_digests=digests)


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


class FileWindow:
    """A read-only, seekable view of ``length`` bytes of a file from ``start``:
    the body of one S3 part, streamed from disk (botocore reads it in 1 MiB
    pieces to sign it and again to send it; it seeks back to retry)."""

    def __init__(self, path: str | os.PathLike, start: int, length: int):
        self._fh = open(path, "rb")
        self._start = start
        self._length = length
        self._pos = 0
        self._fh.seek(start)

    def __len__(self) -> int:
        return self._length

    def read(self, size: int | None = -1) -> bytes:
        left = self._length - self._pos
        if size is None or size < 0 or size > left:
            size = left
        size = min(size, READ_CHUNK)
        data = self._fh.read(size)
        self._pos += len(data)
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._length}[whence]
        self._pos = max(0, min(self._length, base + offset))
        self._fh.seek(self._start + self._pos)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        self._fh.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
