"""Decompression and header bombs end in the bound's own clean failure, under a memory limit.

Each archive below is a few KB to a few MB but expands to GiBs somewhere the
engine inflates or parses untrusted bytes. verify_backup, inspect_archive and
extract_to_staging run on it in a child process whose address space is
capped at 1 GiB (``RLIMIT_AS``): without the engine's caps every one of these
runs out of memory (or, unbounded, would take the host down). The tests
assert on the reason each bound gives, never on a MemoryError.
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from backups.engine import create_archive

from . import bombs
from .conftest import FIXTURE_WORLD

ROOT = Path(__file__).resolve().parents[2]
MEMORY_LIMIT = 1 << 30

_CHILD = r"""
import json, os, shutil, sys
import backups.engine.worldcheck as worldcheck
threads = int(os.environ.get("MCSITE_TEST_THREADS", "4"))
worldcheck.default_threads = lambda: threads  # the thread pool runs whatever this machine has
from backups.engine import EngineError, extract_to_staging, inspect_archive, verify_backup

path, target = sys.argv[1], sys.argv[2]
out = {}
report = verify_backup(path)
out["verify"] = {name: {"ok": m.ok, "skipped": m.skipped, "errors": m.errors,
                        "error_code": m.details.get("error_code")} for name, m in report.methods.items()}
try:
    info = inspect_archive(path)
    out["inspect"] = {"worlds": [w["path"] for w in info.worlds], "file_count": info.file_count}
except EngineError as exc:
    out["inspect"] = {"code": exc.code, "message": exc.message}
if os.environ.get("MCSITE_TEST_EXTRACT", "1") == "1":
    try:
        staged = extract_to_staging(path, target)
        out["extract"] = {"file_count": staged.file_count}
        shutil.rmtree(staged.staging_dir)
    except EngineError as exc:
        out["extract"] = {"code": exc.code, "message": exc.message}
print(json.dumps(out))
"""


def _limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def run_limited(archive: Path, tmp_path: Path, threads: int = 4, extract: bool = True) -> dict:
    """verify, inspect and (unless told not to) extract ``archive`` in a child limited to
    1 GiB of address space (world checks on a pool of ``threads``)."""
    env = dict(os.environ, MALLOC_ARENA_MAX="2", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
               MCSITE_TEST_THREADS=str(threads), MCSITE_TEST_EXTRACT="1" if extract else "0")
    env.pop("DJANGO_SETTINGS_MODULE", None)
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(archive), str(tmp_path / "restored")],
                          cwd=ROOT, env=env, preexec_fn=_limit_memory, capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 0, f"child failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout)


def _server(tmp_path: Path, files: dict) -> Path:
    """A server folder: the fixture's level.dat plus ``files`` ({path under world/: bytes})."""
    root = tmp_path / "server"
    (root / "world").mkdir(parents=True)
    shutil.copyfile(FIXTURE_WORLD / "world" / "level.dat", root / "world" / "level.dat")
    for rel, data in files.items():
        target = root / "world" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return root


def _backup(tmp_path: Path, files: dict, compression: str = "zstd") -> Path:
    result = create_archive(_server(tmp_path, files), tmp_path / "b.tar", compression=compression)
    return Path(result.path)


def _world_failed_with(out: dict, expected: list) -> None:
    world = out["verify"]["world_validation"]
    assert not world["ok"] and not world["skipped"], world
    assert sorted(world["errors"]) == sorted(expected)
    assert out["verify"]["archive_integrity"]["ok"]


LIMIT = "decompresses to more than 32 MiB"

# name -> (files under world/, expected world_validation errors); built lazily, in the test
WORLD_BOMBS = {
    "level_dat_gzip": lambda: ({"level.dat": bombs.gzip_zeros(1536)},
                               [f"world/level.dat: level.dat invalid: {LIMIT}"]),
    "playerdata_gzip": lambda: ({"playerdata/0b1c-player.dat": bombs.gzip_zeros(1536)},
                                [f"world/playerdata/0b1c-player.dat: {LIMIT}"]),
    "region_zlib_chunks": lambda: (
        {f"region/r.{n}.0.mca": bombs.region_with(2, bombs.zlib_zeros(768)) for n in range(4)},
        [f"world/region/r.{n}.0.mca: chunk (0, 0) {LIMIT}" for n in range(4)]),
    "region_gzip_chunks": lambda: (
        {f"region/r.{n}.0.mca": bombs.region_with(1, bombs.gzip_zeros(768)) for n in range(2)},
        [f"world/region/r.{n}.0.mca: chunk (0, 0) {LIMIT}" for n in range(2)]),
    "region_lz4_chunks": lambda: (
        {f"region/r.{n}.0.mca": bombs.region_with(4, bombs.lz4_java_zeros(7)) for n in range(4)},
        [f"world/region/r.{n}.0.mca: chunk (0, 0) {LIMIT}" for n in range(4)]),
    "mcc_zlib": lambda: ({"region/r.0.0.mca": bombs.region_with(2 + 128, b""),
                          "region/c.0.0.mcc": bombs.zlib_zeros(2048)},
                         ["world/region/c.0.0.mcc: external chunk decompresses to more than 128 MiB"]),
    "mcc_lz4": lambda: ({"region/r.0.0.mca": bombs.region_with(4 + 128, b""),
                         "region/c.0.0.mcc": bombs.lz4_java_zeros(40)},
                        ["world/region/c.0.0.mcc: external chunk decompresses to more than 128 MiB"]),
}


@pytest.mark.parametrize("case", sorted(WORLD_BOMBS))
def test_world_bombs_fail_world_validation_with_the_limit_as_reason(tmp_path, case):
    files, expected = WORLD_BOMBS[case]()
    archive = _backup(tmp_path, files)
    assert archive.stat().st_size < 8 * bombs.MiB
    out = run_limited(archive, tmp_path)

    _world_failed_with(out, expected)
    # inspect reads level.dat only: a bomb there is skipped (no world), anything else is harmless
    worlds = [] if case == "level_dat_gzip" else ["world"]
    assert out["inspect"]["worlds"] == worlds
    assert out["extract"]["file_count"] == 1 + len(files) - ("level.dat" in files)


TAR_BOMBS = {
    "gnu_long_name": (lambda: bombs.gnu_long_name_zst(), "GNU long name of 1073741824 bytes"),
    "gnu_long_link": (lambda: bombs.gnu_long_name_zst(link=True), "GNU long link name of 1073741824 bytes"),
    "pax_header": (lambda: bombs.pax_bomb_zst(), "PAX header of 1073741824 bytes"),
    "pax_global_header": (lambda: bombs.pax_bomb_zst(global_header=True), "PAX header of 1073741824 bytes"),
    "pax_global_headers_accumulating": (lambda: bombs.many_global_pax_headers_zst(1500),
                                        "global PAX headers of more than 1 MiB in total"),
    "old_gnu_sparse_extension_blocks": (lambda: bombs.old_gnu_sparse_bomb_zst(), "GNU sparse map"),
    "gnu_sparse_1_0_map": (lambda: bombs.gnu_sparse_1_0_bomb_zst(), "GNU sparse map"),
}


@pytest.mark.parametrize("case", sorted(TAR_BOMBS))
def test_tar_header_bombs_are_corruption_with_the_limit_as_reason(tmp_path, case):
    build, reason = TAR_BOMBS[case]
    archive = tmp_path / "bomb.tar.zst"
    archive.write_bytes(build())
    assert archive.stat().st_size < 1 * bombs.MiB
    out = run_limited(archive, tmp_path)

    integrity = out["verify"]["archive_integrity"]
    assert not integrity["ok"] and integrity["error_code"] == "BACKUP_CORRUPTED"
    assert len(integrity["errors"]) == 1 and reason in integrity["errors"][0]
    assert "over the 1 MiB limit" in integrity["errors"][0] or "in total" in reason
    for op in ("inspect", "extract"):
        assert out[op]["code"] == "BACKUP_CORRUPTED" and reason in out[op]["message"], out[op]


def test_region_files_read_ahead_for_the_pool_stay_within_a_budget(monkeypatch):
    """Region files up to 64 MiB are read whole for the thread pool, two per thread: with 16
    threads and checks slower than reading, 24 files of 20 MiB were all held at once."""
    import time
    import tracemalloc

    from backups.engine import worldcheck
    from backups.engine.verify import MethodResult

    def slow_check(name, data):
        time.sleep(0.2)
        return worldcheck._Findings()

    monkeypatch.setattr(worldcheck, "_check_region_blob", slow_check)
    monkeypatch.setattr(worldcheck, "PROCESS_AFTER_BYTES", None)  # the threads themselves are measured
    class Zeros:  # a member stream: every read is a new allocation, as from the archive
        def read(self, n):
            return b"\0" * n

    size = 20 * bombs.MiB
    check = worldcheck.WorldCheck(MethodResult("world_validation"), threads=16)
    tracemalloc.start()
    try:
        for n in range(24):
            check.check(f"world/region/r.{n}.0.mca", Zeros(), size)
        check.finish()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        check.close()
    assert check.region_files == 24
    assert peak <= worldcheck._MAX_BUFFERED_BYTES + 2 * size, f"peak {peak / bombs.MiB:.0f} MiB"


def test_reading_many_members_keeps_no_per_member_state(tmp_path):
    """Stream-mode tarfile keeps every TarInfo it reads (~400 bytes each, without bound);
    inspect has nothing to keep per member, so its memory must not grow with them."""
    import tracemalloc

    from backups.engine.reader import ArchiveStream

    archive = tmp_path / "many.tar.zst"
    archive.write_bytes(bombs.many_members_zst(50_000))
    samples = {}
    tracemalloc.start()
    try:
        with ArchiveStream(archive) as stream:
            for count, _ in enumerate(stream.members(), 1):
                if count in (10_000, 50_000):
                    samples[count] = tracemalloc.get_traced_memory()[0]
            stream.finish()
            assert stream.problems() == []
    finally:
        tracemalloc.stop()
    assert samples[50_000] - samples[10_000] < 2 * bombs.MiB, samples


def test_deep_distinct_paths_cost_memory_per_member_not_per_folder(tmp_path):
    """5000 files each under 1500 folders of their own (paths of 3 KB, well within PATH_MAX):
    keeping every folder path that members go through as a string costs ~11 GB; the member
    rules (the same in verify and extract) must cost about one entry per member. (Not
    extracted here: that is 7.5 million folders on disk.)"""
    archive = tmp_path / "deep.tar.zst"
    archive.write_bytes(bombs.deep_names_zst(5000, 1500))
    assert archive.stat().st_size < 1 * bombs.MiB
    out = run_limited(archive, tmp_path, extract=False)
    assert out["verify"]["archive_integrity"]["ok"], out["verify"]["archive_integrity"]
    assert out["inspect"]["file_count"] == 5000
