from __future__ import annotations

import base64
import io
import os

import pytest

from backups.engine import EncryptionSpec, EngineError, Keyring, generate_key
from backups.engine.crypto import HEADER_SIZE, DecryptingReader, EncryptingWriter, parse_header


class _Sink(io.BytesIO):
    def close(self):  # the writer closes its sink; keep the bytes readable
        pass


def _encrypt(spec, data: bytes, chunk_size: int = 1024) -> bytes:
    sink = _Sink()
    writer = EncryptingWriter(sink, spec, chunk_size=chunk_size)
    for i in range(0, len(data), 700):
        writer.write(data[i:i + 700])
    writer.close()
    return sink.getvalue()


def _decrypt(blob: bytes, keyring) -> bytes:
    return DecryptingReader(io.BytesIO(blob), keyring).read()


@pytest.mark.parametrize("size", [0, 1, 1023, 1024, 1025, 5000])
def test_round_trip_any_length_including_exact_chunk_multiples(key_spec, size):
    data = os.urandom(size)
    assert _decrypt(_encrypt(key_spec, data), key_spec) == data


def test_password_round_trip_and_header_names_mode_and_fingerprint(password_spec):
    blob = _encrypt(password_spec, b"hello world" * 300)
    header = parse_header(blob[:HEADER_SIZE])
    assert header.mode_name == "password"
    assert header.iterations == 100_000
    # Issue #11: the header's fingerprint is salted per file (format 2), no longer the
    # secret's install-independent id; the secret still recognises its file.
    assert header.version == 2 and header.fingerprint != password_spec.fingerprint
    assert password_spec.matches(header)
    assert _decrypt(blob, password_spec) == b"hello world" * 300


def test_wrong_password_is_decryption_failed(password_spec):
    blob = _encrypt(password_spec, b"secret data")
    other = EncryptionSpec.from_password("wrong password", iterations=100_000)
    with pytest.raises(EngineError) as info:
        _decrypt(blob, other)
    assert info.value.code == "DECRYPTION_FAILED"


def test_every_flipped_byte_position_class_is_detected(key_spec):
    data = os.urandom(3000)
    blob = _encrypt(key_spec, data)
    # header fields (magic, mode, chunk size, salt, fingerprint, nonce prefix), first, middle and last chunk
    for position in [0, 6, 7, 9, 20, 35, 44, HEADER_SIZE, HEADER_SIZE + 1500, len(blob) - 1]:
        bad = bytearray(blob)
        bad[position] ^= 0x01
        with pytest.raises(EngineError) as info:
            _decrypt(bytes(bad), key_spec)
        assert info.value.code == "DECRYPTION_FAILED", position


def test_truncation_at_chunk_boundary_and_appended_data_fail(key_spec):
    blob = _encrypt(key_spec, os.urandom(4000), chunk_size=1024)
    sealed = 1024 + 16
    for cut in (HEADER_SIZE + sealed, HEADER_SIZE + 2 * sealed, len(blob) - 1, HEADER_SIZE):
        with pytest.raises(EngineError) as info:
            _decrypt(blob[:cut], key_spec)
        assert info.value.code == "DECRYPTION_FAILED"
    with pytest.raises(EngineError):
        _decrypt(blob + blob[-sealed:], key_spec)


def test_swapped_chunks_fail(key_spec):
    blob = _encrypt(key_spec, os.urandom(4000), chunk_size=1024)
    sealed = 1024 + 16
    first = blob[HEADER_SIZE:HEADER_SIZE + sealed]
    second = blob[HEADER_SIZE + sealed:HEADER_SIZE + 2 * sealed]
    swapped = blob[:HEADER_SIZE] + second + first + blob[HEADER_SIZE + 2 * sealed:]
    with pytest.raises(EngineError) as info:
        _decrypt(swapped, key_spec)
    assert info.value.code == "DECRYPTION_FAILED"


def test_reader_releases_no_plaintext_of_a_chunk_that_fails(key_spec):
    blob = bytearray(_encrypt(key_spec, b"A" * 2048 + b"B" * 2048, chunk_size=1024))
    blob[HEADER_SIZE + 1040 + 5] ^= 0xFF  # inside the second chunk
    reader = DecryptingReader(io.BytesIO(bytes(blob)), key_spec)
    assert reader.read(1024) == b"A" * 1024  # first chunk authenticated on its own
    with pytest.raises(EngineError):
        reader.read(1024)


def test_keyring_picks_the_key_named_by_the_header_after_rotation(key_spec):
    old = EncryptionSpec.from_key(generate_key())
    blob_old = _encrypt(old, b"old backup")
    blob_new = _encrypt(key_spec, b"new backup")
    ring = Keyring([key_spec, old])
    assert _decrypt(blob_old, ring) == b"old backup"
    assert _decrypt(blob_new, ring) == b"new backup"
    with pytest.raises(EngineError) as info:
        _decrypt(blob_old, Keyring([key_spec]))
    assert "fingerprint" in info.value.message


def test_fingerprint_is_stable_and_independent_of_salt():
    key = generate_key()
    assert EncryptionSpec.from_key(key).fingerprint == EncryptionSpec.from_key(key).fingerprint
    assert EncryptionSpec.from_key(key).fingerprint != EncryptionSpec.from_key(generate_key()).fingerprint
    assert len(EncryptionSpec.from_key(key).fingerprint) == 16


@pytest.mark.parametrize("bad", ["", "not base64!!", base64.b64encode(b"x" * 31).decode(),
                                 base64.b64encode(b"x" * 33).decode(), "AAAA"])
def test_key_mode_rejects_anything_but_base64_of_32_bytes(bad):
    with pytest.raises(EngineError) as info:
        EncryptionSpec.from_key(bad)
    assert info.value.code == "INVALID_ENCRYPTION_KEY"


def test_key_mode_accepts_urlsafe_base64():
    raw = b"\xfb\xff" * 16
    assert EncryptionSpec.from_key(base64.urlsafe_b64encode(raw).decode()).secret == raw


def test_password_iterations_below_minimum_are_rejected():
    with pytest.raises(EngineError) as info:
        EncryptionSpec.from_password("pw", iterations=99_999)
    assert info.value.code == "INVALID_SETTING"
    assert EncryptionSpec.from_password("pw").iterations == 600_000


def test_secret_never_appears_in_repr_or_dict(password_spec):
    assert "horse" not in repr(password_spec)
    assert "horse" not in str(password_spec.to_dict())
