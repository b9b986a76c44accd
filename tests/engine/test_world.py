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
