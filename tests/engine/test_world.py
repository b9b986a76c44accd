from __future__ import annotations

import io
import random
import struct
import zlib

import nbtlib
import pytest

from backups.engine import codecs, world

from . import nbt_reference
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


def _outcome(check, data: bytes) -> str:
    try:
        check(data)
    except ValueError as exc:
        return f"refused: {exc}"
    return "accepted"


def _damaged(rng: random.Random, raw: bytes) -> bytes:
    """A chunk with one to three random changes: bytes replaced, bits flipped, cut out or inserted."""
    data = bytearray(raw)
    for _ in range(rng.randint(1, 3)):
        roll, at = rng.random(), rng.randrange(len(data))
        if roll < 0.5:
            data[at] = rng.randrange(256)
        elif roll < 0.7:
            data[at] ^= 1 << rng.randrange(8)
        elif roll < 0.85:
            del data[at:at + rng.randint(1, 8)]
        else:
            data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
    return bytes(data)


def test_structure_walker_judges_damaged_chunks_exactly_as_the_recursive_walker_did():
    """Issue #16 made the walker iterative and faster; the report must stay as strict:
    on thousands of damaged real chunks (1.14.4: lists of lists, palettes, tile
    entities) it accepts and refuses the same bytes, with the same reason."""
    chunks = _fixture_chunks()
    rng = random.Random(16)
    for _ in range(4000):
        data = _damaged(rng, rng.choice(chunks))
        assert _outcome(world.check_nbt_structure, data) == _outcome(nbt_reference.check_nbt_structure, data)


def _root(payload: bytes) -> bytes:
    return b"\x0a\x00\x00" + payload + b"\x00"


@pytest.mark.parametrize("depth, accepted", [(255, True), (256, True), (257, False), (3000, False)])
def test_compounds_and_lists_nested_past_the_limit_are_refused_without_recursion(depth, accepted):
    compounds = _root(b"\x0a\x00\x00" * depth + b"\x00" * depth)
    in_lists = _root(b"\x09\x00\x01a" + b"\x09\x00\x00\x00\x01" * (depth - 1) + b"\x0a\x00\x00\x00\x01\x00")
    for data in (compounds, in_lists):
        assert _outcome(world.check_nbt_structure, data) == ("accepted" if accepted else
                                                             "refused: NBT nested too deeply")
        if depth < 500:  # deeper, the recursive walker overflowed Python's stack on the lists
            assert _outcome(nbt_reference.check_nbt_structure, data) == _outcome(world.check_nbt_structure, data)


def test_lists_of_lists_nested_thousands_deep_are_refused_not_a_recursion_error():
    """The recursive walker raised RecursionError here (lists hold no compound, so
    its depth check never ran); a world check then ended with an exception."""
    data = _root(b"\x09\x00\x01a" + b"\x09\x00\x00\x00\x01" * 3000 + b"\x01\x00\x00\x00\x00")
    with pytest.raises(RecursionError):
        nbt_reference.check_nbt_structure(data)
    assert _outcome(world.check_nbt_structure, data) == "refused: NBT nested too deeply"


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
    with pytest.raises((EOFError, *codecs.ERRORS)):  # zlib refuses the header at once, ISA-L waits for the rest
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
