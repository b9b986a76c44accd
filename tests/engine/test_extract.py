from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from backups.engine import EngineError, create_archive, extract_to_staging, rollback_swap, swap_into_place

from .conftest import snapshot, tree_digests


def _tar(path: Path, members: list) -> Path:
    """members: (TarInfo fields dict, data bytes or None)."""
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for fields, data in members:
            info = tarfile.TarInfo(fields.pop("name"))
            for key, value in fields.items():
                setattr(info, key, value)
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name, data=b"data"):
    return ({"name": name}, data)


MALICIOUS = {
    "absolute_path": [_file("ok.txt"), _file("/tmp/mcsite-evil-absolute")],
    "dotdot": [_file("ok.txt"), _file("../evil.txt")],
    "dotdot_inside_path": [_file("world/../../evil.txt")],
    "symlink_out": [({"name": "link", "type": tarfile.SYMTYPE, "linkname": "../../etc"}, None)],
    "symlink_absolute": [({"name": "link", "type": tarfile.SYMTYPE, "linkname": "/etc/passwd"}, None)],
    "file_through_symlink": [({"name": "d", "type": tarfile.SYMTYPE, "linkname": "sub"}, None),
                             _file("d/x.txt")],
    "hardlink_out": [({"name": "hl", "type": tarfile.LNKTYPE, "linkname": "../outside.txt"}, None)],
    "hardlink_absolute": [({"name": "hl", "type": tarfile.LNKTYPE, "linkname": "/etc/passwd"}, None)],
    "char_device": [({"name": "dev", "type": tarfile.CHRTYPE, "devmajor": 1, "devminor": 3}, None)],
    "block_device": [({"name": "blk", "type": tarfile.BLKTYPE, "devmajor": 8, "devminor": 0}, None)],
    "fifo": [({"name": "pipe", "type": tarfile.FIFOTYPE}, None)],
    "manifest_not_last": [_file(".mcsite-manifest.json", b'{"format": "mcsite-backup-manifest", "files": []}'),
                          _file("evil.txt")],
    "manifest_named_symlink": [({"name": ".mcsite-manifest.json", "type": tarfile.SYMTYPE, "linkname": "x"},
                                None)],
    "duplicate": [_file("a.txt"), _file("a.txt", b"other")],
}


@pytest.mark.parametrize("case", sorted(MALICIOUS))
def test_extract_refuses_malicious_archive_and_writes_nothing_outside(tmp_path, case):
    area = tmp_path / "area"
    (area / "server").mkdir(parents=True)
    (area / "server" / "keep.txt").write_text("current files")
    (tmp_path / "outside.txt").write_text("outside")
    archive = _tar(tmp_path / "evil.tar.gz", MALICIOUS[case])
    before_area, before_root = snapshot(area), snapshot(tmp_path)

    with pytest.raises(EngineError) as info:
        extract_to_staging(archive, area / "server")

    assert info.value.code == "UNSAFE_ARCHIVE"
    assert snapshot(area) == before_area and snapshot(tmp_path) == before_root
    assert not os.path.exists("/tmp/mcsite-evil-absolute")


def test_symlink_inside_and_hardlink_inside_are_restored(tmp_path):
    archive = _tar(tmp_path / "ok.tar.gz", [
        _file("world/level.txt", b"level"),
        ({"name": "current", "type": tarfile.SYMTYPE, "linkname": "world/level.txt"}, None),
        ({"name": "world/copy.txt", "type": tarfile.LNKTYPE, "linkname": "world/level.txt"}, None),
    ])
    result = extract_to_staging(archive, tmp_path / "server")
    staged = Path(result.staging_dir)
    assert os.readlink(staged / "current") == "world/level.txt"
    assert (staged / "world" / "copy.txt").read_bytes() == b"level"
    assert not result.manifest_checked  # foreign archive: no manifest to compare with


def test_staging_folder_is_hidden_beside_the_target(server_dir, backups_dir, tmp_path):
    result = create_archive(server_dir, backups_dir / "b.tar.gz")
    staged = extract_to_staging(result.path, tmp_path / "server2")
    assert Path(staged.staging_dir).parent == tmp_path
    assert Path(staged.staging_dir).name.startswith(".server2.restore-")
    assert staged.total_bytes == result.total_bytes


def test_truncated_encrypted_stream_produces_no_output(server_dir, backups_dir, tmp_path, key_spec):
    result = create_archive(server_dir, backups_dir / "b.tar.gz.enc", encryption=key_spec)
    path = Path(result.path)
    path.write_bytes(path.read_bytes()[:-10])
    before = snapshot(tmp_path)
    with pytest.raises(EngineError) as info:
        extract_to_staging(path, tmp_path / "restored", keyring=key_spec)
    assert info.value.code == "DECRYPTION_FAILED"
    assert snapshot(tmp_path) == before


def test_extract_without_key_is_refused(server_dir, backups_dir, tmp_path, key_spec):
    result = create_archive(server_dir, backups_dir / "b.tar.enc", compression="none", encryption=key_spec)
    with pytest.raises(EngineError) as info:
        extract_to_staging(result.path, tmp_path / "restored")
    assert info.value.code == "DECRYPTION_FAILED"


def test_member_differing_from_manifest_fails_and_cleans_up(server_dir, backups_dir, tmp_path):
    result = create_archive(server_dir, backups_dir / "b.tar", compression="none")
    with tarfile.open(result.path) as tar:
        offset = tar.getmember("world/poi/r.0.0.mca").offset_data
    data = bytearray(Path(result.path).read_bytes())
    data[offset + 3] ^= 1
    Path(result.path).write_bytes(bytes(data))
    before = snapshot(tmp_path)
    with pytest.raises(EngineError) as info:
        extract_to_staging(result.path, tmp_path / "restored")
    assert (info.value.code, info.value.path) == ("BACKUP_CORRUPTED", "world/poi/r.0.0.mca")
    assert snapshot(tmp_path) == before


def test_swap_into_place_and_rollback(server_dir, backups_dir, tmp_path):
    result = create_archive(server_dir, backups_dir / "b.tar.gz")
    live = tmp_path / "live"
    live.mkdir()
    (live / "old.txt").write_text("old world")
    staged = extract_to_staging(result.path, live)

    previous = swap_into_place(staged.staging_dir, live)
    assert Path(previous).parent == tmp_path and (Path(previous) / "old.txt").exists()
    assert tree_digests(live) == tree_digests(server_dir)

    moved = rollback_swap(live, previous)
    assert (live / "old.txt").read_text() == "old world" and not Path(previous).exists()
    assert tree_digests(Path(moved)) == tree_digests(server_dir)


def test_swap_into_place_of_a_new_target_returns_none(server_dir, backups_dir, tmp_path):
    result = create_archive(server_dir, backups_dir / "b.tar.gz")
    staged = extract_to_staging(result.path, tmp_path / "fresh")
    assert swap_into_place(staged.staging_dir, tmp_path / "fresh") is None
    assert (tmp_path / "fresh" / "world" / "level.dat").exists()
    with pytest.raises(EngineError):
        swap_into_place(tmp_path / "fresh", tmp_path / "elsewhere" / "x")
