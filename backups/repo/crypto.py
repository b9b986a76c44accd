"""The repository's keys and how one blob is sealed (issue #14, item 1).

One random 32-byte **repository key**. From it, by HKDF-SHA256 with their
own labels: the **id key** (blob ids are HMAC-SHA256 of the plaintext under
it, so that the repository never shows which well-known files it holds —
a plain SHA-256 would) and the **data key** (AES-256-GCM).

A sealed blob is ``nonce (12) ‖ AES-256-GCM(data key, nonce, body, aad=id)``
where body is ``0x00 ‖ plaintext`` or ``0x01 ‖ zstd(plaintext)`` (zstd only
when it saves at least 1/32; region chunks are zlib already). The id as AAD
binds each sealed blob to the id it is stored under: moving a blob to
another id fails authentication, as does any changed byte. Opening checks
the tag, then that the plaintext's HMAC is the id.

Rotating the site's keys re-wraps the repository key (the wrap is the
key's own business, elsewhere); blobs are never re-encrypted.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
from dataclasses import dataclass

import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
OVERHEAD = NONCE_BYTES + TAG_BYTES + 1
RAW, ZSTD = 0, 1
ZSTD_LEVEL = 3
_CONTEXTS = threading.local()


def _zstd():
    """This thread's zstd contexts, made once: a context a blob would cost
    allocating and freeing megabytes each time (and the heap grows ragged)."""
    contexts = getattr(_CONTEXTS, "value", None)
    if contexts is None:
        contexts = _CONTEXTS.value = _Contexts(zstandard.ZstdCompressor(level=ZSTD_LEVEL),
                                               zstandard.ZstdDecompressor())
    return contexts


@dataclass(frozen=True)
class _Contexts:
    compressor: zstandard.ZstdCompressor
    decompressor: zstandard.ZstdDecompressor


class BlobError(Exception):
    """A sealed blob that does not open: changed bytes, the wrong key, or
    stored under another id. ``blob_id`` names it."""

    def __init__(self, blob_id: bytes, why: str):
        super().__init__(f"blob {blob_id.hex()[:16]}: {why}")
        self.blob_id = blob_id
        self.why = why


def _derive(key: bytes, label: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=b"mcsite-repo " + label).derive(key)


@dataclass(frozen=True)
class RepoKey:
    """The repository key and the two keys derived from it."""

    key: bytes

    def __post_init__(self):
        if len(self.key) != KEY_BYTES:
            raise ValueError("a repository key is 32 bytes")
        object.__setattr__(self, "_id_key", _derive(self.key, b"blob-id"))
        object.__setattr__(self, "_aead", AESGCM(_derive(self.key, b"blob-data")))

    @classmethod
    def generate(cls) -> "RepoKey":
        return cls(os.urandom(KEY_BYTES))

    def blob_id(self, plaintext: bytes) -> bytes:
        return hmac.digest(self._id_key, plaintext, "sha256")  # the one-shot C path

    def seal(self, plaintext: bytes, *, blob_id: bytes | None = None) -> tuple[bytes, bytes]:
        """(id, sealed bytes) of a plaintext."""
        blob_id = blob_id or self.blob_id(plaintext)
        packed = _zstd().compressor.compress(plaintext) if plaintext else b""
        body = bytes([ZSTD]) + packed if plaintext and len(packed) < len(plaintext) - len(plaintext) // 32 \
            else bytes([RAW]) + plaintext
        nonce = os.urandom(NONCE_BYTES)
        return blob_id, nonce + self._aead.encrypt(nonce, body, blob_id)

    def open(self, blob_id: bytes, sealed: bytes, *, max_size: int = 64 * 1024 * 1024) -> bytes:
        """The plaintext of a sealed blob, or BlobError."""
        if len(sealed) < NONCE_BYTES + TAG_BYTES + 1:
            raise BlobError(blob_id, "too short")
        try:
            body = self._aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], blob_id)
        except InvalidTag:
            raise BlobError(blob_id, "authentication failed (changed bytes, another key, or another blob's place)") from None
        if body[0] == RAW:
            plaintext = body[1:]
        elif body[0] == ZSTD:
            try:
                plaintext = _zstd().decompressor.decompress(body[1:], max_output_size=max_size)
            except zstandard.ZstdError as exc:
                raise BlobError(blob_id, f"does not decompress ({exc})") from None
        else:
            raise BlobError(blob_id, f"unknown body format {body[0]}")
        if not hmac.compare_digest(self.blob_id(plaintext), blob_id):
            raise BlobError(blob_id, "its contents are not those of its id")
        return plaintext

    def seal_meta(self, plaintext: bytes, label: bytes) -> bytes:
        """A repository document (a pack header, an index, a snapshot),
        compressed and sealed with ``label`` as its AAD, so one kind of
        document cannot be passed off as another."""
        body = _zstd().compressor.compress(plaintext)
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, body, b"meta:" + label)

    def open_meta(self, sealed: bytes, label: bytes, *, max_size: int = 256 * 1024 * 1024) -> bytes:
        if len(sealed) < NONCE_BYTES + TAG_BYTES:
            raise BlobError(label, "too short")
        try:
            body = self._aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], b"meta:" + label)
        except InvalidTag:
            raise BlobError(label, "authentication failed") from None
        try:
            return _zstd().decompressor.decompress(body, max_output_size=max_size)
        except zstandard.ZstdError as exc:
            raise BlobError(label, f"does not decompress ({exc})") from None
