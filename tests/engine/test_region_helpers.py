"""World validation in helper processes (issue #16): a large world's region files
are checked in processes so both cores walk NBT. The report must be exactly the
one threads make, in the same order, and a helper that dies must cost nothing
but speed."""
from __future__ import annotations

import logging
import os
import zlib

import psutil
import pytest

from backups.engine import create_archive, verify_backup, worldcheck

from . import regions


def _damaged_world(server_dir):
    """The fixture world plus region files with findings: a bad chunk, a missing .mcc, a deep list."""
    deep = b"\x0a\x00\x00\x09\x00\x01a" + b"\x09\x00\x00\x00\x01" * 3000 + b"\x01\x00\x00\x00\x00\x00"
    folder = server_dir / "world" / "region"
    (folder / "r.7.7.mca").write_bytes(regions.region({0: regions.zlib_chunk(), 1: (2, b"not zlib"),
                                                       2: (2, zlib.compress(deep)), 4: (130, b"")}))
    (folder / "r.8.8.mca").write_bytes(regions.region({3: (2, zlib.compress(regions.chunk_nbt()[:-4]))}))


def _world_report(path):
    report = verify_backup(path)
    world = report.methods["world_validation"]
    return world.ok, world.errors, world.warnings, world.details


@pytest.fixture(autouse=True)
def _two_threads(monkeypatch):
    """The pool (and so the helpers) needs two threads, whatever this machine has."""
    monkeypatch.setattr(worldcheck, "default_threads", lambda: 2)


def _count_started(monkeypatch) -> list:
    started = []
    real = worldcheck.RegionHelpers
    monkeypatch.setattr(worldcheck, "RegionHelpers", lambda count: started.append(count) or real(count))
    return started


def test_helpers_report_exactly_what_threads_report(server_dir, backups_dir, monkeypatch):
    _damaged_world(server_dir)
    result = create_archive(server_dir, backups_dir / "b.tar.gz")
    monkeypatch.setattr(worldcheck, "PROCESS_AFTER_BYTES", None)
    in_threads = _world_report(result.path)
    started = _count_started(monkeypatch)
    monkeypatch.setattr(worldcheck, "PROCESS_AFTER_BYTES", 0)
    in_helpers = _world_report(result.path)
    assert started == [2]
    assert in_helpers == in_threads
    ok, errors, _, details = in_helpers
    assert not ok and details["region_files"] == 48 and details["chunks_checked"] > 1000
    # the inflater's own words after "does not decompress" depend on the library (codecs.py)
    assert [e[:e.index(" does not decompress") + 20] if "does not decompress" in e else e for e in errors] == [
        "world/region/r.7.7.mca: chunk (1, 0) does not decompress",
        "world/region/r.7.7.mca: chunk (2, 0) is not valid NBT (NBT nested too deeply)",
        "world/region/r.8.8.mca: chunk (3, 0) is not valid NBT (NBT data truncated)",
        "world/region/r.7.7.mca: chunk (4, 0) is stored externally but world/region/c.228.224.mcc is missing",
    ]


def test_no_helper_process_outlives_the_verification(server_dir, backups_dir, monkeypatch):
    result = create_archive(server_dir, backups_dir / "b.tar.gz")
    monkeypatch.setattr(worldcheck, "PROCESS_AFTER_BYTES", 0)
    started = _count_started(monkeypatch)
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    assert verify_backup(result.path).methods["world_validation"].ok
    after = {p.pid for p in psutil.Process().children(recursive=True)}
    assert started == [2] and after <= before


def test_a_helper_that_dies_costs_only_speed_and_is_logged_once(server_dir, backups_dir, monkeypatch, caplog):
    _damaged_world(server_dir)
    result = create_archive(server_dir, backups_dir / "b.tar.gz")
    monkeypatch.setattr(worldcheck, "PROCESS_AFTER_BYTES", None)
    expected = _world_report(result.path)

    class Dying(worldcheck.RegionHelpers):
        def check(self, name, data):
            for proc in list(self._all):  # every helper is killed before it answers
                proc.kill()
                proc.wait()
            return super().check(name, data)

    monkeypatch.setattr(worldcheck, "RegionHelpers", Dying)
    monkeypatch.setattr(worldcheck, "PROCESS_AFTER_BYTES", 0)
    with caplog.at_level(logging.WARNING, logger="backups.engine"):
        assert _world_report(result.path) == expected
    said = [r.getMessage() for r in caplog.records if "checked in threads instead" in r.getMessage()]
    assert len(said) == 1 and "stopped answering" in said[0]


def test_a_helper_that_cannot_start_leaves_the_threads_to_it(server_dir, backups_dir, monkeypatch, caplog):
    result = create_archive(server_dir, backups_dir / "b.tar.gz")
    monkeypatch.setattr(worldcheck, "PROCESS_AFTER_BYTES", 0)
    monkeypatch.setattr("sys.executable", os.path.join(str(backups_dir), "no-such-python"))
    with caplog.at_level(logging.WARNING, logger="backups.engine"):
        report = verify_backup(result.path)
    assert report.methods["world_validation"].ok and report.methods["world_validation"].details["region_files"] == 46
    assert any("could not start a region helper" in r.getMessage() for r in caplog.records)
