"""Archives from GNU tar/gzip/zstd read by us, and ours read by GNU tar."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from backups.engine import create_archive, detect_format, extract_to_staging, inspect_archive, verify_backup

from .conftest import tree_digests

HAVE_ZSTD = shutil.which("zstd") is not None
needs_zstd = pytest.mark.skipif(not HAVE_ZSTD, reason="zstd CLI not installed (apt-get install zstd)")


def _gnu_tar(args: list, cwd: Path) -> None:
    subprocess.run(["tar", *args], cwd=cwd, check=True, capture_output=True)


@pytest.mark.parametrize("style", ["named", "dot"])
def test_verify_reads_gnu_tar_czf_archive(server_dir, backups_dir, style):
    archive = backups_dir / "gnu.tar.gz"
    _gnu_tar(["-czf", str(archive), *(["world", "server.properties"] if style == "named" else ["."])], server_dir)
    assert detect_format(archive).compression == "gzip"
    report = verify_backup(archive)
    integrity = report.methods["archive_integrity"]
    assert integrity.ok and integrity.details["manifest"] is False
    assert "no mcsite manifest" in integrity.warnings[0]
    assert report.methods["world_validation"].ok
    assert (report.world_name, report.minecraft_version) == ("world", "1.14.4")
    assert report.quality_score == 100
    info = inspect_archive(archive)
    assert info.file_count == (64 if style == "dot" else 63) and info.manifest is None


@needs_zstd
def test_verify_reads_tar_zstd_archive(server_dir, backups_dir):
    archive = backups_dir / "gnu.tar.zst"
    _gnu_tar(["-I", "zstd -3 -T0", "-cf", str(archive), "."], server_dir)
    assert detect_format(archive).compression == "zstd"
    report = verify_backup(archive)
    assert report.methods["archive_integrity"].ok and report.methods["world_validation"].ok


def test_extract_of_gnu_tar_archive_restores_identical_files(server_dir, backups_dir, tmp_path):
    archive = backups_dir / "gnu.tar.gz"
    _gnu_tar(["-czf", str(archive), "."], server_dir)
    staged = extract_to_staging(archive, tmp_path / "restored")
    assert tree_digests(Path(staged.staging_dir)) == tree_digests(server_dir)


@pytest.mark.parametrize("compression, flags", [
    ("gzip", ["-xzf"]),
    ("none", ["-xf"]),
    pytest.param("zstd", ["-I", "zstd -d", "-xf"], marks=needs_zstd),
    ("bzip2", ["-xjf"]),
    ("lzma", ["-xJf"]),
])
def test_gnu_tar_extracts_our_archives_with_identical_bytes(server_dir, backups_dir, tmp_path, compression, flags):
    result = create_archive(server_dir, backups_dir / f"ours.{compression}", compression=compression)
    out = tmp_path / "gnu-out"
    out.mkdir()
    _gnu_tar([*flags[:-1], flags[-1], result.path], out)
    manifest = out / ".mcsite-manifest.json"
    assert manifest.exists()
    manifest.unlink()
    assert tree_digests(out) == tree_digests(server_dir)


def test_gzip_cli_accepts_our_parallel_gzip(server_dir, backups_dir):
    result = create_archive(server_dir, backups_dir / "ours.tar.gz", threads=2)
    assert subprocess.run(["gzip", "-t", result.path]).returncode == 0
    listing = subprocess.run(["tar", "-tzf", result.path], capture_output=True, text=True, check=True).stdout
    assert listing.splitlines()[-1] == ".mcsite-manifest.json"
