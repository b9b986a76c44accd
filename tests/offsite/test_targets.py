"""Round trips through each target kind against real remote ends (a second
folder, moto's S3 server over HTTP, OpenSSH's sshd): what is uploaded is
verified, listed, read back byte for byte and deleted; names never leave the
target."""
from __future__ import annotations

import hashlib
import json

import pytest

from backups.offsite import OffsiteError, TargetConfig, file_digests, open_target
from backups.offsite.names import PARTIAL_SUFFIX
from tests.offsite.conftest import s3_config, sha256_of

MIB = 1 << 20


@pytest.fixture(params=["local", "s3", "sftp"])
def target(request, tmp_path):
    if request.param == "local":
        disk = tmp_path / "second-disk"
        disk.mkdir()
        config = TargetConfig(kind="local", name="offsite-local", settings={"path": str(disk)})
    elif request.param == "s3":
        config = s3_config(request.getfixturevalue("moto_s3"), request.getfixturevalue("s3_bucket"))
    else:
        config = request.getfixturevalue("sshd").config()
    with open_target(config) as opened:
        yield opened


def read_all(target, name, offset=0, length=None) -> bytes:
    with target.open_read(name, offset, length) as stream:
        out = bytearray()
        for chunk in iter(lambda: stream.read(256 * 1024), b""):
            out += chunk
        return bytes(out)


def test_it_passes_its_own_test(target):
    result = target.test()
    assert result.steps == ("connect", "write", "read", "compare", "delete", "confirm-delete")
    assert target.list() == []


def test_round_trip_of_a_real_backup(target, backup_file):
    seen, states = [], []
    result = target.upload(backup_file, "survival/vanilla.tar.zst", progress=lambda d, t: seen.append((d, t)),
                           on_state=states.append)
    size = backup_file.stat().st_size
    assert (result.size, result.sha256) == (size, sha256_of(backup_file))
    assert seen[-1] == (size, size)
    assert states[0] and states[-1] is None          # a clean-up state while uploading, none left after

    checked = target.verify("survival/vanilla.tar.zst", size=size, sha256=result.sha256,
                            part_size=result.part_size, composite=result.composite)
    assert checked.method == ("s3_composite" if target.kind == "s3" else "read_back")
    [entry] = target.list()
    assert (entry.name, entry.size) == ("survival/vanilla.tar.zst", size)
    assert entry.modified is not None
    assert target.list("survival/") == [entry] and target.list("creative/") == []

    assert hashlib.sha256(read_all(target, "survival/vanilla.tar.zst")).hexdigest() == result.sha256
    original = backup_file.read_bytes()
    assert read_all(target, "survival/vanilla.tar.zst", 1000, 4096) == original[1000:5096]
    assert read_all(target, "survival/vanilla.tar.zst", size - 10) == original[-10:]

    assert target.delete("survival/vanilla.tar.zst") is True
    assert target.list() == [] and not target.exists("survival/vanilla.tar.zst")
    assert target.delete("survival/vanilla.tar.zst") is False


def test_round_trip_of_a_file_of_many_parts(target, big_file):
    result = target.upload(big_file, "big/big.bin")
    digests = file_digests(big_file, 5 * MIB)
    assert result.sha256 == digests.sha256
    if target.kind == "s3":
        assert result.part_size == 5 * MIB
        assert result.composite == digests.composite and result.composite.endswith("-9")
        # The composite compared from the local file gives the same answer as the recorded one.
        target.verify("big/big.bin", size=result.size, sha256=result.sha256, local_path=big_file,
                      part_size=5 * MIB)
        assert target.verify("big/big.bin", size=result.size, sha256=result.sha256,
                             read_back=True).method == "read_back"
    target.verify("big/big.bin", size=result.size, sha256=result.sha256, composite=result.composite,
                  part_size=result.part_size)
    assert hashlib.sha256(read_all(target, "big/big.bin")).hexdigest() == result.sha256
    with open(big_file, "rb") as fh:                  # across the first part boundary
        fh.seek(5 * MIB - 100)
        assert read_all(target, "big/big.bin", 5 * MIB - 100, 300) == fh.read(300)
    assert target.delete("big/big.bin")


def tamper(target, request, name: str, data: bytes) -> None:
    """Replace the remote copy's bytes behind the target's back."""
    if target.kind == "local":
        (target.root / name).write_bytes(data)
    elif target.kind == "sftp":
        (request.getfixturevalue("sshd").root / name).write_bytes(data)
    else:
        request.getfixturevalue("moto_s3").client().put_object(Bucket=target.bucket, Key=target.key_prefix + name,
                                                                 Body=data)


def test_verify_refuses_a_copy_with_other_bytes(target, backup_file, request):
    result = target.upload(backup_file, "a.tar.zst")
    data = bytearray(backup_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tamper(target, request, "a.tar.zst", bytes(data))
    with pytest.raises(OffsiteError) as caught:
        target.verify("a.tar.zst", size=result.size, sha256=result.sha256, composite=result.composite,
                      part_size=result.part_size)
    assert caught.value.code == "CHECKSUM_MISMATCH"
    assert "other bytes" in caught.value.message

    tamper(target, request, "a.tar.zst", bytes(data[:-1]))
    with pytest.raises(OffsiteError) as caught:
        target.verify("a.tar.zst", size=result.size, sha256=result.sha256, composite=result.composite)
    assert caught.value.code == "SIZE_MISMATCH"
    assert f"has {result.size - 1} bytes" in caught.value.message


def test_missing_copies_are_not_found(target):
    for action in (lambda: target.open_read("gone.tar"), lambda: target.get_small("gone.json"),
                   lambda: target.verify("gone.tar", size=1, sha256="00" * 32)):
        with pytest.raises(OffsiteError) as caught:
            action()
        assert caught.value.code == "NOT_FOUND", caught.value


def test_sidecars_are_written_whole_and_read_back(target, big_file):
    sidecar = json.dumps({"server": "Survival", "sha256": "ab" * 32}).encode()
    target.put_small("survival/a.json", sidecar)
    assert target.get_small("survival/a.json") == sidecar
    target.put_small("survival/a.json", b"{}")
    assert target.get_small("survival/a.json") == b"{}"
    assert [e.name for e in target.list()] == ["survival/a.json"]   # no temporary names left

    target.upload(big_file, "survival/a.tar.zst")
    with pytest.raises(OffsiteError) as caught:
        target.get_small("survival/a.tar.zst")
    assert caught.value.code == "TOO_LARGE"


BAD_NAMES = ["../x", "/etc/passwd", "a\\b", "a/../../x", "a\0b", "", "a//b", "./a", "a/", "x" + PARTIAL_SUFFIX]


@pytest.mark.parametrize("bad", BAD_NAMES)
def test_names_never_leave_the_target(target, backup_file, tmp_path, bad):
    actions = [lambda: target.upload(backup_file, bad), lambda: target.put_small(bad, b"{}"),
               lambda: target.get_small(bad), lambda: target.open_read(bad), lambda: target.delete(bad),
               lambda: target.exists(bad), lambda: target.verify(bad, size=1, sha256="00" * 32)]
    for action in actions:
        with pytest.raises(OffsiteError) as caught:
            action()
        assert caught.value.code == "INVALID_NAME", (bad, caught.value)
    assert not (tmp_path / "x").exists()
    assert target.list() == []


def test_listing_prefixes_are_confined(target):
    for bad in ("../", "/etc/", "a\\"):
        with pytest.raises(OffsiteError) as caught:
            target.list(bad)
        assert caught.value.code == "INVALID_NAME"


def test_only_s3_signs_urls(target, backup_file):
    target.upload(backup_file, "dl.tar.zst")
    url = target.signed_url("dl.tar.zst", 60)
    if target.kind != "s3":
        assert url is None
        return
    import urllib.request

    assert "X-Amz-Signature=" in url and "X-Amz-Expires=60" in url
    with urllib.request.urlopen(url) as answer:     # no credentials needed
        assert hashlib.sha256(answer.read()).hexdigest() == sha256_of(backup_file)
