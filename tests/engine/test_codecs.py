"""Native deflate (issue #16): files stay standard, old backups still read, and
without the native packages the engine falls back to zlib and says so once."""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from backups.engine import EncryptionSpec, codecs, create_archive, extract_to_staging, verify_backup

from .conftest import tree_digests

ROOT = Path(__file__).resolve().parents[2]
OLD = ROOT / "tests" / "fixtures" / "archives"


def test_the_native_libraries_are_what_runs_here():
    """requirements.txt installs both; a silent fallback would hide a broken install."""
    assert codecs.describe() == {"deflate": "zlib-ng", "fast_deflate": "ISA-L (isal)", "inflate": "ISA-L (isal)",
                                 "adaptive": "ISA-L level 2 where within 0.5%", "missing": {}}


@pytest.mark.parametrize("name", ["pre16-gzip.tar.gz", "pre16-gzip-serial.tar.gz", "pre16-zstd-aes.tar.zst.enc"])
def test_backups_written_before_the_change_still_verify_and_restore(name, tmp_path):
    path = OLD / name
    recorded = json.loads((OLD / "pre16-sha256.json").read_text())[name]
    keyring = EncryptionSpec.from_key((OLD / "pre16-key.txt").read_text().strip()) if name.endswith(".enc") else None
    report = verify_backup(path, expected_sha256=recorded, keyring=keyring, restore_test=True)
    assert (report.quality_score, report.ok) == (100, True), {n: m.errors for n, m in report.methods.items()}
    assert report.methods["world_validation"].details["region_files"] == 1
    assert report.methods["world_validation"].details["chunks_checked"] > 0
    staged = extract_to_staging(path, tmp_path / "server", keyring=keyring)
    assert staged.manifest_checked and staged.file_count == 5
    restored = Path(staged.staging_dir)
    assert (restored / "world" / "level.dat").read_bytes() == \
        (ROOT / "tests/fixtures/worlds/vanilla-1.14.4/world/level.dat").read_bytes()


def _big_folder(root: Path) -> Path:
    """A few MiB over several deflate blocks: text that compresses, bytes that do not."""
    root.mkdir()
    (root / "logs").mkdir()
    (root / "logs" / "latest.log").write_bytes(b"".join(b"[12:%02d:%02d] Player%d joined the game\n" % (i % 60, i % 59, i)
                                                        for i in range(60_000)))
    (root / "random.bin").write_bytes(os.urandom(1_500_000))
    (root / "zeros.bin").write_bytes(bytes(700_000))
    return root


@pytest.mark.parametrize("level, threads", [(None, 2), (None, 1), (1, 2), (9, 2)])
def test_new_gzip_files_are_read_by_gzip_tar_and_python(tmp_path, level, threads):
    source = _big_folder(tmp_path / "src")
    result = create_archive(source, tmp_path / "b.tar.gz", level=level, threads=threads)
    subprocess.run(["gzip", "-t", result.path], check=True)
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["tar", "-xzf", result.path, "-C", str(out)], check=True)
    assert {k: v for k, v in tree_digests(out).items() if k != ".mcsite-manifest.json"} == tree_digests(source)
    with gzip.open(result.path) as fh, tarfile.open(fileobj=fh, mode="r|") as tar:
        names = [member.name for member in tar]
    assert "logs/latest.log" in names and "random.bin" in names
    with open(result.path, "rb") as fh:
        assert hashlib.sha256(fh.read()).hexdigest() == result.sha256
    assert verify_backup(result.path, expected_sha256=result.sha256).quality_score == 100


def test_the_fast_level_is_larger_on_text_and_still_gzip(tmp_path):
    source = _big_folder(tmp_path / "src")
    default = create_archive(source, tmp_path / "d.tar.gz")
    fast = create_archive(source, tmp_path / "f.tar.gz", level=1)
    assert fast.size_bytes > 1.03 * default.size_bytes  # ISA-L's speed costs size on text (~6 % here)
    subprocess.run(["gzip", "-t", fast.path], check=True)
    assert verify_backup(fast.path, expected_sha256=fast.sha256, restore_test=True).quality_score == 100


def _region_file(path: Path) -> int:
    """An Anvil region file of 1.16 chunks built with nbtlib and compressed with zlib, as
    the game does (the benchmark world's generator): a thorough deflate finds almost
    nothing more in it than a fast one."""
    from bench import worldgen

    worldgen.write_region(str(path), worldgen._ChunkFactory(16, templates=8), 0, 0, 300, [0])
    return path.stat().st_size


def _world_and_log(source: Path) -> int:
    """A region file (bytes of it returned), then a log: the stream changes content."""
    (source / "world" / "region").mkdir(parents=True)
    region_bytes = _region_file(source / "world" / "region" / "r.0.0.mca")
    (source / "zz-logs").mkdir()
    (source / "zz-logs" / "latest.log").write_bytes(b"".join(
        b"[12:%02d:%02d] [Server thread/INFO]: Player%d joined the game\n" % (i % 60, i % 59, i % 977)
        for i in range(90_000)))
    return region_bytes


@pytest.mark.parametrize("threads", [2, 1])
def test_gzip_deflates_already_compressed_blocks_fast_and_text_thoroughly_at_the_same_size(tmp_path, monkeypatch,
                                                                                           threads):
    """Region files barely compress: where a probe shows ISA-L's fast deflate within 0.5 %
    of the level's own output, blocks get the fast one; text keeps zlib-ng's level 6. The
    order (world, then logs) also checks that a change of content is noticed at once."""
    source = tmp_path / "src"
    region_blocks = _world_and_log(source) // (512 * 1024)
    adaptive = create_archive(source, tmp_path / "a.tar.gz", threads=threads)
    monkeypatch.setattr(codecs, "ADAPTIVE", False)
    thorough = create_archive(source, tmp_path / "t.tar.gz", threads=threads)
    assert adaptive.deflate_blocks["blocks"] == thorough.deflate_blocks["blocks"] >= 10
    assert thorough.deflate_blocks["fast"] == 0
    assert region_blocks - 1 <= adaptive.deflate_blocks["fast"] < adaptive.deflate_blocks["blocks"] - 2
    assert adaptive.size_bytes <= 1.005 * thorough.size_bytes
    subprocess.run(["gzip", "-t", adaptive.path], check=True)
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["tar", "-xzf", adaptive.path, "-C", str(out)], check=True)
    assert {k: v for k, v in tree_digests(out).items() if k != ".mcsite-manifest.json"} == tree_digests(source)
    assert verify_backup(adaptive.path, expected_sha256=adaptive.sha256, restore_test=True).quality_score == 100


def test_the_fast_level_deflates_every_block_fast_and_other_codecs_report_no_blocks(tmp_path):
    source = _big_folder(tmp_path / "src")
    fast = create_archive(source, tmp_path / "f.tar.gz", level=1)
    assert fast.deflate_blocks["fast"] == fast.deflate_blocks["blocks"] > 1
    assert create_archive(source, tmp_path / "z.tar.zst", compression="zstd").deflate_blocks == {}


_FALLBACK = r"""
import logging, sys, json
for name in sys.argv[1].split(","):
    sys.modules[name] = None  # importing it now raises ImportError, as if it were not installed
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
from backups.engine import codecs, create_archive, extract_to_staging, verify_backup
src, out = sys.argv[2], sys.argv[3]
first = create_archive(src, out + "/a.tar.gz", threads=2)
second = create_archive(src, out + "/b.tar.gz", threads=1, level=1)
scores = [verify_backup(p, expected_sha256=r.sha256).quality_score for p, r in ((first.path, first), (second.path, second))]
staged = extract_to_staging(first.path, out + "/restored")
print(json.dumps({"codecs": codecs.describe(), "scores": scores, "staging": staged.staging_dir,
                  "fast_blocks": first.deflate_blocks["fast"]}))
"""


@pytest.mark.parametrize("blocked, expected", [
    ("isal", {"deflate": "zlib-ng", "fast_deflate": "zlib-ng", "inflate": "zlib-ng", "adaptive": "off"}),
    ("zlib_ng", {"deflate": "zlib", "fast_deflate": "ISA-L (isal)", "inflate": "ISA-L (isal)",
                 "adaptive": "ISA-L level 2 where within 0.5%"}),
    ("isal,zlib_ng", {"deflate": "zlib", "fast_deflate": "zlib", "inflate": "zlib", "adaptive": "off"}),
])
def test_without_a_native_package_the_engine_falls_back_and_says_so_once(tmp_path, blocked, expected):
    source = _big_folder(tmp_path / "src")
    proc = subprocess.run([sys.executable, "-c", _FALLBACK, blocked, str(source), str(tmp_path)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert {k: v for k, v in result["codecs"].items() if k != "missing"} == expected
    assert set(result["codecs"]["missing"]) == {"isal" if n == "isal" else "zlib-ng" for n in blocked.split(",")}
    assert result["scores"] == [100, 100]
    if "isal" in blocked:  # no ISA-L: every block of level 6 is deflated at level 6
        assert result["fast_blocks"] == 0
    warnings = [line for line in proc.stderr.splitlines() if "Native deflate library not available" in line]
    assert len(warnings) == 1 and warnings[0].startswith("WARNING backups.engine")
    assert tree_digests(Path(result["staging"])) == tree_digests(source)
    for name in ("a.tar.gz", "b.tar.gz"):  # and the files are ordinary gzip
        subprocess.run(["gzip", "-t", str(tmp_path / name)], check=True)
