"""docs/format.md stays true: its Python snippet, run on its own (only the
standard library and `cryptography`; the engine and Django blocked), decrypts
real backups the engine makes, in password and key mode, into the very
compressed tar the engine itself reads; its header table is the engine's."""
from __future__ import annotations

import io
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import zstandard

from backups.engine import MANIFEST_NAME, EncryptionSpec, create_archive
from backups.engine import crypto
from backups.engine.crypto import DecryptingReader

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "format.md"
FIXTURE = ROOT / "tests" / "fixtures" / "worlds" / "vanilla-1.14.4"
PASSWORD = "correct horse battery staple"


def _snippet() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    found = [b for b in blocks if "def decrypt_backup(" in b]
    assert len(found) == 1, "docs/format.md must hold exactly one ```python block defining decrypt_backup"
    return found[0]


def _run_snippet(tmp_path: Path, source: Path, out: Path, **secret) -> subprocess.CompletedProcess:
    script = tmp_path / "snippet.py"
    script.write_text(_snippet())
    call = (
        "import sys\n"
        "sys.modules['django'] = None; sys.modules['backups'] = None  # the doc alone, not the engine\n"
        f"exec(compile(open({str(script)!r}).read(), 'snippet.py', 'exec'))\n"
        f"decrypt_backup({str(source)!r}, {str(out)!r}, **{secret!r})\n"
    )
    return subprocess.run([sys.executable, "-c", call], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)


def _engine_plaintext(path: Path, spec) -> bytes:
    with open(path, "rb") as fh:
        return DecryptingReader(fh, spec).read()


def _open_tar(data: bytes, compression: str) -> tarfile.TarFile:
    if compression == "zstd":
        data = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
        return tarfile.open(fileobj=io.BytesIO(data), mode="r:")
    return tarfile.open(fileobj=io.BytesIO(data))  # gzip, bzip2, xz, plain: tarfile detects them


@pytest.mark.parametrize("mode, compression", [
    ("password", "gzip"), ("password", "lzma"), ("key", "zstd"), ("key", "bzip2"), ("key", "none"),
])
def test_the_documented_snippet_decrypts_a_real_backup(tmp_path, mode, compression):
    if mode == "password":
        spec, secret = EncryptionSpec.from_password(PASSWORD, iterations=100_000), {"password": PASSWORD}
    else:
        key = crypto.generate_key()
        spec, secret = EncryptionSpec.from_key(key), {"key": key}
    backup = tmp_path / f"server_backup_20250114_020000.{compression}.enc"
    create_archive(FIXTURE, backup, compression=compression, encryption=spec)
    out = tmp_path / "decrypted"

    done = _run_snippet(tmp_path, backup, out, **secret)

    assert done.returncode == 0, done.stderr
    plain = out.read_bytes()
    assert plain == _engine_plaintext(backup, spec)  # byte for byte what the engine reads
    with _open_tar(plain, compression) as tar:
        names = tar.getnames()
        assert names[-1] == MANIFEST_NAME  # the manifest is the last member, as documented
        assert "world/level.dat" in names
        level = tar.extractfile("world/level.dat").read()
    assert level == (FIXTURE / "world" / "level.dat").read_bytes()


def test_the_snippet_refuses_a_wrong_password(tmp_path):
    backup = tmp_path / "b.tar.gz.enc"
    create_archive(FIXTURE, backup, encryption=EncryptionSpec.from_password(PASSWORD, iterations=100_000))
    done = _run_snippet(tmp_path, backup, tmp_path / "out", password="not the password")
    assert done.returncode != 0
    assert "does not open this file" in done.stderr


def test_the_snippet_notices_a_cut_short_file(tmp_path):
    key = crypto.generate_key()
    backup = tmp_path / "b.tar.enc"
    create_archive(FIXTURE, backup, compression="none", encryption=EncryptionSpec.from_key(key))
    data = backup.read_bytes()
    chunk = crypto.DEFAULT_CHUNK_SIZE + crypto.TAG_SIZE
    backup.write_bytes(data[: crypto.HEADER_SIZE + 2 * chunk])  # ends exactly at a chunk boundary
    done = _run_snippet(tmp_path, backup, tmp_path / "out", key=key)
    assert done.returncode != 0 and "InvalidTag" in done.stderr


def test_the_header_table_is_the_engines():
    text = DOC.read_text()
    assert f"`{crypto.HEADER.format}`" in text
    assert f"{crypto.HEADER_SIZE} bytes" in text
    assert f"`{crypto.MAGIC.decode()}`" in text
    assert f"`{crypto.FORMAT_VERSION}`" in text
    assert f"{crypto.DEFAULT_CHUNK_SIZE} ({crypto.DEFAULT_CHUNK_SIZE // 1024} KiB)" in text
    for label in (crypto._HKDF_INFO, crypto._V2_AEAD_LABEL, crypto._V2_FP_LABEL, crypto._FP_KEY_LABEL,
                  crypto._FP_PASSWORD_SALT):
        assert f'b"{label.decode()}"' in text, label
    assert f"`{MANIFEST_NAME}`" in text
