"""Streaming authenticated encryption: chunked AES-256-GCM (STREAM construction).

File layout (all integers big-endian)::

    header (47 bytes)
      magic        6  b"MCSENC"
      version      1  2 (1: older files, still read)
      mode         1  1 = password, 2 = key
      chunk_size   4  plaintext bytes per chunk (the last chunk may be shorter)
      iterations   4  PBKDF2 iterations (0 in key mode)
      salt        16  random per file
      fingerprint  8  tells which secret opens the file (see below)
      nonce_prefix 7  random per file
    chunk*            AES-256-GCM(ciphertext || 16-byte tag)

The fingerprint (issue #11). Version 1 wrote ``EncryptionSpec.fingerprint``,
one value per secret: scrypt of the password under ONE fixed salt, the same on
every install, so a table computed once would name common passwords in anyone's
files. Version 2 writes a per-file key check value instead: with
``m = KDF(secret, salt, iterations)`` (the file's random salt, PBKDF2 or HKDF
as below), the AEAD key is ``HMAC(m, "mcsite/v2/aead")`` and the fingerprint
``HMAC(m, "mcsite/v2/fingerprint")[:8]``. The same password gives a different
fingerprint in every file; testing a guess against it costs the full PBKDF2,
exactly what trying to decrypt chunk 0 already costs, so it is no shortcut;
and matching a file needs nothing but the secret and the header (a rebuilt
install or a standalone tool: ``spec.matches(header)``). For the right secret
the derivation is the one decryption needs anyway; results are cached per
(secret, file), so verify + preview + restore of a file derive once.
``EncryptionSpec.fingerprint`` stays the stable, per-secret identifier the
database keeps (``key_fingerprint``) to find a backup's secret; it no longer
appears in files.

Each chunk's nonce is ``nonce_prefix || counter (4 bytes) || last flag (1 byte)``
and the whole header is the associated data of every chunk, as in age/Tink's
STREAM: a chunk cannot be moved (counter), the stream cannot be cut short at a
chunk boundary (the final chunk is the only one sealed with flag 1) or grown
(a chunk after the flagged one fails), and any header byte that changes makes
chunk 0 fail. An empty plaintext still produces one (empty, flagged) chunk.

The per-file key material is PBKDF2-HMAC-SHA256(password, salt, iterations) in
password mode and HKDF-SHA256(key, salt, "mcsite stream v1") in key mode, so two
files never share a key even with the same secret (version 1 used it as the
AEAD key directly).

Decryption authenticates each chunk before releasing its plaintext. A reader
only learns that the *stream* is complete when it reaches the flagged chunk, so
consumers that write output (extract) stage it and only move it into place
after ``read()`` has returned b"" without error.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import struct
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import BinaryIO, Iterable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from .errors import DECRYPTION_FAILED, INVALID_ENCRYPTION_KEY, INVALID_SETTING, EngineError

MAGIC = b"MCSENC"
FORMAT_VERSION = 2  # the version written; 1 is still read
LEGACY_VERSION = 1
MODE_PASSWORD = 1
MODE_KEY = 2
HEADER = struct.Struct(">6sBBII16s8s7s")
HEADER_SIZE = HEADER.size  # 47
TAG_SIZE = 16
DEFAULT_CHUNK_SIZE = 256 * 1024
MAX_CHUNK_SIZE = 16 * 1024 * 1024  # a reader never buffers more than this
DEFAULT_ITERATIONS = 600_000
MIN_ITERATIONS = 100_000
MAX_ITERATIONS = 50_000_000  # refuse headers that would make the KDF a denial of service

# Password fingerprints must be as slow to brute-force as the KDF itself,
# otherwise the public header would let an attacker test guesses cheaply.
# scrypt N=2^15, r=8, p=3 is one of OWASP's recommended equivalents.
_FP_SCRYPT = dict(n=2**15, r=8, p=3)
_FP_PASSWORD_SALT = b"mcsite/password-fingerprint/v1"  # the stable id, and version 1 headers only
_FP_KEY_LABEL = b"mcsite/key-fingerprint/v1"
_HKDF_INFO = b"mcsite stream v1"
_V2_AEAD_LABEL = b"mcsite/v2/aead"
_V2_FP_LABEL = b"mcsite/v2/fingerprint"

# Per-process caches, so the same secret is not run through scrypt or PBKDF2
# again for the same file (verify, preview and restore read one file three
# times) or for a new EncryptionSpec object of the same secret (the services
# build them per call). Entries are keyed by an HMAC of the secret under a
# random per-process key, never by the secret itself.
_PROCESS_KEY = secrets.token_bytes(32)
_CACHE_LOCK = threading.Lock()
# (tag, salt, iterations) -> (fingerprint, AEAD key), least recently used first
_FILE_KEYS: "OrderedDict[tuple, tuple[bytes, bytes]]" = OrderedDict()
_FILE_KEYS_MAX = 512
_STABLE_IDS: dict[bytes, str] = {}


def _decryption_failed(reason: str) -> EngineError:
    return EngineError(DECRYPTION_FAILED, f"Decryption failed: {reason}")


@dataclass(frozen=True, eq=False)
class EncryptionSpec:
    """A password or a 32-byte key, plus the KDF setting used when encrypting.

    Build with ``from_password`` or ``from_key``; the secret never appears in
    ``repr`` or ``to_dict``.
    """

    mode: int
    secret: bytes = field(repr=False)
    iterations: int = DEFAULT_ITERATIONS
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_password(cls, password: str, iterations: int = DEFAULT_ITERATIONS) -> "EncryptionSpec":
        if not isinstance(password, str) or not password:
            raise EngineError(INVALID_SETTING, "Password must be a non-empty string")
        if not isinstance(iterations, int) or iterations < MIN_ITERATIONS or iterations > MAX_ITERATIONS:
            raise EngineError(
                INVALID_SETTING, f"PBKDF2 iterations must be between {MIN_ITERATIONS} and {MAX_ITERATIONS}"
            )
        return cls(MODE_PASSWORD, password.encode("utf-8"), iterations)

    @classmethod
    def from_key(cls, b64_key: str | bytes) -> "EncryptionSpec":
        key = None
        if isinstance(b64_key, (str, bytes)):
            text = b64_key.decode("ascii", "replace") if isinstance(b64_key, bytes) else b64_key
            # Accept the standard and the URL-safe alphabets, nothing else.
            text = text.strip().replace("-", "+").replace("_", "/")
            try:
                key = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                key = None
        if key is None or len(key) != 32:
            raise EngineError(INVALID_ENCRYPTION_KEY, "Encryption key must be base64 of exactly 32 bytes")
        return cls(MODE_KEY, key, 0)

    @property
    def mode_name(self) -> str:
        return "password" if self.mode == MODE_PASSWORD else "key"

    @property
    def fingerprint(self) -> str:
        """16 hex chars naming the secret, independent of any file's salt: the
        stable identifier the database keeps to find a backup's secret (and
        the value version 1 headers carry). Files of version 2 carry a
        per-file value instead (``file_fingerprint``).

        Key mode: HMAC-SHA256(key, label)[:8]. Password mode: scrypt of the
        password under a fixed label salt, truncated to 8 bytes — memory-hard,
        so the value is no shortcut for guessing the password.
        """
        if "fp" not in self._cache:
            tag = self._tag
            with _CACHE_LOCK:
                known = _STABLE_IDS.get(tag)
            if known is None:
                if self.mode == MODE_KEY:
                    digest = hmac.new(self.secret, _FP_KEY_LABEL, hashlib.sha256).digest()
                else:
                    digest = Scrypt(salt=_FP_PASSWORD_SALT, length=32, **_FP_SCRYPT).derive(self.secret)
                known = digest[:8].hex()
                with _CACHE_LOCK:
                    _STABLE_IDS[tag] = known
            self._cache["fp"] = known
        return self._cache["fp"]

    @property
    def _tag(self) -> bytes:
        """Names this secret in the per-process caches without holding it."""
        if "tag" not in self._cache:
            named = bytes([self.mode]) + self.secret
            self._cache["tag"] = hmac.new(_PROCESS_KEY, named, hashlib.sha256).digest()
        return self._cache["tag"]

    def _v2_keys(self, salt: bytes, iterations: int) -> tuple[bytes, bytes]:
        """(fingerprint 8 bytes, AEAD key) of a version 2 file with this salt."""
        iterations = iterations if self.mode == MODE_PASSWORD else 0
        entry = (self._tag, bytes(salt), iterations)
        with _CACHE_LOCK:
            found = _FILE_KEYS.get(entry)
            if found is not None:
                _FILE_KEYS.move_to_end(entry)
                return found
        material = self.derive_file_key(salt, iterations)
        found = (hmac.new(material, _V2_FP_LABEL, hashlib.sha256).digest()[:8],
                 hmac.new(material, _V2_AEAD_LABEL, hashlib.sha256).digest())
        with _CACHE_LOCK:
            _FILE_KEYS[entry] = found
            while len(_FILE_KEYS) > _FILE_KEYS_MAX:
                _FILE_KEYS.popitem(last=False)
        return found

    def file_fingerprint(self, salt: bytes, iterations: int | None = None) -> str:
        """The fingerprint a version 2 file with this salt carries (hex)."""
        return self._v2_keys(salt, self.iterations if iterations is None else iterations)[0].hex()

    def aead_key_for(self, header: "StreamHeader") -> bytes | None:
        """The AEAD key of the file whose header this is, or None when this
        secret did not make the file. Needs nothing but the secret and the
        header (no database): costs one KDF, cached per (secret, file)."""
        if header.mode != self.mode:
            return None
        if header.version == LEGACY_VERSION:
            if not hmac.compare_digest(self.fingerprint, header.fingerprint):
                return None
            return self.derive_file_key(header.salt, header.iterations)
        fp, key = self._v2_keys(header.salt, header.iterations)
        return key if hmac.compare_digest(fp.hex(), header.fingerprint) else None

    def matches(self, header: "StreamHeader") -> bool:
        """Whether this secret made the file whose header this is."""
        return self.aead_key_for(header) is not None

    def derive_file_key(self, salt: bytes, iterations: int) -> bytes:
        if self.mode == MODE_PASSWORD:
            kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=salt, iterations=iterations)
            return kdf.derive(self.secret)
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=_HKDF_INFO).derive(self.secret)

    def to_dict(self) -> dict:
        return {"mode": self.mode_name, "iterations": self.iterations, "fingerprint": self.fingerprint}


def generate_key() -> str:
    """A new random 32-byte key, base64 (standard alphabet) — for ``from_key``."""
    return base64.b64encode(secrets.token_bytes(32)).decode("ascii")


class Keyring:
    """Several secrets, so old backups still decrypt after a key rotation.

    Decryption picks the secret whose fingerprint the file header names.
    """

    def __init__(self, specs: Iterable[EncryptionSpec] = ()):
        self.specs = [s for s in specs if s is not None]

    @classmethod
    def coerce(cls, value) -> "Keyring":
        if value is None:
            return cls()
        if isinstance(value, Keyring):
            return value
        if isinstance(value, EncryptionSpec):
            return cls([value])
        return cls(list(value))

    def find(self, mode: int, fingerprint: str) -> EncryptionSpec | None:
        """The secret with this stable fingerprint (what the database keeps)."""
        for spec in self.specs:
            if spec.mode == mode and hmac.compare_digest(spec.fingerprint, fingerprint):
                return spec
        return None

    def match(self, header: "StreamHeader") -> tuple[EncryptionSpec, bytes] | None:
        """(secret, AEAD key) for the file whose header this is, trying the
        secrets in order (current first): one cached KDF per candidate."""
        for spec in self.specs:
            key = spec.aead_key_for(header)
            if key is not None:
                return spec, key
        return None

    def __len__(self) -> int:
        return len(self.specs)


def _nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    return prefix + struct.pack(">IB", counter, 1 if last else 0)


class EncryptingWriter:
    """A write-only sink: plaintext in, header + sealed chunks out to ``dest``."""

    def __init__(self, dest, spec: EncryptionSpec, *, chunk_size: int = DEFAULT_CHUNK_SIZE):
        self._dest = dest
        self._chunk_size = chunk_size
        salt = os.urandom(16)
        self._prefix = os.urandom(7)
        iterations = spec.iterations if spec.mode == MODE_PASSWORD else 0
        fingerprint, key = spec._v2_keys(salt, iterations)  # cached: verifying it next costs no KDF
        self.header = HEADER.pack(
            MAGIC, FORMAT_VERSION, spec.mode, chunk_size, iterations, salt, fingerprint, self._prefix,
        )
        self._aead = AESGCM(key)
        self._counter = 0
        self._buf = bytearray()
        self._closed = False
        dest.write(self.header)

    def write(self, data) -> int:
        self._buf += data
        size = self._chunk_size
        # Strictly greater: the final chunk must be sealed by close(), never here.
        while len(self._buf) > size:
            self._seal(bytes(self._buf[:size]), last=False)
            del self._buf[:size]
        return len(data)

    def _seal(self, chunk: bytes, last: bool) -> None:
        if self._counter > 0xFFFFFFFF:
            raise EngineError(INVALID_SETTING, "Stream too long for the chunk counter")
        nonce = _nonce(self._prefix, self._counter, last)
        self._dest.write(self._aead.encrypt(nonce, chunk, self.header))
        self._counter += 1

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._seal(bytes(self._buf), last=True)
            self._buf = bytearray()
            if hasattr(self._dest, "close"):
                self._dest.close()


@dataclass
class StreamHeader:
    mode: int
    chunk_size: int
    iterations: int
    salt: bytes
    fingerprint: str  # version 2: this file's own value; version 1: the secret's stable id
    nonce_prefix: bytes
    raw: bytes
    version: int = FORMAT_VERSION

    @property
    def mode_name(self) -> str:
        return "password" if self.mode == MODE_PASSWORD else "key"


def parse_header(raw: bytes) -> StreamHeader:
    if len(raw) < HEADER_SIZE or not raw.startswith(MAGIC):
        raise _decryption_failed("not an mcsite encrypted stream or header truncated")
    magic, version, mode, chunk_size, iterations, salt, fp, prefix = HEADER.unpack(raw[:HEADER_SIZE])
    if version not in (LEGACY_VERSION, FORMAT_VERSION):
        raise _decryption_failed(f"unsupported format version {version}")
    if mode not in (MODE_PASSWORD, MODE_KEY):
        raise _decryption_failed("unknown mode in header")
    if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise _decryption_failed("chunk size in header out of range")
    if mode == MODE_PASSWORD and not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
        raise _decryption_failed("iteration count in header out of range")
    return StreamHeader(mode, chunk_size, iterations, salt, fp.hex(), prefix, raw[:HEADER_SIZE], version)


class DecryptingReader:
    """A read-only stream of authenticated plaintext from an encrypted source.

    ``read()`` only ever returns bytes of chunks whose tag verified; it raises
    ``EngineError(DECRYPTION_FAILED)`` on a wrong key, any changed byte, a
    reordered chunk or a missing final chunk (truncation).
    """

    def __init__(self, source: BinaryIO, keyring, *, header: StreamHeader | None = None):
        self._src = source
        if header is None:
            header = parse_header(_read_exact(source, HEADER_SIZE))
        self.header = header
        keyring = Keyring.coerce(keyring)
        found = keyring.match(header)
        if found is None:
            raise _decryption_failed(
                f"no {header.mode_name} in the keyring matches this file's fingerprint {header.fingerprint}"
            )
        self.spec, key = found
        self._aead = AESGCM(key)
        self._sealed_size = header.chunk_size + TAG_SIZE
        self._pending = b""  # ciphertext read ahead, to know which chunk is last
        self._plain = memoryview(b"")
        self._counter = 0
        self._done = False

    @property
    def key_fingerprint(self) -> str:
        """The stable id of the secret that opened the file (as the database keeps it)."""
        return self.spec.fingerprint

    def _next_chunk(self) -> None:
        want = self._sealed_size + 1  # one byte more tells us whether this chunk is the last
        data = self._pending
        while len(data) < want:
            more = self._src.read(max(want - len(data), 65536))
            if not more:
                break
            data += more
        last = len(data) <= self._sealed_size
        sealed, self._pending = (data, b"") if last else (data[: self._sealed_size], data[self._sealed_size:])
        if len(sealed) < TAG_SIZE:
            raise _decryption_failed("stream truncated")
        try:
            plain = self._aead.decrypt(_nonce(self.header.nonce_prefix, self._counter, last), sealed,
                                       self.header.raw)
        except InvalidTag:
            # The key was already confirmed against the header (the file's own
            # key check value, or the secret's fingerprint in version 1): a
            # chunk that does not authenticate was changed, not opened wrongly.
            raise _decryption_failed(f"data changed or truncated (chunk {self._counter})") from None
        self._counter += 1
        self._done = last
        self._plain = memoryview(plain)

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            parts = []
            while True:
                part = self.read(1 << 20)
                if not part:
                    return b"".join(parts)
                parts.append(part)
        while not self._plain and not self._done:
            self._next_chunk()
        out = self._plain[:n].tobytes()
        self._plain = self._plain[n:]
        return out

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        pass


def _read_exact(source, n: int) -> bytes:
    data = b""
    while len(data) < n:
        more = source.read(n - len(data))
        if not more:
            break
        data += more
    return data
