"""`python -m backups.engine verify|list|extract|decrypt` (issue #13, disaster
recovery): opens real backups of the fixture world with nothing but the file
and a key, password or exported keys file — run as a separate process with
no Django settings, which must never import Django."""
from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import zstandard

from backups.engine import COMPRESSIONS, EncryptionSpec, backup_suffix, create_archive, generate_key
from backups.engine.crypto import EncryptingWriter

from . import bombs
from .conftest import snapshot, tree_digests

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "worlds" / "vanilla-1.14.4"
PASSWORD = "correct horse battery staple"
KEY = generate_key()
OLD_KEY = generate_key()


@pytest.fixture
def work(tmp_path) -> Path:
    """A folder of this test's own (tmp_path also holds the site's test roots)."""
    path = tmp_path / "work"
    path.mkdir()
    return path


def _env() -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DJANGO", "MCSITE", "DATABASE", "CELERY", "PYTEST"))}
    env["PYTHONPATH"] = str(ROOT)
    return env


def run(*args, cwd: Path, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    """The command as a user runs it, with -X importtime to prove Django is never imported."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "backups.engine", *map(str, args)],
                          cwd=cwd, env=_env(), input=stdin, capture_output=True, timeout=300)
    imported = [line for line in done.stderr.decode().splitlines() if line.startswith("import time:")]
    assert imported, "importtime gave no output"
    assert not [line for line in imported if "django" in line.split("|")[-1]], "Django was imported"
    assert not [line for line in imported if line.split("|")[-1].strip().startswith(("mcsite", "servers"))]
    done.err = "\n".join(line for line in done.stderr.decode().splitlines()
                         if not line.startswith("import time:"))
    done.out = done.stdout.decode(errors="replace")
    return done


def _spec(encryption: str):
    if encryption == "key":
        return EncryptionSpec.from_key(KEY)
    if encryption == "password":
        return EncryptionSpec.from_password(PASSWORD, iterations=100_000)
    return None


def _secret_args(encryption: str) -> list:
    return {"key": ["--key", KEY], "password": ["--password", PASSWORD], "plain": []}[encryption]


# Each compression plain and encrypted (the two modes in turn): every kind of file a site writes.
CASES = ([(c, "plain") for c in COMPRESSIONS]
         + [(c, ("password", "key")[i % 2]) for i, c in enumerate(COMPRESSIONS)])


class _Backups(dict):
    """Real backups of the fixture world, made once per module when first asked for."""

    def __init__(self, folder: Path):
        super().__init__()
        self.folder = folder

    def __missing__(self, kind):
        compression, encryption = kind
        spec = _spec(encryption)
        suffix = backup_suffix(compression, bool(spec))
        path = self.folder / f"{encryption}-server_backup_20250114_020000{suffix}"
        self[kind] = (path, create_archive(FIXTURE, path, compression=compression, encryption=spec))
        return self[kind]


@pytest.fixture(scope="module")
def backups(tmp_path_factory) -> dict:
    return _Backups(tmp_path_factory.mktemp("cli-backups"))


def _copy(src: Path, dest_dir: Path) -> Path:
    dest = dest_dir / src.name
    shutil.copyfile(src, dest)
    return dest


# --- every compression, encrypted and not ----------------------------------------------------------

@pytest.mark.parametrize("compression, encryption", CASES)
def test_verify_list_extract_and_decrypt_every_kind_of_backup(backups, work, compression, encryption):
    path, result = backups[compression, encryption]
    secrets = _secret_args(encryption)

    verified = run("verify", path, *secrets, "--sha256", result.sha256, cwd=work)
    assert verified.returncode == 0, verified.err + verified.out
    lines = verified.out.splitlines()
    for method in ("checksum", "archive_integrity", "world_validation"):
        assert any(line.split()[:2] == [method, "passed"] for line in lines), verified.out
    assert any(line.split()[:2] == ["restore_test", "skipped"] for line in lines)
    assert "Minecraft 1.14.4" in verified.out and lines[-1] == "result   PASSED"

    listed = run("list", path, *secrets, cwd=work)
    assert listed.returncode == 0, listed.err
    level_size = (FIXTURE / "world" / "level.dat").stat().st_size
    assert f"{level_size:>14}  world/level.dat" in listed.out.splitlines()
    assert listed.out.splitlines()[-1].startswith(f"{result.file_count} files, {result.total_bytes} bytes")

    target = work / "restored" / "server"
    extracted = run("extract", path, *secrets, "--to", target, cwd=work)
    assert extracted.returncode == 0, extracted.err
    assert tree_digests(target) == tree_digests(FIXTURE)
    assert snapshot(work / "restored") == ["server"] + [f"server/{p}" for p in snapshot(target)]

    source = _copy(path, work)
    decrypted = run("decrypt", source, *secrets, cwd=work)
    if encryption == "plain":
        assert decrypted.returncode == 2 and "is not encrypted" in decrypted.err
        return
    assert decrypted.returncode == 0, decrypted.err
    out = work / source.name[: -len(".enc")]
    data = out.read_bytes()
    if compression == "zstd":
        data = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert tar.extractfile("world/level.dat").read() == (FIXTURE / "world" / "level.dat").read_bytes()
    assert [p.name for p in work.iterdir() if p.name.startswith(".partial-")] == []
    before = out.read_bytes()
    again = run("decrypt", source, *secrets, cwd=work)  # never overwrites
    assert again.returncode == 6 and again.err.startswith("DESTINATION_EXISTS:")
    assert out.read_bytes() == before


def test_decrypt_to_standard_output(backups, work):
    path, _ = backups["zstd", "key"]
    done = run("decrypt", path, "--key", KEY, "-o", "-", cwd=work)
    assert done.returncode == 0, done.err
    data = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(done.stdout)).read()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        assert "world/level.dat" in tar.getnames()


def test_decrypt_memory_stays_bounded_for_a_large_backup(work):
    """A 64 MiB backup decrypts with the process growing by far less than the file."""
    folder = work / "big"
    folder.mkdir()
    with open(folder / "region.bin", "wb") as fh:
        for _ in range(64):
            fh.write(os.urandom(1 << 20))
    backup = work / "big.tar.enc"
    create_archive(folder, backup, compression="none", encryption=EncryptionSpec.from_key(KEY))
    shutil.rmtree(folder)
    probe = ("import resource, sys; sys.modules['django'] = None\n"
             "from backups.engine.cli import main\n"
             "rc = main(sys.argv[1:])\n"
             "print('maxrss', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
             "sys.exit(rc)\n")

    def maxrss_kib(*args) -> int:
        done = subprocess.run([sys.executable, "-c", probe, *map(str, args)], cwd=work, env=_env(),
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return int(done.stderr.split("maxrss")[-1])

    small = work / "small.tar.enc"
    create_archive(FIXTURE / "world" / "data", small, compression="none",
                   encryption=EncryptionSpec.from_key(KEY))
    baseline = maxrss_kib("decrypt", small, "--key", KEY)
    big = maxrss_kib("decrypt", backup, "--key", KEY)
    assert (work / "big.tar").stat().st_size > 64 << 20
    assert big - baseline < 24 * 1024, (baseline, big)  # KiB: well under the 64 MiB file


# --- secrets ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["verify", "list", "extract", "decrypt"])
def test_a_wrong_key_is_a_clear_decryption_failure_and_writes_nothing(backups, work, command):
    path, _ = backups["zstd", "key"]
    source = _copy(path, work)
    extra = ["--to", work / "out"] if command == "extract" else []
    done = run(command, source, "--key", OLD_KEY, *extra, cwd=work)
    assert done.returncode == 3, done.err
    assert done.err.startswith("DECRYPTION_FAILED: wrong key"), done.err
    assert sorted(p.name for p in work.iterdir()) == [source.name]


def test_a_wrong_password_and_a_missing_secret_say_what_is_needed(backups, work):
    path, _ = backups["gzip", "password"]
    wrong = run("verify", path, "--password", "not it at all", cwd=work)
    assert wrong.returncode == 3 and wrong.err.startswith("DECRYPTION_FAILED: wrong password")
    missing = run("list", path, cwd=work)
    assert missing.returncode == 3
    assert "encrypted" in missing.err and "--password" in missing.err
    only_a_key = run("list", path, "--key", KEY, cwd=work)
    assert only_a_key.returncode == 3
    assert "encrypted with a password and no password was given" in only_a_key.err


def test_a_malformed_key_is_a_usage_error(backups, work):
    path, _ = backups["zstd", "key"]
    done = run("verify", path, "--key", "not-base64-of-32-bytes", cwd=work)
    assert done.returncode == 2 and "base64 of exactly 32 bytes" in done.err


def test_password_from_a_file_and_from_standard_input(backups, work):
    path, _ = backups["lzma", "password"]
    (work / "pw").write_text(PASSWORD + "\n")
    assert run("list", path, "--password-file", work / "pw", cwd=work).returncode == 0
    piped = run("list", path, "--password-file", "-", cwd=work, stdin=(PASSWORD + "\n").encode())
    assert piped.returncode == 0, piped.err


def _keys_file(work: Path, entries: list) -> Path:
    doc = {"format": "mcsite-keys", "version": 1, "warning": "secrets in clear", "created_at": "2025-01-14",
           "site": {"name": "test", "node": "default"}, "encryption_enabled": True, "keys": entries}
    path = work / "keys.json"
    path.write_text(json.dumps(doc))
    return path


def test_a_keys_file_opens_backups_of_every_secret_it_holds(work):
    old = EncryptionSpec.from_password(PASSWORD, iterations=100_000)
    new = EncryptionSpec.from_key(KEY)
    for name, spec in (("old.tar.gz.enc", old), ("new.tar.gz.enc", new)):
        create_archive(FIXTURE, work / name, encryption=spec)
    keys = _keys_file(work, [
        {"kind": "archive", "current": True, "mode": "key", "fingerprint": new.fingerprint, "iterations": 0,
         "secret": KEY},
        {"kind": "archive", "current": False, "mode": "password", "fingerprint": old.fingerprint,
         "iterations": 100_000, "secret": PASSWORD},
    ])
    for name in ("old.tar.gz.enc", "new.tar.gz.enc"):
        done = run("verify", work / name, "--keys-file", keys, cwd=work)
        assert done.returncode == 0, done.err + done.out
    other = _keys_file(work, [{"kind": "archive", "mode": "key", "secret": OLD_KEY}])
    refused = run("verify", work / "new.tar.gz.enc", "--keys-file", other, cwd=work)
    assert refused.returncode == 3 and refused.err.startswith("DECRYPTION_FAILED: wrong key")


def test_a_keys_file_that_is_not_one_is_a_usage_error(backups, work):
    path, _ = backups["zstd", "key"]
    (work / "bad.json").write_text('{"format": "something else"}')
    done = run("verify", path, "--keys-file", work / "bad.json", cwd=work)
    assert done.returncode == 2 and "not an mcsite keys export" in done.err
    missing = run("verify", path, "--keys-file", work / "nope.json", cwd=work)
    assert missing.returncode == 2 and "cannot read the keys file" in missing.err


# --- damaged files ---------------------------------------------------------------------------------

def _flip(path: Path, where: float = 0.5) -> None:
    data = bytearray(path.read_bytes())
    data[int(len(data) * where)] ^= 0x40
    path.write_bytes(bytes(data))


def test_a_corrupt_plain_backup_fails_verification_and_extraction(backups, work):
    path, result = backups["gzip", "plain"]
    source = _copy(path, work)
    _flip(source)
    verified = run("verify", source, "--sha256", result.sha256, cwd=work)
    assert verified.returncode == 4, verified.out
    assert any(line.split()[:2] == ["checksum", "FAILED"] for line in verified.out.splitlines())
    assert any(line.split()[:2] == ["archive_integrity", "FAILED"] for line in verified.out.splitlines())
    assert verified.out.splitlines()[-1] == "result   FAILED"
    extracted = run("extract", source, "--to", work / "out", cwd=work)
    assert extracted.returncode == 4 and extracted.err.startswith("BACKUP_CORRUPTED:"), extracted.err
    assert sorted(p.name for p in work.iterdir()) == [source.name]  # no target, no staging left


def test_a_changed_encrypted_backup_is_refused(backups, work):
    path, _ = backups["zstd", "key"]
    source = _copy(path, work)
    _flip(source, 0.7)
    for command, extra in (("decrypt", []), ("extract", ["--to", work / "out"])):
        done = run(command, source, "--key", KEY, *extra, cwd=work)
        assert done.returncode == 3, done.err
        # the key is the right one (its check value matched): the message must not say otherwise
        assert done.err.startswith("DECRYPTION_FAILED: data changed or truncated"), done.err
    assert sorted(p.name for p in work.iterdir()) == [source.name]


def test_a_truncated_backup_is_reported(backups, work):
    path, _ = backups["lzma", "plain"]
    source = _copy(path, work)
    source.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    for command in ("verify", "list"):
        done = run(command, source, cwd=work)
        assert done.returncode == 4, (command, done.err, done.out)
    assert "truncated" in run("list", source, cwd=work).err


def test_a_wrong_checksum_alone_is_exit_1(backups, work):
    path, _ = backups["gzip", "plain"]
    done = run("verify", path, "--sha256", "0" * 64, cwd=work)
    assert done.returncode == 1
    assert any(line.split()[:2] == ["checksum", "FAILED"] for line in done.out.splitlines())


def test_a_missing_file(work):
    done = run("verify", work / "nothing.tar.gz", cwd=work)
    assert done.returncode == 6 and done.err.startswith("BACKUP_NOT_FOUND:")


# --- hostile archives ------------------------------------------------------------------------------

def _traversal_tar() -> bytes:
    return (bombs.member("server.properties", b"level-name=world\n") + bombs.member("../evil.txt", b"owned")
            + bombs.END_OF_ARCHIVE)


@pytest.mark.parametrize("encrypted", [False, True])
def test_a_path_traversal_archive_is_refused_and_nothing_lands_outside(work, encrypted):
    holder = work / "holder"
    holder.mkdir()
    if encrypted:  # a key holder cannot smuggle it past the rules either
        backup = holder / "evil.tar.gz.enc"
        with open(backup, "wb") as fh:
            writer = EncryptingWriter(fh, EncryptionSpec.from_key(KEY))
            writer.write(gzip.compress(_traversal_tar()))
            writer.close()
        secrets = ["--key", KEY]
    else:
        backup = holder / "evil.tar.gz"
        backup.write_bytes(gzip.compress(_traversal_tar()))
        secrets = []
    before = snapshot(work)

    extracted = run("extract", backup, *secrets, "--to", holder / "out" / "server", cwd=holder)
    assert extracted.returncode == 5, extracted.err
    assert extracted.err.startswith("UNSAFE_ARCHIVE: '..' in archive path (../evil.txt)")
    assert snapshot(work) == [*before, "holder/out"]  # only the (empty) parent it created
    assert not (holder / "out" / "evil.txt").exists() and not (holder / "evil.txt").exists()

    verified = run("verify", backup, *secrets, cwd=holder)
    assert verified.returncode == 5
    assert "../evil.txt" in verified.out and "restore would refuse" in verified.out


def test_a_symlink_leading_out_is_refused(work):
    data = (bombs.header("link", type=tarfile.SYMTYPE, linkname="../../etc")
            + bombs.member("link/passwd", b"x")
            + bombs.END_OF_ARCHIVE)
    backup = work / "evil.tar"
    backup.write_bytes(data)
    done = run("extract", backup, "--to", work / "out", cwd=work)
    assert done.returncode == 5 and done.err.startswith("UNSAFE_ARCHIVE: symlink leaves the folder")
    assert sorted(p.name for p in work.iterdir()) == ["evil.tar"]


def test_a_header_bomb_fails_quickly_as_corrupted(work):
    backup = work / "bomb.tar.zst"
    backup.write_bytes(bombs.gnu_long_name_zst())
    done = run("list", backup, cwd=work)
    assert done.returncode == 4, done.err


# --- extract targets -------------------------------------------------------------------------------

def test_extract_refuses_a_folder_that_is_not_empty_and_accepts_an_empty_one(backups, work):
    path, _ = backups["gzip", "plain"]
    full = work / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    refused = run("extract", path, "--to", full, cwd=work)
    assert refused.returncode == 6 and refused.err.startswith("DESTINATION_EXISTS:")
    assert "not empty" in refused.err
    assert [p.name for p in full.iterdir()] == ["keep.txt"] and (full / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in work.iterdir()) == ["full"]  # no staging folder left

    empty = work / "empty"
    empty.mkdir()
    done = run("extract", path, "--to", empty, cwd=work)
    assert done.returncode == 0, done.err
    assert tree_digests(empty) == tree_digests(FIXTURE)


def test_extract_only_a_part(backups, work):
    path, _ = backups["lzma", "password"]
    done = run("extract", path, "--password", PASSWORD, "--to", work / "part", "--path", "world/DIM-1",
               cwd=work)
    assert done.returncode == 0, done.err
    assert sorted(p.name for p in (work / "part").iterdir()) == ["world"]
    assert tree_digests(work / "part" / "world" / "DIM-1") == tree_digests(FIXTURE / "world" / "DIM-1")
    assert sorted(p.name for p in (work / "part" / "world").iterdir()) == ["DIM-1"]


def test_list_and_verify_as_json(backups, work):
    path, result = backups["bzip2", "key"]
    listed = json.loads(run("list", path, "--key", KEY, "--json", cwd=work).out)
    assert listed["encrypted"] is True and listed["compression"] == "bzip2" and listed["manifest"] is True
    files = {m["path"]: m for m in listed["members"] if m["type"] == "file"}
    assert len(files) == result.file_count and files["world/level.dat"]["sha256"]
    report = json.loads(run("verify", path, "--key", KEY, "--json", cwd=work).out)
    assert report["ok"] is True and report["methods"]["archive_integrity"]["ok"] is True


def test_usage_without_a_command(work):
    done = run(cwd=work)
    assert done.returncode == 2 and "verify" in done.err
