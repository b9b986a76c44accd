"""Hand-built Anvil region files for world-validation tests."""
from __future__ import annotations

import io
import struct
import zlib

import lz4.block
import nbtlib
from nbtlib import Compound, Int, IntArray, String

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


def big_chunk_nbt(x: int = 0, z: int = 0, ints: int = 40_000) -> bytes:
    """A compressible chunk of ~160 KB: more than one 64 KiB LZ4 block."""
    buf = io.BytesIO()
    nbtlib.File({"DataVersion": Int(3953), "xPos": Int(x), "zPos": Int(z), "Status": String("minecraft:full"),
                 "Heights": IntArray([i % 17 for i in range(ints)])}).write(buf)
    return buf.getvalue()


_P1, _P2, _P3, _P4, _P5 = 2654435761, 2246822519, 3266489917, 668265263, 374761393
_M32 = 0xFFFFFFFF


def _rotl(v: int, r: int) -> int:
    return ((v << r) | (v >> (32 - r))) & _M32


def xxh32(data: bytes, seed: int = 0) -> int:
    """Pure-Python xxHash32 (slow; for test data only)."""
    n, i = len(data), 0
    if n >= 16:
        lanes = [(seed + _P1 + _P2) & _M32, (seed + _P2) & _M32, seed & _M32, (seed - _P1) & _M32]
        while i <= n - 16:
            for k in range(4):
                word = int.from_bytes(data[i + 4 * k:i + 4 * k + 4], "little")
                lanes[k] = (_rotl((lanes[k] + word * _P2) & _M32, 13) * _P1) & _M32
            i += 16
        h = (_rotl(lanes[0], 1) + _rotl(lanes[1], 7) + _rotl(lanes[2], 12) + _rotl(lanes[3], 18)) & _M32
    else:
        h = (seed + _P5) & _M32
    h = (h + n) & _M32
    while i + 4 <= n:
        h = (_rotl((h + int.from_bytes(data[i:i + 4], "little") * _P3) & _M32, 17) * _P4) & _M32
        i += 4
    while i < n:
        h = (_rotl((h + data[i] * _P5) & _M32, 11) * _P1) & _M32
        i += 1
    h = ((h ^ (h >> 15)) * _P2) & _M32
    h = ((h ^ (h >> 13)) * _P3) & _M32
    return h ^ (h >> 16)


class PyXXHash:
    """The test's xxHash32 in the xxhash package's shape (engine checks with either)."""

    @staticmethod
    def xxh32_intdigest(data, seed=0):
        return xxh32(bytes(data), seed)


LZ4_SEED = 0x9747B28C


def lz4_java_stream(data: bytes, block_size: int = 1 << 16) -> bytes:
    """What lz4-java's ``new LZ4BlockOutputStream(out)`` (Minecraft's type 4) writes:
    blocks of <= ``block_size`` bytes (raw when LZ4 does not shrink them), then an empty end block."""
    level = max(0, (block_size - 1).bit_length() - 10)
    out = bytearray()
    for start in range(0, len(data), block_size):
        block = data[start:start + block_size]
        packed = lz4.block.compress(block, store_size=False)
        method = 0x20
        if len(packed) >= len(block):
            method, packed = 0x10, block
        check = xxh32(block, LZ4_SEED) & 0x0FFFFFFF
        out += b"LZ4Block" + struct.pack("<Biii", method | level, len(packed), len(block), check) + packed
    return bytes(out + b"LZ4Block" + struct.pack("<Biii", 0x10 | level, 0, 0, 0))


def lz4_chunk(nbt: bytes | None = None, block_size: int = 1 << 16):
    return (4, lz4_java_stream(chunk_nbt() if nbt is None else nbt, block_size))


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


def to_lz4_region(blob: bytes) -> bytes:
    """The same region re-saved with ``region-file-compression=lz4`` (every chunk type 4)."""
    chunks = {}
    for index in range(1024):
        loc = struct.unpack_from(">I", blob, 4 * index)[0]
        if loc:
            start = (loc >> 8) * SECTOR
            length, kind = struct.unpack_from(">IB", blob, start)
            payload = blob[start + 5:start + 4 + length]
            raw = {1: lambda p: zlib.decompress(p, 31), 2: zlib.decompress, 3: bytes}[kind](payload)
            chunks[index] = (4, lz4_java_stream(raw))
    return region(chunks)
