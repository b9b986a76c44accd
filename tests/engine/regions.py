"""Hand-built Anvil region files for world-validation tests."""
from __future__ import annotations

import io
import struct
import zlib

import nbtlib
from nbtlib import Compound, Int, String

SECTOR = 4096


def chunk_nbt(x: int = 0, z: int = 0) -> bytes:
    buf = io.BytesIO()
    nbtlib.File({"DataVersion": Int(1976), "Level": Compound({"xPos": Int(x), "zPos": Int(z),
                                                             "Status": String("full")})}).write(buf)
    return buf.getvalue()


def region(chunks: dict, *, pad: bool = True) -> bytes:
    """``chunks``: {index: (kind, payload)} or {index: raw bytes placed as-is after the length}."""
    header = bytearray(2 * SECTOR)
    body = bytearray()
    sector = 2
    for index, (kind, payload) in sorted(chunks.items()):
        data = struct.pack(">IB", len(payload) + 1, kind) + payload
        count = -(-len(data) // SECTOR)
        if pad:
            data += bytes(count * SECTOR - len(data))
        struct.pack_into(">I", header, 4 * index, (sector << 8) | count)
        body += data
        sector += count
    return bytes(header + body)


def zlib_chunk(x: int = 0, z: int = 0):
    return (2, zlib.compress(chunk_nbt(x, z)))


def set_location(blob: bytes, index: int, offset: int, count: int) -> bytes:
    out = bytearray(blob)
    struct.pack_into(">I", out, 4 * index, (offset << 8) | count)
    return bytes(out)


def first_chunk_payload_offset(blob: bytes) -> int:
    """Byte offset of the first present chunk's compressed payload."""
    for index in range(1024):
        loc = struct.unpack_from(">I", blob, 4 * index)[0]
        if loc:
            return (loc >> 8) * SECTOR + 5
    raise ValueError("empty region")
