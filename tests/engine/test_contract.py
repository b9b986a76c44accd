"""The engine's error contract: every failure is an EngineError with a code from
errors.ALL_CODES, or a verification report that fails — never a TypeError,
KeyError, ValueError or raw tarfile error, whatever the archive holds."""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import subprocess
import tarfile
from pathlib import Path

import pytest

from backups.engine import (EngineError, create_archive, errors, extract_to_staging, inspect_archive,
                            verify_backup)

from . import bombs
from .conftest import snapshot

ENGINE = Path(__file__).resolve().parents[2] / "backups" / "engine"


def _outcomes(path: Path, tmp_path: Path) -> dict:
    """{"verify": (integrity ok, error_code, errors), "inspect"/"extract": EngineError code or "ok"}."""
    out = {}
    report = verify_backup(path)
    integrity = report.methods["archive_integrity"]
    out["verify"] = (integrity.ok, integrity.details.get("error_code"), integrity.errors)
    for op, call in (("inspect", lambda: inspect_archive(path)),
                     ("extract", lambda: extract_to_staging(path, tmp_path / "restored"))):
        before = snapshot(tmp_path)
        try:
            call()
            out[op] = "ok"
        except EngineError as exc:
            out[op] = exc.code
            out[op + "_message"] = exc.message
            assert snapshot(tmp_path) == before  # a failed extraction leaves nothing behind
    return out


def _assert_corrupted(out: dict, reason: str) -> None:
    ok, code, found = out["verify"]
    assert not ok and code == "BACKUP_CORRUPTED", out["verify"]
    assert any(reason in e for e in found), found
    assert out["inspect"] == out["extract"] == "BACKUP_CORRUPTED", out
    assert reason in out["extract_message"] and reason in out["inspect_message"]


# --- malformed manifests ---------------------------------------------------------------------------

_DATA = b"data"
_SHA = hashlib.sha256(_DATA).hexdigest()
_GOOD_FILE = {"path": "a.txt", "size": 4, "sha256": _SHA}


def _manifest(**fields) -> dict:
    doc = {"format": "mcsite-backup-manifest", "version": 1, "files": [_GOOD_FILE], "symlinks": []}
    doc.update(fields)
    return doc


BAD_MANIFESTS = {
    "files_not_objects": _manifest(files=["a.txt"]),
    "file_without_path": _manifest(files=[{"size": 4, "sha256": _SHA}]),
    "path_not_a_string": _manifest(files=[{"path": ["a.txt"], "size": 4, "sha256": _SHA}]),
    "size_not_an_int": _manifest(files=[{"path": "a.txt", "size": "4", "sha256": _SHA}]),
    "size_a_bool": _manifest(files=[{"path": "a.txt", "size": True, "sha256": _SHA}]),
    "sha256_not_hex": _manifest(files=[{"path": "a.txt", "size": 4, "sha256": 12}]),
    "path_escaping": _manifest(files=[_GOOD_FILE, {"path": "../../etc/passwd", "size": 4, "sha256": _SHA}]),
    "path_listed_twice": _manifest(files=[_GOOD_FILE, _GOOD_FILE]),
    "symlinks_not_a_list": _manifest(symlinks=5),
    "symlinks_not_objects": _manifest(symlinks=["link"]),
    "symlink_without_path": _manifest(symlinks=[{"target": "a.txt"}]),
    "symlink_target_not_a_string": _manifest(symlinks=[{"path": "l", "target": None}]),
    "not_an_object": ["mcsite-backup-manifest"],
}


def _archive_with_manifest(path: Path, doc) -> Path:
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for name, data in (("a.txt", _DATA), (".mcsite-manifest.json", json.dumps(doc).encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_a_well_formed_hand_made_manifest_passes(tmp_path):
    out = _outcomes(_archive_with_manifest(tmp_path / "ok.tar.gz", _manifest()), tmp_path)
    assert out["verify"][:2] == (True, None) and out["inspect"] == out["extract"] == "ok"


@pytest.mark.parametrize("case", sorted(BAD_MANIFESTS))
def test_malformed_manifest_is_corruption_everywhere(tmp_path, case):
    archive = _archive_with_manifest(tmp_path / "b.tar.gz", BAD_MANIFESTS[case])
    _assert_corrupted(_outcomes(archive, tmp_path), "manifest unreadable")


# --- truncation --------------------------------------------------------------------------------

def test_bzip2_archive_cut_between_its_streams_is_corruption(server_dir, backups_dir, tmp_path):
    result = create_archive(server_dir, backups_dir / "b.tar.bz2", compression="bzip2", threads=2)
    blob = Path(result.path).read_bytes()
    starts = [m.start() for m in re.finditer(rb"BZh[1-9]1AY&SY", blob) if m.start() > 0]
    assert len(starts) >= 2, "the parallel writer emits several bzip2 streams"
    for cut in starts[:2]:
        path = tmp_path / f"cut-{cut}.tar.bz2"
        path.write_bytes(blob[:cut])
        out = _outcomes(path, tmp_path)
        ok, code, _ = out["verify"]
        assert not ok and code == "BACKUP_CORRUPTED"
        assert out["inspect"] == out["extract"] == "BACKUP_CORRUPTED", out


def _member_offsets(path: Path) -> list:
    with tarfile.open(path) as tar:
        return [m.offset for m in tar.getmembers()]


def test_plain_tar_cut_at_a_member_boundary_is_truncated(server_dir, backups_dir, tmp_path):
    result = create_archive(server_dir, backups_dir / "b.tar", compression="none")
    blob = Path(result.path).read_bytes()
    offsets = _member_offsets(Path(result.path))
    for cut in (offsets[len(offsets) // 2], offsets[-1]):  # in the middle; just before the manifest
        path = tmp_path / f"cut-{cut}.tar"
        path.write_bytes(blob[:cut])
        _assert_corrupted(_outcomes(path, tmp_path), "archive truncated")


def test_foreign_tar_cut_at_a_member_boundary_is_truncated(server_dir, tmp_path):
    archive = tmp_path / "gnu.tar"
    subprocess.run(["tar", "-cf", str(archive), "."], cwd=server_dir, check=True)
    blob = archive.read_bytes()
    offsets = _member_offsets(archive)
    end = max(offsets)  # start of the last member's header
    for cut in (offsets[5], end):
        path = tmp_path / f"cut-{cut}.tar"
        path.write_bytes(blob[:cut])
        _assert_corrupted(_outcomes(path, tmp_path), "archive truncated")


def test_tar_with_only_one_of_its_two_end_blocks_is_truncated(tmp_path):
    tar = bombs.member("a.txt") + bytes(512)
    path = tmp_path / "one-block.tar"
    path.write_bytes(tar)
    _assert_corrupted(_outcomes(path, tmp_path), "archive truncated")


@pytest.mark.parametrize("maker", ["python", "gnu"])
def test_complete_and_empty_tars_from_other_tools_still_pass(tmp_path, maker):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(b"x" * 1000)
    for name, files in (("full.tar", ["a.txt"]), ("empty.tar", [])):
        path = tmp_path / name
        if maker == "python":
            with tarfile.open(path, "w") as tar:
                for rel in files:
                    tar.add(src / rel, arcname=rel)
        else:
            subprocess.run(["tar", "-cf", str(path), "--files-from", "/dev/null", *files], cwd=src, check=True)
        assert path.stat().st_size % 10240 == 0
        out = _outcomes(path, tmp_path)
        assert out["verify"][:2] == (True, None), out
        assert out["inspect"] == out["extract"] == "ok"


def test_damaged_manifest_header_in_plain_tar_is_not_a_foreign_archive(server_dir, backups_dir, tmp_path):
    """tarfile stops quietly at a header with a bad checksum; the manifest behind it must not
    just go missing (that would read as 'archive made by another tool')."""
    result = create_archive(server_dir, backups_dir / "b.tar", compression="none")
    offset = _member_offsets(Path(result.path))[-1]
    blob = bytearray(Path(result.path).read_bytes())
    blob[offset + 10] ^= 0x20
    path = tmp_path / "damaged.tar"
    path.write_bytes(bytes(blob))
    _assert_corrupted(_outcomes(path, tmp_path), "damaged tar header")


# --- headers that make tarfile raise something else than TarError --------------------------------

def _pax(records: bytes, fmt_type=tarfile.XHDTYPE) -> bytes:
    pad = -len(records) % 512
    return bombs.header("././@PaxHeader", size=len(records), type=fmt_type, fmt=tarfile.USTAR_FORMAT) \
        + records + bytes(pad)


def _old_gnu_sparse_cut_short() -> bytes:
    """An old-GNU sparse member whose header says an extension block follows, then nothing."""
    head = bytearray(bombs.header("sparse.bin", size=512, type=tarfile.GNUTYPE_SPARSE))
    head[482] = 1  # isextended
    head[148:156] = b" " * 8
    head[148:156] = b"%06o\0 " % sum(head)
    return bytes(head)


_END = bombs.END_OF_ARCHIVE
HOSTILE_HEADERS = {  # whole tar streams
    "pax_length_of_5000_digits": _pax(b"9" * 5000 + b" path=x\n") + bombs.member("x") + _END,
    "pax_hdrcharset_not_utf8": _pax(bombs.pax_record("hdrcharset", b"\xff\xfe")) + bombs.member("x") + _END,
    "pax_sparse_size_not_a_number": _pax(bombs.pax_record("GNU.sparse.size", b"lots"))
    + bombs.member("x") + _END,
    "pax_sparse_map_not_numbers": _pax(bombs.pax_record("GNU.sparse.map", b"a,b")) + bombs.member("x") + _END,
    "pax_sparse_1_0_map_cut_short": _pax(bombs.pax_record("GNU.sparse.major", b"1")
                                         + bombs.pax_record("GNU.sparse.minor", b"0"))
    + bombs.header("x", size=512) + b"3\n1" + bytes(509) + _END,
    "pax_negative_size": _pax(bombs.pax_record("size", b"-5")) + bombs.member("x") + _END,
    "old_gnu_sparse_cut_short": _old_gnu_sparse_cut_short(),
    "a_thousand_extended_headers_in_a_row": _pax(bombs.pax_record("comment", b"x")) * 1000
    + bombs.member("x") + _END,
}


@pytest.mark.parametrize("case", sorted(HOSTILE_HEADERS))
def test_hostile_tar_headers_are_corruption_not_a_crash(tmp_path, case):
    path = tmp_path / "hostile.tar.gz"
    path.write_bytes(gzip.compress(HOSTILE_HEADERS[case]))
    out = _outcomes(path, tmp_path)
    ok, code, found = out["verify"]
    assert not ok and code == "BACKUP_CORRUPTED", out["verify"]
    assert out["inspect"] == out["extract"] == "BACKUP_CORRUPTED", out


# --- codes ---------------------------------------------------------------------------------------

def test_every_code_the_engine_can_raise_is_a_named_constant_in_all_codes():
    constants = {name for name in dir(errors) if name.isupper() and isinstance(getattr(errors, name), str)}
    assert set(errors.ALL_CODES) == {getattr(errors, name) for name in constants}
    assert len(errors.ALL_CODES) == len(set(errors.ALL_CODES))
    for source in ENGINE.glob("*.py"):
        text = source.read_text()
        assert not re.search(r"EngineError\(\s*[\"']", text), f"{source.name}: an EngineError code as a literal"
        for code in re.findall(r"EngineError\(\s*([A-Za-z_.]+)\s*,", text):
            assert code.split(".")[-1] in constants, f"{source.name}: EngineError({code}, ...)"
    assert errors.from_os_error(OSError(5, "Input/output error")).code == errors.IO_ERROR


@pytest.mark.parametrize("mtime", ["1e400", "nan", "-1e300"])
def test_impossible_pax_modification_time_is_not_a_crash(tmp_path, mtime):
    """tarfile reads a PAX mtime as a float: inf, NaN or 1e300 made os.utime raise
    OverflowError/ValueError out of extract_to_staging. The time is just left as now."""
    path = tmp_path / "times.tar.gz"
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for name in ("d", "d/a.txt"):
            info = tarfile.TarInfo(name)
            info.pax_headers = {"mtime": mtime}
            if name == "d":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = 4
                tar.addfile(info, io.BytesIO(b"data"))
    out = _outcomes(path, tmp_path)
    assert out["verify"][:2] == (True, None) and out["inspect"] == out["extract"] == "ok", out
