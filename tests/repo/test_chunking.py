"""Cutting files into repository blobs (issue #14, item 2): every file of the
fixture world and of generated ones comes back byte for byte from its
pieces; a region file is cut at chunk boundaries so an unchanged chunk is the
same blob after the game moved it; LZ4 (1.20.5+) and external chunks,
empty and header-only region files, and headers that cannot be trusted all
round-trip; large files are cut by FastCDC so an insertion moves only the
cuts near it."""

import hashlib
import os
import random
import struct
from pathlib import Path

import pytest

from backups.repo import chunking
from backups.repo.chunking import HEADER, SECTOR, FileChanged, Piece, pieces, region_layout

WORLD = Path(__file__).resolve().parents[1] / "fixtures" / "worlds" / "vanilla-1.14.4" / "world"


def _rebuild(path) -> tuple[bytes, list[Piece]]:
    cut = list(pieces(path))
    position = 0
    for piece, data in cut:
        assert piece.offset == position and piece.length == len(data)
        position = piece.end
    return b"".join(data for _, data in cut), [piece for piece, _ in cut]


def _digests(path, kind="chunk") -> set[str]:
    return {hashlib.sha256(data).hexdigest() for piece, data in pieces(path) if piece.kind == kind}


def test_every_file_of_the_fixture_world_comes_back_byte_for_byte():
    chunks = 0
    for path in sorted(p for p in WORLD.rglob("*") if p.is_file()):
        data, cut = _rebuild(path)
        assert data == path.read_bytes(), path
        if chunking.is_region_file(path.name) and path.stat().st_size:
            assert cut[0].kind == "header", path  # cut at chunk boundaries, not as a whole file
            chunks += sum(p.kind == "chunk" for p in cut)
    assert chunks > 100


def _region(chunks: dict[int, tuple[int, bytes]], *, size_sectors: int | None = None, stale=b"") -> bytes:
    """A region file: {index: (first sector, record payload)}; each record is
    length + compression byte + data, padded to whole sectors (with ``stale``
    bytes first, as an older chunk leaves them)."""
    header = bytearray(HEADER)
    body = {}
    for index, (sector, payload) in chunks.items():
        record = struct.pack(">I", len(payload)) + payload
        count = -(-len(record) // SECTOR)
        padding = (stale + bytes(count * SECTOR))[: count * SECTOR - len(record)]
        body[sector] = record + padding
        header[index * 4:index * 4 + 4] = sector.to_bytes(3, "big") + bytes([count])
        header[4096 + index * 4:4096 + index * 4 + 4] = struct.pack(">I", 1_700_000_000 + index)
    end = max((s * SECTOR + len(b) for s, b in body.items()), default=HEADER)
    out = bytearray(max(end, (size_sectors or 0) * SECTOR))
    out[:HEADER] = header
    for sector, data in body.items():
        out[sector * SECTOR:sector * SECTOR + len(data)] = data
    return bytes(out)


def _payload(seed: int, size: int, compression: int = 2) -> bytes:
    rng = random.Random(seed)
    return bytes([compression]) + rng.randbytes(size)


def test_a_chunk_the_game_moved_is_the_same_blob(tmp_path):
    a, b, c = _payload(1, 5000), _payload(2, 12000), _payload(3, 300)
    before = tmp_path / "r.0.0.mca"
    before.write_bytes(_region({0: (2, a), 1: (4, b), 33: (8, c)}, stale=b"OLD" * 50))
    after = tmp_path / "r.0.1.mca"  # chunk 1 rewritten and moved to the end; the others moved down
    after.write_bytes(_region({0: (3, a), 1: (20, _payload(9, 12000)), 33: (2, c)}, size_sectors=24))
    for path in (before, after):
        assert _rebuild(path)[0] == path.read_bytes()
    kept = _digests(before) & _digests(after)
    assert kept == {hashlib.sha256(struct.pack(">I", len(p)) + p).hexdigest() for p in (a, c)}
    kinds = [p.kind for p in _rebuild(after)[1]]
    assert kinds[0] == "header" and kinds.count("chunk") == 3 and "gap" in kinds and "padding" in kinds


def test_lz4_and_external_chunks_empty_and_header_only_files_round_trip(tmp_path):
    lz4 = _payload(4, 7000, compression=4)  # 1.20.5+: LZ4
    external = bytes([2 | 128])  # the data is in c.<x>.<z>.mcc beside it
    files = {
        "r.1.1.mca": _region({5: (2, lz4), 6: (5, external)}),
        "r.2.2.mca": b"",
        "r.3.3.mca": bytes(HEADER),
        "c.0.6.mcc": random.Random(5).randbytes(3 * 1024 * 1024 + 17),
        "level.dat": random.Random(6).randbytes(900),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        assert _rebuild(tmp_path / name)[0] == data, name
    assert [p.kind for p in _rebuild(tmp_path / "r.3.3.mca")[1]] == ["header"]
    assert {p.kind for p in _rebuild(tmp_path / "c.0.6.mcc")[1]} == {"cdc"}
    assert [p.kind for p in _rebuild(tmp_path / "level.dat")[1]] == ["whole"]


@pytest.mark.parametrize("damage", ["inside the header", "overlapping", "past the end", "no sectors"])
def test_a_header_that_cannot_be_trusted_is_cut_like_any_file(tmp_path, damage):
    data = bytearray(_region({0: (2, _payload(7, 9000)), 1: (5, _payload(8, 100))}))
    entry = {"inside the header": (1, 1), "overlapping": (3, 1), "past the end": (900, 1), "no sectors": (7, 0)}[damage]
    data[8:12] = entry[0].to_bytes(3, "big") + bytes([entry[1]])
    assert region_layout(bytes(data[:HEADER]), len(data)) is None
    path = tmp_path / "r.0.0.mca"
    path.write_bytes(bytes(data))
    rebuilt, cut = _rebuild(path)
    assert rebuilt == bytes(data) and {p.kind for p in cut} <= {"whole", "cdc"}


def test_fastcdc_moves_only_the_cuts_near_an_insertion(tmp_path):
    rng = random.Random(11)
    original = rng.randbytes(24 * 1024 * 1024)
    (tmp_path / "big.bin").write_bytes(original)
    (tmp_path / "edited.bin").write_bytes(original[:5_000_000] + b"inserted" + original[5_000_000:])
    first, second = _digests(tmp_path / "big.bin", "cdc"), _digests(tmp_path / "edited.bin", "cdc")
    assert len(first) >= 8
    assert len(first - second) <= 2, "only the pieces around the insertion change"
    for piece in _rebuild(tmp_path / "edited.bin")[1]:
        assert piece.length <= chunking.CDC_MAX


def test_a_file_that_grows_while_it_is_cut_is_refused(tmp_path):
    path = tmp_path / "growing.log"
    path.write_bytes(b"x" * 1000)
    cut = pieces(path)
    next(cut)
    with open(path, "ab") as fh:
        fh.write(b"more")
    with pytest.raises(FileChanged):
        list(cut)
    os.remove(path)
