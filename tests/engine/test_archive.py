from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import sys
import tarfile
import zlib
from pathlib import Path

import pytest

from backups.engine import (COMPRESSIONS, EngineError, backup_suffix, create_archive, extract_to_staging,
                            file_digests, inspect_archive, verify_backup)
from backups.engine.compress import open_compressor

from .conftest import tree_digests


@pytest.mark.parametrize("mode", ["plain", "password", "key"])
@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_round_trip_of_real_world_restores_identical_bytes(server_dir, backups_dir, tmp_path, compression,
                                                           mode, password_spec, key_spec):
    spec = {"plain": None, "password": password_spec, "key": key_spec}[mode]
    dest = backups_dir / ("b" + backup_suffix(compression, spec is not None))
    result = create_archive(server_dir, dest, compression=compression, encryption=spec)

    assert result.path == str(dest) and dest.exists()
    assert (result.sha256, result.md5) == file_digests(dest)
    assert result.size_bytes == dest.stat().st_size
    assert result.file_count == 64 and result.encrypted == (spec is not None)
    assert result.key_fingerprint == (spec.fingerprint if spec else None)
    assert not result.changed_files and not result.vanished_files and not result.skipped

    staged = extract_to_staging(dest, tmp_path / "restored", keyring=spec)
    assert staged.manifest_checked and staged.file_count == 64
    assert tree_digests(Path(staged.staging_dir)) == tree_digests(server_dir)

    report = verify_backup(dest, expected_sha256=result.sha256, keyring=spec)
    assert report.quality_score == 100 and report.ok
    assert report.world_name == "world" and report.minecraft_version == "1.14.4"


def test_manifest_is_last_member_and_lists_every_file_with_hash(server_dir, backups_dir):
    dest = backups_dir / "b.tar"
    create_archive(server_dir, dest, compression="none")
    with tarfile.open(dest) as tar:
        members = tar.getmembers()
        assert members[-1].name == ".mcsite-manifest.json"
        manifest = json.loads(tar.extractfile(members[-1]).read())
    assert manifest["version"] == 1 and manifest["created"]
    files = {f["path"]: f for f in manifest["files"]}
    assert set(files) == {p.relative_to(server_dir).as_posix() for p in server_dir.rglob("*") if p.is_file()}
    level = files["world/level.dat"]
    assert level["size"] == (server_dir / "world/level.dat").stat().st_size
    assert set(level) == {"path", "size", "sha256", "mode", "mtime"}
    assert manifest["totals"]["files"] == len(files)


def test_members_are_in_stable_sorted_order(server_dir, backups_dir):
    create_archive(server_dir, backups_dir / "a.tar", compression="none")
    create_archive(server_dir, backups_dir / "b.tar", compression="none")
    names = [tarfile.open(backups_dir / n).getnames() for n in ("a.tar", "b.tar")]
    assert names[0] == names[1]
    assert names[0][:-1] == sorted(names[0][:-1], key=lambda n: n.encode())


def test_excludes_follow_gitignore_style(tmp_path, backups_dir):
    src = tmp_path / "srv"
    for rel in ["logs/latest.log", "world/logs/x.log", "a.tmp", "world/b.tmp", "cache/c", "world/cache/d",
                "keep.txt", "logsfile"]:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(rel)
    dest = backups_dir / "b.tar"
    create_archive(src, dest, compression="none", exclude=["logs/", "*.tmp", "/cache"])
    names = set(tarfile.open(dest).getnames())
    assert {"keep.txt", "logsfile", "world/cache/d"} <= names
    assert not names & {"logs/latest.log", "world/logs/x.log", "a.tmp", "world/b.tmp", "cache/c"}


def test_symlinks_stored_only_when_pointing_inside_and_specials_reported(tmp_path, backups_dir):
    src = tmp_path / "srv"
    (src / "world").mkdir(parents=True)
    (src / "world" / "level.txt").write_text("x")
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    os.symlink("world/level.txt", src / "inside_rel")
    os.symlink(str(src / "world" / "level.txt"), src / "inside_abs")
    os.symlink(str(outside), src / "out_abs")
    os.symlink("../outside.txt", src / "out_rel")
    os.mkfifo(src / "pipe")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(src / "sock"))
    try:
        dest = backups_dir / "b.tar"
        result = create_archive(src, dest, compression="none")
    finally:
        sock.close()
    with tarfile.open(dest) as tar:
        links = {m.name: m.linkname for m in tar.getmembers() if m.issym()}
    assert links == {"inside_rel": "world/level.txt", "inside_abs": "world/level.txt"}
    skipped = {s["path"]: s["reason"] for s in result.skipped}
    assert set(skipped) == {"out_abs", "out_rel", "pipe", "sock"}
    assert "outside" in skipped["out_rel"] and "fifo" in skipped["pipe"] and "socket" in skipped["sock"]


def test_file_changing_or_vanishing_during_archiving_is_reported(tmp_path, backups_dir):
    src = tmp_path / "srv"
    src.mkdir()
    (src / "a_growing.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    (src / "b_shrinking.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    (src / "c_vanishing.txt").write_text("soon gone")
    calls = []

    def progress(done, total):
        calls.append((done, total))
        if len(calls) == 1:  # first MiB of a_growing.bin has been read
            with open(src / "a_growing.bin", "ab") as fh:
                fh.write(b"more")
            (src / "c_vanishing.txt").unlink()
        if done == 4 * 1024 * 1024:  # first MiB of b_shrinking.bin
            os.truncate(src / "b_shrinking.bin", 1000)

    dest = backups_dir / "b.tar.gz"
    result = create_archive(src, dest, progress=progress)
    changed = {c["path"]: c["reason"] for c in result.changed_files}
    assert set(changed) == {"a_growing.bin", "b_shrinking.bin"}
    assert "shrank" in changed["b_shrinking.bin"]
    assert result.vanished_files == ["c_vanishing.txt"]
    assert calls[-1][0] == calls[-1][1]
    assert verify_backup(dest, expected_sha256=result.sha256).ok  # the archive itself is consistent


def test_failure_midway_leaves_no_partial_file(server_dir, backups_dir):
    def explode(done, total):
        raise RuntimeError("worker killed")

    with pytest.raises(RuntimeError):
        create_archive(server_dir, backups_dir / "b.tar.gz", progress=explode)
    assert list(backups_dir.iterdir()) == []


def test_existing_destination_and_missing_source_are_refused(server_dir, backups_dir, tmp_path):
    (backups_dir / "b.tar.gz").write_bytes(b"old")
    with pytest.raises(EngineError) as info:
        create_archive(server_dir, backups_dir / "b.tar.gz")
    assert info.value.code == "DESTINATION_EXISTS"
    with pytest.raises(EngineError) as info:
        create_archive(tmp_path / "nope", backups_dir / "c.tar.gz")
    assert info.value.code == "SERVER_DIRECTORY_NOT_FOUND"
    assert sorted(p.name for p in backups_dir.iterdir()) == ["b.tar.gz"]


def test_backup_inside_the_source_folder_does_not_archive_itself(server_dir):
    dest = server_dir / "b.tar.gz"
    create_archive(server_dir, dest)
    names = tarfile.open(dest).getnames()
    assert not [n for n in names if n.startswith(".partial-") or n == "b.tar.gz"]


def test_backup_suffixes():
    assert backup_suffix("gzip", False) == ".tar.gz"
    assert backup_suffix("bzip2", True) == ".tar.bz2.enc"
    assert backup_suffix("lzma", False) == ".tar.xz"
    assert backup_suffix("zstd", True) == ".tar.zst.enc"
    assert backup_suffix("none", False) == ".tar"
    with pytest.raises(EngineError):
        backup_suffix("rar", False)


def test_parallel_gzip_is_one_valid_gzip_stream(tmp_path):
    data = (os.urandom(700_000) + b"minecraft " * 300_000 + bytes(900_000)) * 2

    class Sink:
        parts = []

        def write(self, b):
            self.parts.append(bytes(b))

        def close(self):
            pass

    sink = Sink()
    writer = open_compressor(sink, "gzip", level=6, threads=2)
    for i in range(0, len(data), 123_457):
        writer.write(data[i:i + 123_457])
    writer.close()
    blob = b"".join(sink.parts)
    single = zlib.decompressobj(31)
    assert single.decompress(blob) == data and single.eof and single.unused_data == b""
    assert gzip.decompress(blob) == data
    path = tmp_path / "x.gz"
    path.write_bytes(blob)
    assert subprocess.run(["gzip", "-t", str(path)]).returncode == 0


def test_inspect_reports_world_and_manifest_summary(server_dir, backups_dir, key_spec):
    dest = backups_dir / "b.tar.zst.enc"
    create_archive(server_dir, dest, compression="zstd", encryption=key_spec)
    info = inspect_archive(dest, keyring=key_spec)
    assert (info.world_name, info.minecraft_version, info.file_count) == ("world", "1.14.4", 64)
    assert info.manifest["totals"]["files"] == 64 and "files" not in info.manifest
    assert info.encrypted and info.compression == "zstd" and info.key_fingerprint == key_spec.fingerprint
    assert info.bytes_read == dest.stat().st_size
    with pytest.raises(EngineError) as err:
        inspect_archive(dest)
    assert err.value.code == "DECRYPTION_FAILED"


def test_engine_imports_without_django():
    code = "import sys, backups.engine; assert not [m for m in sys.modules if m.startswith('django')]"
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    root = Path(__file__).resolve().parents[2]
    assert subprocess.run([sys.executable, "-c", code], cwd=root, env=env).returncode == 0


def test_encrypted_backups_leave_no_writer_thread_behind(server_dir, backups_dir, key_spec):
    """Each encrypted backup used to leave one `mcsite-write` thread waiting forever."""
    import threading

    def writers():
        return [t for t in threading.enumerate() if t.name == "mcsite-write"]

    before = len(writers())
    for index in range(5):
        create_archive(server_dir, backups_dir / f"b{index}.tar.gz.enc", compression="gzip", encryption=key_spec)
    assert len(writers()) == before
