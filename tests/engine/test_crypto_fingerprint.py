"""Issue #11 (D): the fingerprint in an encrypted file's header is salted per
file (format version 2), so the same password shows a different fingerprint
in every file and on every install — no precomputed table matches it. A tool
holding only the password and the file can still match them; version 1 files
(one fixed salt for every install) still open; a keyring with several secrets
picks the right one for each file, and matching is cached."""
from __future__ import annotations

import hashlib
import hmac
import io
import os
import struct

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from backups.engine import EncryptionSpec, EngineError, Keyring, generate_key
from backups.engine import crypto
from backups.engine.crypto import HEADER_SIZE, DecryptingReader, EncryptingWriter, parse_header

PASSWORD = "correct horse battery staple"


class _Sink(io.BytesIO):
    def close(self):
        pass


def _encrypt(spec, data: bytes, chunk_size: int = 1024) -> bytes:
    sink = _Sink()
    writer = EncryptingWriter(sink, spec, chunk_size=chunk_size)
    writer.write(data)
    writer.close()
    return sink.getvalue()


def _decrypt(blob: bytes, keyring) -> bytes:
    return DecryptingReader(io.BytesIO(blob), keyring).read()


def _legacy_v1_encrypt(spec: EncryptionSpec, data: bytes, chunk_size: int = 1024) -> bytes:
    """A version 1 file exactly as the old writer made it, rebuilt here from
    the old code path (fixed global fingerprint salt), not from the new writer."""
    if spec.mode == crypto.MODE_PASSWORD:
        fp = Scrypt(salt=b"mcsite/password-fingerprint/v1", length=32, n=2**15, r=8, p=3).derive(spec.secret)[:8]
    else:
        fp = hmac.new(spec.secret, b"mcsite/key-fingerprint/v1", hashlib.sha256).digest()[:8]
    salt, prefix = os.urandom(16), os.urandom(7)
    iterations = spec.iterations if spec.mode == crypto.MODE_PASSWORD else 0
    header = struct.pack(">6sBBII16s8s7s", b"MCSENC", 1, spec.mode, chunk_size, iterations, salt, fp, prefix)
    aead = AESGCM(spec.derive_file_key(salt, iterations))
    # the old writer sealed a last full chunk as the flagged one, and an empty stream as one empty chunk
    chunks = [data[i:i + chunk_size] for i in range(0, len(data), chunk_size)] or [b""]
    out = [header]
    for counter, chunk in enumerate(chunks):
        last = counter == len(chunks) - 1
        nonce = prefix + struct.pack(">IB", counter, 1 if last else 0)
        out.append(aead.encrypt(nonce, chunk, header))
    return b"".join(out)


@pytest.fixture(scope="module")
def specs():
    """Three passwords and two keys, as a site's keyring after rotations."""
    return {
        "pw-old": EncryptionSpec.from_password("an older tired passphrase", iterations=100_000),
        "pw-mid": EncryptionSpec.from_password("the middle one, rotated", iterations=100_000),
        "pw-now": EncryptionSpec.from_password(PASSWORD, iterations=100_000),
        "key-old": EncryptionSpec.from_key(generate_key()),
        "key-now": EncryptionSpec.from_key(generate_key()),
    }


def test_two_files_with_the_same_password_have_different_fingerprints(specs):
    spec = specs["pw-now"]
    first, second = (parse_header(_encrypt(spec, b"same data")[:HEADER_SIZE]) for _ in range(2))
    assert first.version == second.version == 2
    assert first.fingerprint != second.fingerprint and first.salt != second.salt
    # and none of them is the install-independent identifier of the secret
    assert spec.fingerprint not in (first.fingerprint, second.fingerprint)
    # another install, the same password: still no shared value to look up
    same_password = EncryptionSpec.from_password(PASSWORD, iterations=100_000)
    third = parse_header(_encrypt(same_password, b"same data")[:HEADER_SIZE])
    assert third.fingerprint not in (first.fingerprint, second.fingerprint)


def test_same_for_keys(specs):
    spec = specs["key-now"]
    first, second = (parse_header(_encrypt(spec, b"x")[:HEADER_SIZE]) for _ in range(2))
    assert first.fingerprint != second.fingerprint and spec.fingerprint not in (first.fingerprint, second.fingerprint)


def test_a_tool_with_only_the_password_and_the_file_can_match_them(specs):
    blob = _encrypt(specs["pw-now"], b"data")
    header = parse_header(blob[:HEADER_SIZE])
    rebuilt = EncryptionSpec.from_password(PASSWORD, iterations=600_000)  # no database, other default
    assert rebuilt.matches(header)
    assert not EncryptionSpec.from_password("not the password", iterations=100_000).matches(header)
    assert not specs["key-now"].matches(header)
    assert _decrypt(blob, rebuilt) == b"data"


@pytest.mark.parametrize("name", ["pw-old", "key-old", "pw-now"])
@pytest.mark.parametrize("size", [0, 1, 1024, 3000])
def test_a_version_1_file_still_decrypts(specs, name, size):
    data = os.urandom(size)
    blob = _legacy_v1_encrypt(specs[name], data)
    header = parse_header(blob[:HEADER_SIZE])
    assert header.version == 1 and header.fingerprint == specs[name].fingerprint  # the old, fixed-salt value
    assert specs[name].matches(header)
    assert _decrypt(blob, Keyring(specs.values())) == data
    others = Keyring(s for n, s in specs.items() if n != name)
    with pytest.raises(EngineError) as info:
        _decrypt(blob, others)
    assert info.value.code == "DECRYPTION_FAILED" and "fingerprint" in info.value.message


def test_a_keyring_with_several_secrets_picks_the_right_one_for_each_file(specs):
    ring = Keyring(specs.values())
    files = {name: _encrypt(spec, f"made with {name}".encode()) for name, spec in specs.items()}
    files.update({f"{name}/v1": _legacy_v1_encrypt(spec, f"v1 with {name}".encode())
                  for name, spec in specs.items()})
    for label, blob in files.items():
        name = label.split("/")[0]
        reader = DecryptingReader(io.BytesIO(blob), ring)
        expected = (f"v1 with {name}" if label.endswith("/v1") else f"made with {name}").encode()
        assert reader.read() == expected, label
        assert reader.spec is specs[name]
        assert reader.key_fingerprint == specs[name].fingerprint  # the stable id the database keeps
    with pytest.raises(EngineError) as info:
        _decrypt(files["pw-mid"], Keyring([specs["pw-old"], specs["pw-now"], specs["key-now"]]))
    assert info.value.code == "DECRYPTION_FAILED" and "fingerprint" in info.value.message


def test_matching_is_cached_per_secret_and_file(specs, monkeypatch):
    ring = Keyring([specs["pw-old"], specs["pw-mid"], specs["pw-now"]])
    blob = _encrypt(specs["pw-now"], b"cached")
    calls = []
    original = EncryptionSpec.derive_file_key
    monkeypatch.setattr(EncryptionSpec, "derive_file_key",
                        lambda self, salt, iterations: calls.append(1) or original(self, salt, iterations))
    assert _decrypt(blob, ring) == b"cached"
    first = len(calls)
    assert first <= 3  # at most one derivation per candidate, none again to decrypt
    for _ in range(3):  # verify, preview, restore of the same file: no KDF again
        assert _decrypt(blob, ring) == b"cached"
    # a fresh spec object for the same password (config builds new ones per call) hits the cache too
    fresh = EncryptionSpec.from_password(PASSWORD, iterations=100_000)
    assert _decrypt(blob, fresh) == b"cached"
    assert len(calls) == first


def test_the_writer_matches_its_own_file_without_another_kdf(specs, monkeypatch):
    spec = EncryptionSpec.from_password("written then verified at once", iterations=100_000)
    blob = _encrypt(spec, b"v")
    calls = []
    monkeypatch.setattr(EncryptionSpec, "derive_file_key", lambda *a: calls.append(1))
    assert _decrypt(blob, spec) == b"v" and not calls


def test_the_header_fingerprint_is_authenticated(specs):
    blob = bytearray(_encrypt(specs["key-now"], b"data"))
    blob[32] ^= 0x01  # inside the fingerprint field (offset 32..39)
    with pytest.raises(EngineError) as info:
        _decrypt(bytes(blob), specs["key-now"])
    assert info.value.code == "DECRYPTION_FAILED"


def test_unknown_format_versions_are_refused(specs):
    blob = bytearray(_encrypt(specs["key-now"], b"data"))
    blob[6] = 3
    with pytest.raises(EngineError) as info:
        parse_header(bytes(blob))
    assert "version 3" in info.value.message
