"""Verifying a snapshot (issue #14, item 4): the archives' methods and
quality score; the world checked from the repository's blobs without writing
a file; a damaged pack or a broken level.dat each named; a sample reads a
part of the other files for the periodic re-check."""

import shutil
from pathlib import Path

import pytest

from backups.repo.crypto import RepoKey
from backups.repo.repository import LocalStore, Repository
from backups.repo.verify import verify_snapshot

WORLD = Path(__file__).resolve().parents[1] / "fixtures" / "worlds" / "vanilla-1.14.4" / "world"


@pytest.fixture
def setup(tmp_path):
    folder = tmp_path / "server"
    shutil.copytree(WORLD, folder / "world")
    (folder / "server.properties").write_text("level-name=world\n")
    repo = Repository.init(LocalStore(tmp_path / "repo"), RepoKey.generate())
    return repo, folder, tmp_path


def test_a_good_snapshot_scores_like_a_good_archive_without_writing_files(setup):
    repo, folder, tmp = setup
    snapshot_id, stats = repo.backup(folder)
    before = sorted(p for p in tmp.rglob("*") if p.is_file())
    report = verify_snapshot(repo, snapshot_id)
    assert report.ok and report.quality_score == 100, {k: m.errors for k, m in report.methods.items()}
    assert report.world_name and report.minecraft_version
    assert report.methods["world_validation"].details["region_files"] > 0
    assert report.methods["restore_test"].skipped
    assert report.file_count == stats.files and report.sha256 == snapshot_id
    assert ("world/level.dat", (folder / "world" / "level.dat").stat().st_size, "f") in report.contents
    assert sorted(p for p in tmp.rglob("*") if p.is_file()) == before, "nothing written"


def test_a_damaged_pack_is_named_by_file(setup):
    repo, folder, tmp = setup
    snapshot_id, _ = repo.backup(folder)
    pack = max((tmp / "repo" / "data").rglob("*"), key=lambda p: p.stat().st_size if p.is_file() else 0)
    data = bytearray(pack.read_bytes())
    data[len(data) // 2] ^= 0x10
    pack.write_bytes(bytes(data))
    report = verify_snapshot(Repository.open(LocalStore(tmp / "repo"), repo.key), snapshot_id)
    integrity = report.methods["archive_integrity"]
    assert not report.ok and not integrity.ok and report.quality_score < 60
    assert any("authentication failed" in e for e in integrity.errors), integrity.errors
    assert all(e.split(":", 1)[0] in {"server.properties"} or e.startswith("world/") for e in integrity.errors)


def test_a_broken_level_dat_fails_world_validation(setup):
    repo, folder, tmp = setup
    (folder / "world" / "level.dat").write_bytes(b"not nbt at all")
    snapshot_id, _ = repo.backup(folder)
    report = verify_snapshot(repo, snapshot_id)
    world = report.methods["world_validation"]
    assert report.methods["archive_integrity"].ok and not world.ok
    assert any(e.startswith("world/level.dat") for e in world.errors)


def test_a_sample_reads_part_of_the_files_and_the_world_always(setup):
    repo, folder, tmp = setup
    for index in range(40):
        (folder / f"plugin-{index}.yml").write_text(f"setting: {index}\n" * 50)
    snapshot_id, _ = repo.backup(folder)
    full = verify_snapshot(repo, snapshot_id)
    part = verify_snapshot(repo, snapshot_id, sample=0.25, seed=3)
    assert part.ok and part.methods["archive_integrity"].details["sampled_files"] < full.file_count
    assert part.methods["archive_integrity"].details["blobs_read_bytes"] < \
        full.methods["archive_integrity"].details["blobs_read_bytes"]
    assert part.methods["world_validation"].details["region_files"] == \
        full.methods["world_validation"].details["region_files"]
