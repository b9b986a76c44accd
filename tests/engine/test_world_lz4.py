"""LZ4 region chunks (compression type 4, ``region-file-compression=lz4``, 1.20.5+)."""
from __future__ import annotations

import io
import struct
import zlib

import pytest

from backups.engine import create_archive, verify_backup, world

from . import regions
from .conftest import FIXTURE_WORLD


class _Report:
    def __init__(self):
        self.errors, self.warnings, self.externals = [], [], []

    def error(self, message):
        self.errors.append(message)

    def warning(self, message):
        self.warnings.append(message)

    def external(self, path, kind, where):
        self.externals.append(path)


def _check(blob: bytes, name: str = "world/region/r.0.0.mca") -> tuple:
    report = _Report()
    checked = world.check_region(name, io.BytesIO(blob), len(blob), report)
    return checked, report


def _flip(data: bytes, offset: int) -> bytes:
    out = bytearray(data)
    out[offset] ^= 0x55
    return bytes(out)


@pytest.fixture
def with_checksums(monkeypatch):
    """The engine checks with the xxhash package; the test's own pure-Python
    xxHash32 must agree with it (it is what writes the test regions)."""
    import xxhash

    assert regions.xxh32(b"mcsite") == xxhash.xxh32_intdigest(b"mcsite")
    monkeypatch.setattr(world, "_xxhash", regions.PyXXHash)


def test_checksum_helper_matches_xxhash32_reference_values():
    assert [regions.xxh32(b""), regions.xxh32(b"a"), regions.xxh32(b"abc")] == [
        0x02CC5D05, 0x550D7456, 0x32D153FF]
    assert regions.xxh32(b"Nobody inspects the spammish repetition") == 0xE2293B2F


@pytest.mark.parametrize("nbt, block_size", [
    (regions.chunk_nbt(), 1 << 16),  # one block
    (regions.big_chunk_nbt(), 1 << 16),  # several 64 KiB blocks, as Minecraft writes them
    (regions.big_chunk_nbt(ints=3000), 64),  # hundreds of tiny blocks, raw and LZ4 mixed
    (bytes(range(256)) * 4, 1 << 16),  # incompressible: a raw (0x10) block
])
def test_lz4_java_stream_round_trips(nbt, block_size, with_checksums):
    stream = regions.lz4_java_stream(nbt, block_size)
    assert world.lz4_block_stream_decompress(stream) == nbt


def test_stream_framing_is_what_lz4_java_writes():
    stream = regions.lz4_java_stream(regions.big_chunk_nbt())
    magic, token, packed, length, _ = struct.unpack_from("<8sBiii", stream)
    assert (magic, token, length) == (b"LZ4Block", 0x26, 1 << 16)  # LZ4 method, level 6 = 64 KiB blocks
    assert stream[-21:] == b"LZ4Block" + bytes([0x16]) + bytes(12)  # empty raw end block


def test_region_of_lz4_chunks_is_valid():
    blob = regions.region({0: regions.lz4_chunk(), 1: regions.lz4_chunk(regions.big_chunk_nbt(1, 0)),
                           33: regions.zlib_chunk(1, 1)})
    checked, report = _check(blob)
    assert (checked, report.errors, report.warnings) == (3, [], [])


def test_real_region_resaved_as_lz4_is_valid(with_checksums):
    blob = regions.to_lz4_region((FIXTURE_WORLD / "world" / "region" / "r.1.3.mca").read_bytes())
    checked, report = _check(blob)
    assert checked == 150 and report.errors == [] and report.warnings == []


@pytest.mark.parametrize("damage, message", [
    (lambda s: _flip(s, 0), "bad magic or token"),
    (lambda s: _flip(s, 8), "bad magic or token"),  # token
    (lambda s: _flip(s, 12), "truncated inside the block"),  # top byte of the compressed length
    (lambda s: _flip(s, 16), "impossible lengths"),  # top byte of the length
    (lambda s: _flip(s, 20), "impossible lengths or checksum"),  # top byte of the masked checksum
    (lambda s: _flip(s, 21), "corrupted"),  # first LZ4 sequence token
    (lambda s: s[:-21], "no end block"),
    (lambda s: s[:-30], "truncated inside the block"),
    (lambda s: s[:10], "no end block"),
    (lambda s: s + b"\0", "1 bytes after the end of the LZ4 stream"),
    (lambda s: s[:-1] + b"\1", "end block at byte"),  # end block with a checksum
])
def test_damaged_lz4_chunk_is_an_error_naming_file_and_chunk(damage, message):
    kind, stream = regions.lz4_chunk(regions.big_chunk_nbt())
    checked, report = _check(regions.region({5: (kind, damage(stream))}))
    assert checked == 1 and report.warnings == []
    assert len(report.errors) == 1
    assert report.errors[0].startswith("world/region/r.0.0.mca: chunk (5, 0) does not decompress (")
    assert message in report.errors[0]


def test_lz4_chunk_holding_damaged_nbt_is_an_error():
    checked, report = _check(regions.region({0: regions.lz4_chunk(regions.chunk_nbt()[:-3])}))
    assert report.errors == ["world/region/r.0.0.mca: chunk (0, 0) is not valid NBT (NBT data truncated)"]


def test_lz4_block_shorter_than_its_stated_length_is_an_error():
    data = regions.big_chunk_nbt()
    stream = bytearray(regions.lz4_java_stream(data))
    struct.pack_into("<i", stream, 13, (1 << 16) - 1)  # claims one byte less than the block decodes to
    with pytest.raises(ValueError, match="corrupted"):
        world.lz4_block_stream_decompress(bytes(stream))


def test_every_single_byte_flip_is_caught_when_checksums_are_verified(with_checksums):
    stream = regions.lz4_java_stream(regions.big_chunk_nbt(ints=1000), 1024)  # 4 blocks (the hash is slow)
    for offset in range(len(stream)):
        with pytest.raises(ValueError):
            world.check_nbt_structure(world.lz4_block_stream_decompress(_flip(stream, offset)))


def test_random_damage_only_ever_raises_value_error():
    import random
    stream = regions.lz4_java_stream(regions.big_chunk_nbt(ints=3000), 256)
    rng = random.Random(4)
    for _ in range(3000):
        damaged = bytearray(stream)
        for _ in range(rng.randrange(1, 4)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        try:
            world.lz4_block_stream_decompress(bytes(damaged[:rng.randrange(len(damaged) + 1)]))
        except ValueError:
            pass


def test_custom_compression_127_is_still_only_a_warning():
    checked, report = _check(regions.region({0: (127, b"\x00\x03zzz custom payload")}))
    assert checked == 1 and report.errors == []
    assert report.warnings == ["world/region/r.0.0.mca: chunk (0, 0) uses custom compression (127); "
                               "payload not checked (unsupported compression 127)"]


def test_external_lz4_chunk_is_recognised_and_checked():
    report = _Report()
    stream = regions.lz4_java_stream(regions.big_chunk_nbt())
    world.check_external_chunk("world/region/c.0.0.mcc", io.BytesIO(stream), len(stream), None, report)
    assert report.errors == [] and report.warnings == []
    bad = stream[:-21]
    world.check_external_chunk("world/region/c.0.0.mcc", io.BytesIO(bad), len(bad), None, report)
    assert report.errors == [f"world/region/c.0.0.mcc: external chunk does not decompress "
                             f"(LZ4 stream truncated at byte {len(bad)} (no end block))"]


# --- through verify_backup ------------------------------------------------------------------------

def _world_validation(server_dir, backups_dir, files: dict):
    for rel, data in files.items():
        target = server_dir / "world" / "region" / rel
        target.unlink(missing_ok=True)  # fixture files are read-only
        target.write_bytes(data)
    result = create_archive(server_dir, backups_dir / "b.tar.zst", compression="zstd")
    return verify_backup(result.path).methods["world_validation"]


def test_verify_passes_a_world_saved_with_lz4(server_dir, backups_dir):
    source = server_dir / "world" / "region" / "r.1.3.mca"
    lz4_blob = regions.to_lz4_region(source.read_bytes())
    big = regions.region({0: regions.lz4_chunk(regions.big_chunk_nbt(224, 224)),
                          1: (4 + 128, b"")})  # oversized chunk stored in c.225.224.mcc
    mcc = regions.lz4_java_stream(regions.big_chunk_nbt(225, 224))
    world_result = _world_validation(server_dir, backups_dir,
                                     {"r.1.3.mca": lz4_blob, "r.7.7.mca": big, "c.225.224.mcc": mcc})
    assert world_result.ok, world_result.errors
    assert world_result.warnings == []
    assert not any("unsupported compression 4" in w for w in world_result.warnings)


def test_verify_fails_on_a_flipped_byte_inside_an_lz4_chunk(server_dir, backups_dir):
    blob = regions.region({0: regions.lz4_chunk(regions.big_chunk_nbt()), 1: regions.lz4_chunk()})
    damaged = _flip(blob, regions.first_chunk_payload_offset(blob) + 21)  # inside the LZ4 data
    world_result = _world_validation(server_dir, backups_dir, {"r.7.7.mca": damaged})
    assert not world_result.ok
    assert world_result.details["files_with_errors"] == ["world/region/r.7.7.mca"]
    assert world_result.errors == ["world/region/r.7.7.mca: chunk (0, 0) does not decompress "
                                   "(LZ4 block at byte 0 corrupted)"]


def test_verify_fails_on_a_truncated_lz4_stream(server_dir, backups_dir):
    kind, stream = regions.lz4_chunk(regions.big_chunk_nbt())
    blob = regions.region({0: (kind, stream[:-40]), 1: regions.lz4_chunk()})
    world_result = _world_validation(server_dir, backups_dir, {"r.7.7.mca": blob})
    assert not world_result.ok
    assert world_result.details["files_with_errors"] == ["world/region/r.7.7.mca"]
    assert len(world_result.errors) == 1
    assert world_result.errors[0].startswith("world/region/r.7.7.mca: chunk (0, 0) does not decompress "
                                             "(LZ4 stream truncated")


def test_zlib_and_lz4_chunks_mix_in_one_region(server_dir, backups_dir):
    nbt = regions.chunk_nbt()
    blob = regions.region({0: (2, zlib.compress(nbt)), 1: regions.lz4_chunk(nbt), 2: (3, nbt)})
    world_result = _world_validation(server_dir, backups_dir, {"r.7.7.mca": blob})
    assert world_result.ok and world_result.warnings == []
