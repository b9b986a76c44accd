"""Decompression keeps memory flat whatever the ratio (zstd bombs included) and still
reads every legitimate zstd layout: several frames, skippable frames, zero padding."""
from __future__ import annotations

import io
import tracemalloc

import pytest
import zstandard

from backups.engine import create_archive, verify_backup
from backups.engine.compress import DecompressingReader
from backups.engine.errors import EngineError

MiB = 1024 * 1024
PEAK_LIMIT = 64 * MiB  # generous: the reader itself needs ~3 MiB


def _zeros_zstd(mib: int) -> bytes:
    """``mib`` MiB of zeros as one zstd frame, compressed 1 MiB at a time (a few KB out)."""
    comp = zstandard.ZstdCompressor(level=3, write_checksum=True).compressobj()
    zero = bytes(MiB)
    return b"".join([comp.compress(zero) for _ in range(mib)] + [comp.flush()])


def _rle_bomb(blocks: int, byte: int = 7) -> bytes:
    """The worst ratio zstd allows: 4-byte RLE blocks of 128 KiB each (32768:1).
    With the old one-call-per-256-KiB-read reader, 256 KiB of this was 8 GiB of output."""
    out = bytearray(b"\x28\xb5\x2f\xfd\x00\x38")  # frame header: no checksum, 128 KiB window
    for i in range(blocks):
        head = (i == blocks - 1) | (1 << 1) | ((128 * 1024) << 3)
        out += head.to_bytes(3, "little") + bytes([byte])
    return bytes(out)


def _drain(reader, check_byte: int | None = None) -> int:
    total = 0
    while part := reader.read(MiB):
        if check_byte is not None:
            assert part.count(check_byte) == len(part)
        total += len(part)
    return total


def _peak(fn):
    tracemalloc.start()
    try:
        result = fn()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("blob, size, byte", [
    (_zeros_zstd(200), 200 * MiB, 0),
    (_rle_bomb(1600), 200 * MiB, 7),
])
def test_zstd_bomb_streams_with_flat_memory(blob, size, byte):
    assert len(blob) < 16 * 1024
    total, peak = _peak(lambda: _drain(DecompressingReader(io.BytesIO(blob), "zstd"), byte))
    assert total == size
    assert peak < PEAK_LIMIT, f"peak {peak / MiB:.1f} MiB"


def test_verify_of_a_200_mb_zero_file_archive_works_with_flat_memory(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    with open(source / "zeros.bin", "wb") as fh:
        fh.truncate(200 * MiB)  # sparse: nothing held in memory or written to disk
    result = create_archive(source, tmp_path / "zeros.tar.zst", compression="zstd")
    assert result.size_bytes < 1 * MiB
    report, peak = _peak(lambda: verify_backup(result.path, expected_sha256=result.sha256))
    assert report.ok, report.to_dict()
    assert report.methods["archive_integrity"].ok and report.methods["checksum"].ok
    assert peak < PEAK_LIMIT, f"peak {peak / MiB:.1f} MiB"


class _OneByteAtATime:
    def __init__(self, data: bytes):
        self._f = io.BytesIO(data)

    def read(self, n: int = -1) -> bytes:
        return self._f.read(1)


def _layouts() -> tuple:
    frame_a = zstandard.ZstdCompressor(level=1).compress(b"a" * 1000)
    skippable = b"\x50\x2a\x4d\x18" + (5).to_bytes(4, "little") + b"hello"
    frame_b = zstandard.ZstdCompressor(write_content_size=False, write_checksum=True).compress(
        bytes(range(256)) * 2000 + b"b" * 300_000)
    return frame_a + skippable + frame_b, b"a" * 1000 + bytes(range(256)) * 2000 + b"b" * 300_000


@pytest.mark.parametrize("padding", [b"", bytes(700)])
@pytest.mark.parametrize("source", [io.BytesIO, _OneByteAtATime])
def test_zstd_frames_skippable_frames_and_zero_padding_read_back(source, padding):
    blob, expected = _layouts()
    assert DecompressingReader(source(blob + padding), "zstd").read() == expected


def test_zstd_truncated_anywhere_inside_a_frame_raises():
    blob, _ = _layouts()
    frame_end = len(zstandard.ZstdCompressor(level=1).compress(b"a" * 1000))
    skippable_end = frame_end + 13
    cuts = list(range(1, len(blob), 97)) + [len(blob) - 1, frame_end - 1, frame_end + 3, skippable_end + 5]
    for cut in cuts:
        if cut in (frame_end, skippable_end):
            continue  # a frame boundary: a valid, shorter stream
        with pytest.raises(EngineError, match="truncated|corrupted"):
            _drain(DecompressingReader(io.BytesIO(blob[:cut]), "zstd"))


def test_zstd_damage_is_corruption():
    blob = zstandard.ZstdCompressor(write_checksum=True).compress(bytes(range(256)) * 4000)
    for offset in (4, len(blob) // 2, len(blob) - 2):
        damaged = bytearray(blob)
        damaged[offset] ^= 0x55
        with pytest.raises(EngineError, match="zstd data corrupted|truncated"):
            _drain(DecompressingReader(io.BytesIO(bytes(damaged)), "zstd"))
    with pytest.raises(EngineError, match="zstd data corrupted"):
        _drain(DecompressingReader(io.BytesIO(blob + b"garbage!"), "zstd"))
