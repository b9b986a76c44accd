"""Cutting files into blobs for the repository (issue #14, item 2).

* **Region files** (``.mca``/``.mcr``: the world's ``region/``, and
  ``entities/`` and ``poi/`` since 1.14/1.17) are cut where Minecraft cuts
  them: the 8 KiB header (1024 sector locations, 1024 timestamps); each
  chunk's record (a 4-byte length, a compression byte — zlib, gzip, none,
  LZ4 since 1.20.5 or an external ``.mcc`` — and its data); the rest of its
  last sector (``padding``, often stale bytes of an older chunk); and any
  bytes no header entry claims (``gap``). An unchanged chunk is then the same
  blob wherever the game moved it inside the file, and in any other file.
  A header that does not describe a sound file (an entry inside the header,
  entries that overlap, a record longer than its sectors) is not trusted:
  that file is cut like any other file.
* **Large files** (``.mcc`` oversized chunks, anything else over
  SMALL_FILE) are cut by FastCDC (pyfastcdc, about 1 MiB pieces), so an
  insertion moves only the cuts near it.
* **Small files** are one blob.

``pieces(path)`` yields ``(Piece, bytes)`` in file order, reading each byte
once, never more than one piece (≤ 4 MiB) in memory; their concatenation is
the file, byte for byte (a file that changes size while it is read raises
FileChanged).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import BinaryIO, Iterator

SECTOR = 4096
HEADER = 2 * SECTOR
ENTRIES = 1024
REGION_SUFFIXES = (".mca", ".mcr")
SMALL_FILE = 512 * 1024
CDC_AVG, CDC_MIN, CDC_MAX = 1024 * 1024, 256 * 1024, 4 * 1024 * 1024


class FileChanged(Exception):
    """The file grew or shrank while it was cut (a live server wrote it)."""


@dataclass(frozen=True)
class Piece:
    offset: int
    length: int
    kind: str  # header, chunk, padding, gap, cdc, whole

    @property
    def end(self) -> int:
        return self.offset + self.length


def is_region_file(name: str) -> bool:
    return name.lower().endswith(REGION_SUFFIXES)


def region_layout(header: bytes, size: int, read_length=None) -> list[Piece] | None:
    """The pieces of a region file of ``size`` bytes whose first 8 KiB are
    ``header``; None when the header cannot be trusted. ``read_length(offset)``
    returns the 4-byte big-endian record length stored at a chunk's first
    sector (None: keep the whole sectors as one chunk piece)."""
    if size < HEADER or len(header) < HEADER:
        return None
    spans = []
    for index in range(ENTRIES):
        entry = header[index * 4:index * 4 + 4]
        sector, count = int.from_bytes(entry[:3], "big"), entry[3]
        if sector == 0 and count == 0:
            continue  # no chunk here
        if sector < 2 or count == 0:
            return None  # inside the header, or an entry without sectors
        start = sector * SECTOR
        if start >= size:
            return None  # points past the end of the file
        spans.append((start, min(start + count * SECTOR, size)))
    spans.sort()
    pieces = [Piece(0, HEADER, "header")]
    position = HEADER
    for start, end in spans:
        if start < position:
            return None  # overlapping entries
        if start > position:
            pieces.append(Piece(position, start - position, "gap"))
        record = read_length(start) if read_length is not None else None
        if record is not None and 0 < record and 4 + record <= end - start:
            pieces.append(Piece(start, 4 + record, "chunk"))
            if start + 4 + record < end:
                pieces.append(Piece(start + 4 + record, end - start - 4 - record, "padding"))
        else:
            pieces.append(Piece(start, end - start, "chunk"))
        position = end
    if position < size:
        pieces.append(Piece(position, size - position, "gap"))
    return pieces


def _read_exactly(fh: BinaryIO, length: int) -> bytes:
    data = fh.read(length)
    if len(data) != length:
        raise FileChanged(f"expected {length} more bytes, got {len(data)}")
    return data


def _region_pieces(fh: BinaryIO, size: int) -> list[Piece] | None:
    header = fh.read(HEADER)
    fh.seek(0)

    def read_length(offset: int) -> int | None:
        fh.seek(offset)
        raw = fh.read(4)
        return int.from_bytes(raw, "big") if len(raw) == 4 else None

    try:
        return region_layout(header, size, read_length)
    finally:
        fh.seek(0)


def cdc_pieces(fh: BinaryIO) -> Iterator[tuple[Piece, bytes]]:
    from pyfastcdc import FastCDC

    for chunk in FastCDC(CDC_AVG, min_size=CDC_MIN, max_size=CDC_MAX).cut_stream(fh):
        yield Piece(chunk.offset, chunk.length, "cdc"), bytes(chunk.data)


def pieces(path, *, name: str | None = None) -> Iterator[tuple[Piece, bytes]]:
    """The file's pieces with their bytes, in order (see the module's text)."""
    name = name or os.path.basename(os.fspath(path))
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        layout = _region_pieces(fh, size) if is_region_file(name) else None
        if layout is not None:
            for piece in layout:
                yield piece, _read_exactly(fh, piece.length)
        elif size > SMALL_FILE:
            done = 0
            for piece, data in cdc_pieces(fh):
                done += len(data)
                yield piece, data
            if done != size:
                raise FileChanged(f"read {done} bytes of {size}")
        else:
            data = fh.read(size + 1)
            if len(data) != size:
                raise FileChanged(f"read {len(data)} bytes of {size}")
            yield Piece(0, size, "whole"), data
        if fh.read(1):
            raise FileChanged("the file grew while it was read")
