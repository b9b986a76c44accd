from __future__ import annotations

import io
import random
import struct
import zlib

import nbtlib
import pytest

from backups.engine import world

from .conftest import FIXTURE_WORLD


def _fixture_chunks(limit: int = 200) -> list:
    chunks = []
    for path in sorted((FIXTURE_WORLD / "world").rglob("*.mca")):
        blob = path.read_bytes()
        for index in range(len(blob) and 1024):
            loc = struct.unpack_from(">I", blob, 4 * index)[0]
            if loc:
                start = (loc >> 8) * 4096
                length = struct.unpack_from(">I", blob, start)[0]
                chunks.append(zlib.decompress(blob[start + 5:start + 4 + length]))
                if len(chunks) >= limit:
                    return chunks
    return chunks


def test_structure_walker_accepts_every_real_chunk_that_nbtlib_parses():
    for raw in _fixture_chunks():
        nbtlib.File.parse(io.BytesIO(raw))
        world.check_nbt_structure(raw)


def test_structure_walker_rejects_every_truncation_and_trailing_bytes():
    raw = max(_fixture_chunks(), key=len)
    for cut in range(0, len(raw), 7):
        with pytest.raises(ValueError):
            world.check_nbt_structure(raw[:cut])
    with pytest.raises(ValueError, match="after the end"):
        world.check_nbt_structure(raw + b"\x00")


def test_structure_walker_only_raises_value_error_on_random_damage():
    raw = _fixture_chunks(1)[0]
    rng = random.Random(7)
    for _ in range(2000):
        damaged = bytearray(raw)
        damaged[rng.randrange(len(damaged))] ^= rng.randrange(1, 256)
        try:
            world.check_nbt_structure(bytes(damaged))
        except ValueError:
            pass


def test_level_dat_of_the_fixture_world():
    info = world.parse_level_dat((FIXTURE_WORLD / "world" / "level.dat").read_bytes())
    assert info == {"level_name": "world", "minecraft_version": "1.14.4", "data_version": 1976}


# --- caps on untrusted expansion (world.MAX_*) ------------------------------------------------------

def test_inflate_accepts_what_zlib_and_gzip_accept_and_stops_at_the_limit():
    import gzip

    from . import bombs

    data = bytes(range(256)) * 100
    assert world._inflate(zlib.compress(data) + b"trailing", gzip_wrapped=False, limit=1 << 20) == data
    two_members = gzip.compress(data[:1000]) + gzip.compress(data[1000:]) + bytes(10)
    assert world._inflate(two_members, gzip_wrapped=True, limit=1 << 20) == gzip.decompress(two_members)
    with pytest.raises(EOFError):
        world._inflate(zlib.compress(data)[:-10], gzip_wrapped=False, limit=1 << 20)
    with pytest.raises(zlib.error):
        world._inflate(gzip.compress(data) + b"garbage!", gzip_wrapped=True, limit=1 << 20)
    with pytest.raises(world.LimitExceeded, match="decompresses to more than 1 MiB"):
        world._inflate(bombs.gzip_zeros(2), gzip_wrapped=True, limit=1 << 20)
    with pytest.raises(world.LimitExceeded, match="decompresses to more than 1 MiB"):
        world._inflate(gzip.compress(bytes(600_000)) * 2, gzip_wrapped=True, limit=1 << 20)  # across members
    assert len(world._inflate(bombs.gzip_zeros(1), gzip_wrapped=True, limit=1 << 20)) == 1 << 20


def test_lz4_stream_total_is_capped_before_each_block_is_decoded():
    from . import bombs

    assert len(world.lz4_block_stream_decompress(bombs.lz4_java_zeros(1))) == world.MAX_NBT_BYTES
    with pytest.raises(world.LimitExceeded, match="decompresses to more than 32 MiB"):
        world.lz4_block_stream_decompress(bombs.lz4_java_zeros(2))


def _nbt_list_of_empty_compounds(count: int) -> bytes:
    """root {"Data": [ {}, {}, ... ]}: one byte per tag, one Python object per tag in nbtlib."""
    return b"\x0a\x00\x00\x09\x00\x04Data\x0a" + struct.pack(">i", count) + bytes(count) + b"\x00"


def test_nbt_files_with_too_many_tags_are_refused_before_nbtlib_builds_them():
    import gzip

    blob = gzip.compress(_nbt_list_of_empty_compounds(1_000_000))  # ~1 KB; ~75 MB and ~7 s in nbtlib
    with pytest.raises(world.LimitExceeded, match="holds more than 200000 NBT tags"):
        world.parse_level_dat(blob)
    with pytest.raises(world.LimitExceeded, match="holds more than 200000 NBT tags"):
        world.check_nbt_file(blob)
