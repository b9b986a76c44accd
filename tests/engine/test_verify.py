from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from backups.engine import EncryptionSpec, create_archive, quality_level, verify_backup
from backups.engine.verify import MethodResult, quality_score

from . import regions


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x55
    path.write_bytes(bytes(data))


def _methods(report):
    return {name: (m.ok, m.skipped) for name, m in report.methods.items()}


def test_untouched_backup_passes_every_method_and_scores_100(server_dir, backups_dir):
    result = create_archive(server_dir, backups_dir / "b.tar.gz")
    report = verify_backup(result.path, expected_sha256=result.sha256, restore_test=True)
    assert _methods(report) == {n: (True, False) for n in report.methods}
    assert (report.quality_score, report.quality_level) == (100, "Excellent")
    assert report.file_count == 64
    assert report.methods["world_validation"].details["region_files"] == 46
    json.dumps(report.to_dict())  # JSON-serialisable for the service layer


def test_flipped_byte_in_compressed_archive_fails_checksum_and_integrity(server_dir, backups_dir):
    result = create_archive(server_dir, backups_dir / "b.tar.gz")
    _flip(Path(result.path), result.size_bytes // 2)
    report = verify_backup(result.path, expected_sha256=result.sha256)
    assert not report.methods["checksum"].ok and "b.tar.gz" in report.methods["checksum"].errors[0]
    integrity = report.methods["archive_integrity"]
    assert not integrity.ok and integrity.details["error_code"] == "BACKUP_CORRUPTED"
    assert report.quality_level == "Critical" and not report.ok


def test_flipped_byte_in_uncompressed_member_names_that_member(server_dir, backups_dir):
    result = create_archive(server_dir, backups_dir / "b.tar", compression="none")
    with tarfile.open(result.path) as tar:
        member = tar.getmember("world/level.dat")
    _flip(Path(result.path), member.offset_data + 10)
    report = verify_backup(result.path)
    errors = report.methods["archive_integrity"].errors
    assert errors == ["world/level.dat: SHA-256 differs from the manifest"]
    assert any("world/level.dat" in e for e in report.methods["world_validation"].errors)


def test_flipped_byte_in_encrypted_stream_is_decryption_failed(server_dir, backups_dir, key_spec):
    result = create_archive(server_dir, backups_dir / "b.tar.gz.enc", encryption=key_spec)
    _flip(Path(result.path), result.size_bytes - 100)
    report = verify_backup(result.path, expected_sha256=result.sha256, keyring=key_spec)
    integrity = report.methods["archive_integrity"]
    assert not integrity.ok and integrity.details["error_code"] == "DECRYPTION_FAILED"
    assert not report.methods["checksum"].ok


def test_wrong_password_fails_integrity_with_decryption_failed(server_dir, backups_dir, password_spec):
    result = create_archive(server_dir, backups_dir / "b.tar.gz.enc", encryption=password_spec)
    wrong = EncryptionSpec.from_password("not it", iterations=100_000)
    report = verify_backup(result.path, expected_sha256=result.sha256, keyring=wrong)
    assert report.methods["checksum"].ok
    assert report.methods["archive_integrity"].details["error_code"] == "DECRYPTION_FAILED"
    assert report.quality_score <= 39


def test_encrypted_backup_without_key_still_gets_its_checksum_checked(server_dir, backups_dir, key_spec):
    result = create_archive(server_dir, backups_dir / "b.tar.zst.enc", compression="zstd", encryption=key_spec)
    report = verify_backup(result.path, expected_sha256=result.sha256)
    assert _methods(report)["checksum"] == (True, False)
    assert report.methods["archive_integrity"].skipped and report.methods["world_validation"].skipped


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none", "bzip2"])
def test_truncated_archive_fails_integrity(server_dir, backups_dir, compression):
    result = create_archive(server_dir, backups_dir / f"b.{compression}", compression=compression)
    path = Path(result.path)
    path.write_bytes(path.read_bytes()[: result.size_bytes * 2 // 3])
    report = verify_backup(path)
    assert not report.methods["archive_integrity"].ok
    assert report.quality_level == "Critical"


def test_corrupt_chunk_in_source_world_fails_world_validation_naming_the_region(server_dir, backups_dir):
    target = server_dir / "world" / "region" / "r.1.3.mca"
    _flip(target, regions.first_chunk_payload_offset(target.read_bytes()) + 20)
    result = create_archive(server_dir, backups_dir / "b.tar.gz")
    report = verify_backup(result.path, expected_sha256=result.sha256)
    world = report.methods["world_validation"]
    assert not world.ok and world.details["files_with_errors"] == ["world/region/r.1.3.mca"]
    assert all(e.startswith("world/region/r.1.3.mca: chunk") for e in world.errors)
    assert report.methods["archive_integrity"].ok and report.methods["checksum"].ok
    assert report.quality_level == "Fair"


def test_zero_byte_region_file_is_valid(server_dir, backups_dir):
    (server_dir / "world" / "region" / "r.9.9.mca").write_bytes(b"")
    result = create_archive(server_dir, backups_dir / "b.tar.gz")
    assert verify_backup(result.path).methods["world_validation"].ok


def _verify_world_with_region(server_dir, backups_dir, blob: bytes, name: str = "r.7.7.mca"):
    (server_dir / "world" / "region" / name).write_bytes(blob)
    result = create_archive(server_dir, backups_dir / "b.tar.gz")
    return verify_backup(result.path).methods["world_validation"]


def test_chunk_past_end_of_file_fails_naming_the_region(server_dir, backups_dir):
    blob = regions.region({0: regions.zlib_chunk()})
    blob = regions.set_location(blob, 5, 40, 1)  # sector 40 of a 3-sector file
    world = _verify_world_with_region(server_dir, backups_dir, blob)
    assert not world.ok
    assert world.errors == ["world/region/r.7.7.mca: chunk (5, 0) starts past end of file (sector 40, file has 3)"]


@pytest.mark.parametrize("damage, expected", [
    (lambda b: regions.set_location(b, 1, 1, 1), "overlaps the region header"),
    (lambda b: regions.set_location(b, 1, 2, 1), "overlaps another chunk"),
    (lambda b: b[: 2 * 4096 + 20], "extends past end of file"),
    (lambda b: b[:4096], "region header truncated"),
])
def test_damaged_region_headers_are_reported(server_dir, backups_dir, damage, expected):
    blob = damage(regions.region({0: regions.zlib_chunk()}, pad=True))
    world = _verify_world_with_region(server_dir, backups_dir, blob)
    assert not world.ok and expected in world.errors[0] and "r.7.7.mca" in world.errors[0]


def test_truncated_nbt_inside_a_chunk_is_caught(server_dir, backups_dir):
    blob = regions.region({0: (2, __import__("zlib").compress(regions.chunk_nbt()[:-5]))})
    world = _verify_world_with_region(server_dir, backups_dir, blob)
    assert world.errors == ["world/region/r.7.7.mca: chunk (0, 0) is not valid NBT (NBT data truncated)"]


def test_a_chunk_of_lists_nested_thousands_deep_is_a_finding_not_a_crash(server_dir, backups_dir):
    """Before issue #16 the NBT walker recursed and this chunk ended verification
    with a RecursionError from the world check's thread."""
    import zlib
    deep = b"\x0a\x00\x00\x09\x00\x01a" + b"\x09\x00\x00\x00\x01" * 3000 + b"\x01\x00\x00\x00\x00\x00"
    world = _verify_world_with_region(server_dir, backups_dir, regions.region({0: (2, zlib.compress(deep))}))
    assert world.errors == ["world/region/r.7.7.mca: chunk (0, 0) is not valid NBT (NBT nested too deeply)"]


def test_every_chunk_compression_type_is_understood(server_dir, backups_dir):
    import gzip
    import zlib
    nbt = regions.chunk_nbt()
    blob = regions.region({0: (1, gzip.compress(nbt)), 1: (2, zlib.compress(nbt)), 2: (3, nbt),
                           3: regions.lz4_chunk(nbt), 4: (130, b""), 5: (127, b"\x00\x01x?")})
    (server_dir / "world" / "region" / "c.228.224.mcc").write_bytes(zlib.compress(nbt))
    world = _verify_world_with_region(server_dir, backups_dir, blob)
    assert world.ok, world.errors
    assert world.details["chunks_checked"] >= 6
    assert world.warnings == ["world/region/r.7.7.mca: chunk (5, 0) uses custom compression (127); "
                              "payload not checked (unsupported compression 127)"]


def test_missing_external_chunk_file_fails(server_dir, backups_dir):
    blob = regions.region({4: (130, b"")})
    world = _verify_world_with_region(server_dir, backups_dir, blob)
    assert not world.ok and "c.228.224.mcc is missing" in world.errors[0]


def test_broken_level_dat_is_named(server_dir, backups_dir):
    (server_dir / "world" / "level.dat").write_bytes(b"\x1f\x8b garbage")
    result = create_archive(server_dir, backups_dir / "b.tar.gz")
    world = verify_backup(result.path).methods["world_validation"]
    assert not world.ok and world.errors[0].startswith("world/level.dat: level.dat invalid")


def test_old_world_without_version_reports_none(server_dir, backups_dir):
    import nbtlib
    level = nbtlib.load(server_dir / "world" / "level.dat")
    del level["Data"]["Version"]
    level.save(server_dir / "world" / "level.dat", gzipped=True)
    result = create_archive(server_dir, backups_dir / "b.tar.gz")
    report = verify_backup(result.path)
    assert report.ok and report.world_name == "world" and report.minecraft_version is None


def test_every_world_folder_is_found(server_dir, backups_dir):
    import shutil
    shutil.copytree(server_dir / "world", server_dir / "world_nether")
    result = create_archive(server_dir, backups_dir / "b.tar.gz")
    report = verify_backup(result.path)
    assert [w["path"] for w in report.worlds] == ["world", "world_nether"]
    assert report.methods["world_validation"].details["region_files"] == 92


def test_quality_levels_and_score_formula():
    assert [quality_level(s) for s in (100, 90, 89, 75, 60, 59, 40, 39, 0)] == [
        "Excellent", "Excellent", "Good", "Good", "Fair", "Poor", "Poor", "Critical", "Critical"]

    def m(name, ok=True, skipped=False):
        return MethodResult(name, ok=ok, skipped=skipped)

    assert quality_score({"a": m("checksum"), "b": m("archive_integrity"), "c": m("world_validation"),
                          "d": m("restore_test", ok=False, skipped=True)}) == 100
    assert quality_score({"c": m("checksum", skipped=True), "w": m("world_validation")}) == 100
    assert quality_score({"c": m("checksum"), "a": m("archive_integrity"),
                          "w": m("world_validation", ok=False)}) == 72
    assert quality_score({"c": m("checksum", ok=False), "a": m("archive_integrity")}) == 39
    assert quality_score({"r": m("restore_test", ok=False), "a": m("archive_integrity")}) == 59
    assert quality_score({}) == 0


@pytest.mark.parametrize("member", ["world/region/r.0.0.mca", "logs/latest.log"])
def test_a_tar_cut_inside_a_members_data_is_corrupted_whichever_reader_reads_it(tmp_path, member):
    """The gzip stream is whole, the tar inside it ends in the middle of one member's
    data: verification (world check or plain hashing) and restore both refuse it."""
    import gzip
    import io

    from backups.engine import EngineError, extract_to_staging
    from backups.engine.errors import BACKUP_CORRUPTED

    body = bytes(range(256)) * 12_000  # ~3 MiB, several reads
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        info = tarfile.TarInfo(member)
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    raw = data.getvalue()
    cut = raw[: 512 + len(body) // 2]  # the header, then half the data
    path = tmp_path / "cut.tar.gz"
    path.write_bytes(gzip.compress(cut))
    report = verify_backup(path)
    integrity = report.methods["archive_integrity"]
    assert not integrity.ok and any(member in e and "cut short" in e for e in integrity.errors), integrity.errors
    with pytest.raises(EngineError) as caught:
        extract_to_staging(path, tmp_path / "server")
    assert caught.value.code == BACKUP_CORRUPTED and "cut short" in caught.value.message
    assert not (tmp_path / "server").exists()
