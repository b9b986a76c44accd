"""The C NBT walker (issue #16): what verification runs on every chunk. It must
judge every byte string exactly as the Python walker does, verdict and reason,
and without it the engine must say so once and walk in Python."""
from __future__ import annotations

import json
import random
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from backups.engine import world, worldcheck

from .test_world import _damaged, _fixture_chunks

ROOT = Path(__file__).resolve().parents[2]


def test_the_c_walker_is_what_runs_here():
    """`make venv` builds it; a silent fallback would hide a broken build (and triple verify's time)."""
    assert world.NATIVE_WALKER_ERROR is None
    assert world._walk is world._walk_native
    assert world.describe_walker() == "C (native/libnbtwalk.so)"
    # walks in C use every core from threads: no helper processes (and their memory) by default
    assert worldcheck.PROCESS_AFTER_BYTES is None


def _outcome(walk, data: bytes) -> str:
    """check_nbt_structure's verdict with ``walk`` as its walker."""
    saved = world._walk
    world._walk = walk
    try:
        world.check_nbt_structure(data)
    except ValueError as exc:
        return f"refused: {exc}"
    finally:
        world._walk = saved
    return "accepted"


def _same(data: bytes) -> str:
    native = _outcome(world._walk_native, data)
    assert native == _outcome(world._walk_python, data), data[:64]
    return native


# --- random NBT of every tag type, nested compounds, lists of lists --------------------------------

def _name(rng) -> bytes:
    raw = bytes(rng.randrange(97, 123) for _ in range(rng.randint(0, 6)))
    return struct.pack(">H", len(raw)) + raw


def _payload(rng, tag: int, depth: int) -> bytes:
    if tag in (1, 2, 3, 4, 5, 6):
        return bytes(rng.randrange(256) for _ in range((0, 1, 2, 4, 8, 4, 8)[tag]))
    if tag == 8:
        return _name(rng)
    if tag in (7, 11, 12):
        count = rng.randint(0, 5)
        return struct.pack(">i", count) + bytes(rng.randrange(256) for _ in range(count * {7: 1, 11: 4, 12: 8}[tag]))
    if tag == 10:
        return _compound_body(rng, depth + 1)
    # a list: of any type (End only when empty), sometimes with a negative count (read as empty)
    item = rng.randrange(0, 13) if depth < 6 else rng.choice((1, 3, 8, 11))
    count = 0 if item == 0 else rng.randint(0, 4)
    if count == 0 and rng.random() < 0.2:
        return bytes([item]) + struct.pack(">i", -rng.randint(1, 1 << 31))
    return bytes([item]) + struct.pack(">i", count) + b"".join(_payload(rng, item, depth + 1) for _ in range(count))


def _compound_body(rng, depth: int) -> bytes:
    parts = []
    for _ in range(rng.randint(0, 5 if depth < 6 else 2)):
        tag = rng.randrange(1, 13) if depth < 6 else rng.choice((1, 4, 7, 8))
        parts.append(bytes([tag]) + _name(rng) + _payload(rng, tag, depth))
    return b"".join(parts) + b"\x00"


def _random_nbt(rng) -> bytes:
    return b"\x0a" + _name(rng) + _compound_body(rng, 0)


def test_the_c_walker_accepts_random_nbt_of_every_tag_type_and_refuses_the_same_damage():
    rng = random.Random(1616)
    verdicts = set()
    for _ in range(3000):
        data = _random_nbt(rng)
        assert _same(data) == "accepted"
        for _ in range(4):
            # (padded: _damaged may cut up to 24 bytes, and a tiny compound has fewer)
            verdicts.add(_same(_damaged(rng, data + bytes(24))[:len(data) + rng.randint(-2, 2)]))
    # the damage reached every way the walker refuses (and the random types outran its tag list)
    reasons = {v.split(": ", 1)[1].split(" type ")[0] for v in verdicts if v != "accepted"}
    assert {"NBT data truncated", "negative or truncated array length in NBT", "unknown NBT tag",
            "non-empty list of End tags in NBT", "root tag is not a compound"} <= reasons
    assert any("bytes after the end of the NBT data" in v for v in verdicts)


def test_the_c_walker_judges_40_000_damaged_real_chunks_as_the_python_walker():
    chunks = _fixture_chunks()
    rng = random.Random(40_000)
    refused = 0
    for _ in range(40_000):
        refused += _same(_damaged(rng, rng.choice(chunks))) != "accepted"
    assert refused > 30_000  # the damage is real: most of it is refused


@pytest.mark.parametrize("data, reason", [
    (b"", "root tag is not a compound"),
    (b"\x0a\x00", "root tag is not a compound"),
    (b"\x0a\x00\x00", "NBT data truncated"),
    (b"\x0a\x00\x00\x00", "accepted"),
    (b"\x0a\x00\x00\x00\x00\x00", "2 bytes after the end of the NBT data"),
    (b"\x0a\x00\x00\x0d\x00\x00\x00", "unknown NBT tag type 13"),
    (b"\x0a\x00\x00\xff\x00\x00\x00", "unknown NBT tag type 255"),
    (b"\x0a\x00\x00\x09\x00\x00\x00\x00\x00\x00\x01\x00", "non-empty list of End tags in NBT"),
    (b"\x0a\x00\x00\x09\x00\x00\x00\x00\x00\x00\x00\x00", "accepted"),  # an empty list of End: the game writes it
    (b"\x0a\x00\x00\x09\x00\x00\x03\xff\xff\xff\xff\x00", "accepted"),  # a negative count is an empty list
    (b"\x0a\x00\x00\x09\x00\x00\x0d\x00\x00\x00\x01\x00", "unknown NBT tag type 13"),
    (b"\x0a\x00\x00\x07\x00\x00\xff\xff\xff\xff\x00", "negative or truncated array length in NBT"),
    (b"\x0a\x00\x00\x0b\x00\x00\x00\x00", "negative or truncated array length in NBT"),
    (b"\x0a\x00\x00\x0c\x00\x00\x7f\xff\xff\xff\x00", "NBT data truncated"),  # 16 GiB claimed, no overflow
    (b"\x0a\x00\x00\x09\x00\x00\x04\x7f\xff\xff\xff\x00", "NBT data truncated"),
    (b"\x0a\x00\x00\x09\x00\x00\x08\x7f\xff\xff\xff\x00\x00", "NBT data truncated"),
    (b"\x0a\x00\x00\x09\x00\x00\x0b\x00\x00\x00\x02\x00\x00\x00\x00\xff\xff\xff\xff\x00",
     "negative or truncated array length in NBT"),
    (b"\x0a\x00\x00\x09\x00\x00\x09\x00\x00\x00\x02\x01\x00\x00\x00\x01\x05\x0a\x00\x00\x00\x01\x00\x00",
     "accepted"),  # a list of two lists: one byte, one compound holding nothing
    (b"\x0a\x00\x00\x08\xff\xff", "NBT data truncated"),
])
def test_edge_cases_get_the_same_verdict_and_reason_from_both_walkers(data, reason):
    assert _same(data) == (reason if reason == "accepted" else f"refused: {reason}")


@pytest.mark.parametrize("depth", [255, 256, 257, 3000])
def test_nesting_is_capped_the_same_way_in_c(depth):
    compounds = b"\x0a\x00\x00" + b"\x0a\x00\x00" * depth + b"\x00" * depth + b"\x00"
    in_lists = b"\x0a\x00\x00\x09\x00\x01a" + b"\x09\x00\x00\x00\x01" * (depth - 1) + b"\x0a\x00\x00\x00\x01\x00\x00"
    list_of_compounds = b"\x0a\x00\x00" + b"\x09\x00\x00\x0a\x00\x00\x00\x02" * depth + b"\x00\x00" * depth + b"\x00"
    for data in (compounds, in_lists, list_of_compounds):
        assert _same(data) == ("accepted" if depth <= 256 else "refused: NBT nested too deeply")
    # compounds, then a list of lists in the deepest: one level more
    list_in_compounds = (b"\x0a\x00\x00" + b"\x0a\x00\x00" * depth + b"\x09\x00\x00\x09\x00\x00\x00\x01\x01\x00\x00\x00\x00"
                         + b"\x00" * depth + b"\x00")
    assert _same(list_in_compounds) == ("accepted" if depth < 256 else "refused: NBT nested too deeply")


def test_a_missing_or_stale_library_is_not_used(tmp_path):
    walk, error = world._load_native_walker(tmp_path / "absent.so")
    assert walk is None and "absent.so" in error
    source = tmp_path / "old.c"
    source.write_text("int mcsite_nbt_version(void) { return 0; }\n")
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(tmp_path / "old.so"), str(source)], check=True)
    walk, error = world._load_native_walker(tmp_path / "old.so")
    assert walk is None and error == "old.so is version 0, not 1 (run make venv)"


_FALLBACK = r"""
import ctypes, json, logging, sys
def refuse(*args, **kwargs):
    raise OSError("no C compiler on this machine")
ctypes.CDLL = refuse  # as if `make venv` could not build the library
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
from backups.engine import create_archive, verify_backup, world, worldcheck
archive = create_archive(sys.argv[1], sys.argv[2])
reports = [verify_backup(archive.path, expected_sha256=archive.sha256) for _ in range(2)]
print(json.dumps({"walker": world.describe_walker(), "helpers_after": worldcheck.PROCESS_AFTER_BYTES,
                  "errors": [r.methods["world_validation"].errors for r in reports],
                  "chunks": [r.methods["world_validation"].details["chunks_checked"] for r in reports]}))
"""


def test_without_the_library_verification_walks_in_python_with_the_same_findings_and_says_so_once(
        tmp_path, server_dir):
    from backups.engine import create_archive, verify_backup

    from .test_region_helpers import _damaged_world

    _damaged_world(server_dir)
    expected = verify_backup(create_archive(server_dir, tmp_path / "native.tar.gz").path).methods["world_validation"]
    assert expected.errors  # the damaged world is found damaged
    proc = subprocess.run([sys.executable, "-c", _FALLBACK, str(server_dir), str(tmp_path / "py.tar.gz")],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["walker"] == "Python (no C compiler on this machine)"
    assert result["helpers_after"] == 64 << 20  # Python walks: big worlds get helper processes again
    assert result["errors"] == [expected.errors, expected.errors]
    assert result["chunks"] == [expected.details["chunks_checked"]] * 2
    warnings = [line for line in proc.stderr.splitlines() if "Native NBT walker not available" in line]
    assert warnings == ["WARNING backups.engine Native NBT walker not available (no C compiler on this machine); "
                        "world validation walks NBT in Python (slower, same findings)"]
