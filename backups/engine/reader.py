"""Reading an archive back as one stream: file -> hash -> decrypt -> decompress -> tar.

``ArchiveStream`` is shared by verify, extract and inspect so all three read
the stored file exactly once, and all three see the same safety rules
(manifest last, trailing data after the end-of-archive marker is corruption).
"""
from __future__ import annotations

import hashlib
import json
import os
import posixpath
import queue
import tarfile
import threading
from dataclasses import dataclass

from .archive import MANIFEST_FORMAT, MANIFEST_NAME
from .compress import DecompressingReader, sniff_compression
from .crypto import HEADER_SIZE, MAGIC, DecryptingReader, parse_header
from .errors import BACKUP_CORRUPTED, BACKUP_NOT_FOUND, DECRYPTION_FAILED, EngineError, from_os_error

MAX_MANIFEST_BYTES = 256 * 1024 * 1024
_TAR_BUFSIZE = 64 * 1024


@dataclass
class ArchiveFormat:
    encrypted: bool
    compression: str | None  # None when encrypted and not yet decrypted, or unknown
    key_mode: str | None = None
    key_fingerprint: str | None = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def detect_format(path) -> ArchiveFormat:
    """Compression (by magic bytes) and encryption (by our header) of a stored file.

    Works for our archives and for plain ``tar``/``gzip``/``bzip2``/``xz``/``zstd``
    output. For an encrypted file the compression inside is only known after
    decryption, so ``compression`` is None.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(max(HEADER_SIZE, 512))
    except OSError as exc:
        raise from_os_error(exc, path=os.fspath(path)) from exc
    if head.startswith(MAGIC):
        header = parse_header(head)
        return ArchiveFormat(True, None, header.mode_name, header.fingerprint)
    return ArchiveFormat(False, sniff_compression(head))


def file_digests(path, chunk_size: int = 1024 * 1024) -> tuple[str, str]:
    """(sha256, md5) hex digests of a stored file, read in chunks."""
    sha, md5 = hashlib.sha256(), hashlib.md5()
    try:
        with open(path, "rb", buffering=0) as fh:
            while chunk := fh.read(chunk_size):
                sha.update(chunk)
                md5.update(chunk)
    except OSError as exc:
        raise from_os_error(exc, path=os.fspath(path)) from exc
    return sha.hexdigest(), md5.hexdigest()


def normalize_member_name(name: str) -> str:
    """``./world/level.dat`` and ``world//level.dat`` -> ``world/level.dat`` (not a safety check)."""
    name = posixpath.normpath(name)
    while name.startswith("./"):
        name = name[2:]
    return "" if name == "." else name


class _HashingReader:
    """The raw file: every byte read is hashed and counted for progress."""

    def __init__(self, fh, total: int, progress):
        self._fh = fh
        self.sha256 = hashlib.sha256()
        self.bytes_read = 0
        self._total = total
        self._progress = progress
        self._reported = 0

    def read(self, n: int = -1) -> bytes:
        data = self._fh.read(n)
        if data:
            self.sha256.update(data)
            self.bytes_read += len(data)
            if self._progress and self.bytes_read - self._reported >= (1 << 20):
                self._reported = self.bytes_read
                self._progress(self.bytes_read, max(self._total, self.bytes_read))
        return data


class _Peekable:
    def __init__(self, src):
        self._src = src
        self._head = b""

    def peek(self, n: int) -> bytes:
        while len(self._head) < n:
            more = self._src.read(n - len(self._head))
            if not more:
                break
            self._head += more
        return self._head[:n]

    def read(self, n: int = -1) -> bytes:
        if self._head:
            if n is None or n < 0:
                out, self._head = self._head + self._src.read(), b""
                return out
            out, self._head = self._head[:n], self._head[n:]
            return out
        return self._src.read(n)


class _Prefetcher:
    """Runs read -> hash -> decrypt -> decompress on a background thread.

    zlib, hashlib, AES-GCM and file reads all release the GIL, so this
    overlaps the stream's own cost with the consumer's (tar parsing, writing
    files, hashing members, world checks). The queue is bounded: memory stays
    at a few MiB. Errors are re-raised in the consumer at the point reached.
    """

    _BLOCK = 1024 * 1024

    def __init__(self, source):
        self._src = source
        self._queue: queue.Queue = queue.Queue(maxsize=4)
        self._stop = threading.Event()
        self._buf = memoryview(b"")
        self._eof = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="mcsite-read", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                data = self._src.read(self._BLOCK)
                self._put(data)
                if not data:
                    return
        except BaseException as exc:  # handed to the consumer thread
            self._put(exc)

    def _put(self, item) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            parts = []
            while part := self.read(self._BLOCK):
                parts.append(part)
            return b"".join(parts)
        while not self._buf and not self._eof:
            if self._error is not None:
                raise self._error
            item = self._queue.get()
            if isinstance(item, BaseException):
                self._error = item
                raise item
            if not item:
                self._eof = True
            self._buf = memoryview(item)
        out = self._buf[:n].tobytes()
        self._buf = self._buf[n:]
        return out

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


class ArchiveStream:
    """One pass over a stored archive.

    Use as a context manager; iterate ``members()`` (yields ``(TarInfo,
    normalized_name)`` — read file data with ``extractfile(info)`` before the
    next member), then call ``finish()`` which drains the rest of the stream
    so the compression trailer, the final encrypted chunk and the raw file's
    hash are all checked. ``manifest`` is set once the manifest member is read.
    """

    def __init__(self, path, *, keyring=None, progress=None):
        self.path = os.fspath(path)
        try:
            self._fh = open(self.path, "rb", buffering=0)
            size = os.fstat(self._fh.fileno()).st_size
        except FileNotFoundError as exc:
            raise EngineError(BACKUP_NOT_FOUND, "Backup file not found", path=self.path) from exc
        except OSError as exc:
            raise from_os_error(exc, path=self.path) from exc
        self.size = size
        self.raw = _HashingReader(self._fh, size, progress)
        self._progress = progress
        self.manifest: dict | None = None
        self.manifest_error: str | None = None
        self.members_after_manifest: list = []
        self.trailing_data = False
        self._tar = None
        self._payload = None
        self._prefetch = None
        raw = _Peekable(self.raw)
        head = raw.peek(HEADER_SIZE)
        encrypted = head.startswith(MAGIC)
        self.format = ArchiveFormat(encrypted, None)
        self._raw_peek = raw
        if encrypted:
            header = parse_header(head)
            self.format.key_mode, self.format.key_fingerprint = header.mode_name, header.fingerprint
            self._keyring = keyring

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def stop_reading(self) -> None:
        """Stop the background reader; after this the raw file may be read directly."""
        if self._prefetch is not None:
            self._prefetch.close()
            self._prefetch = None

    def close(self) -> None:
        self.stop_reading()
        self._fh.close()

    def open_payload(self):
        """Set up decryption and decompression; raises DECRYPTION_FAILED / BACKUP_CORRUPTED."""
        source = self._raw_peek
        if self.format.encrypted:
            source = _Peekable(DecryptingReader(source, self._keyring))
        head = source.peek(512)
        compression = sniff_compression(head)
        if compression is None:
            raise EngineError(BACKUP_CORRUPTED, "Not a tar archive in any known compression", path=self.path)
        self.format.compression = compression
        payload = source if compression == "none" else DecompressingReader(source, compression)
        self._prefetch = _Prefetcher(payload)
        self._payload = self._prefetch
        try:
            self._tar = tarfile.open(fileobj=self._payload, mode="r|", bufsize=_TAR_BUFSIZE)
        except tarfile.TarError as exc:
            raise EngineError(BACKUP_CORRUPTED, f"Not a readable tar archive: {exc}", path=self.path) from None

    def members(self):
        if self._tar is None:
            self.open_payload()
        try:
            for info in self._tar:
                name = normalize_member_name(info.name)
                if self.manifest is not None or self.manifest_error is not None:
                    self.members_after_manifest.append(name)
                if name == MANIFEST_NAME and info.isfile() and not self.members_after_manifest:
                    self._read_manifest(info)
                    continue
                yield info, name
        except tarfile.TarError as exc:
            raise EngineError(BACKUP_CORRUPTED, f"Tar stream corrupted: {exc}", path=self.path) from None

    def extractfile(self, info):
        return self._tar.extractfile(info)

    def _read_manifest(self, info) -> None:
        if info.size > MAX_MANIFEST_BYTES:
            self.manifest_error = "manifest too large"
            return
        body = self._tar.extractfile(info).read()
        try:
            doc = json.loads(body)
            if doc.get("format") != MANIFEST_FORMAT or not isinstance(doc.get("files"), list):
                raise ValueError("not an mcsite manifest")
            self.manifest = doc
        except (ValueError, AttributeError) as exc:
            self.manifest_error = f"manifest unreadable: {exc}"

    def finish(self) -> None:
        """Drain what tar did not read: must be zeros; then the raw file to its end."""
        if self._payload is not None:
            while True:
                data = self._payload.read(1 << 20)
                if not data:
                    break
                if data.strip(b"\0"):
                    # tarfile stops quietly at a damaged header; data after it is the tell.
                    self.trailing_data = True
        self.stop_reading()
        while self.raw.read(1 << 20):
            pass
        if self._progress:
            self._progress(self.raw.bytes_read, max(self.size, self.raw.bytes_read))

    @property
    def sha256(self) -> str:
        return self.raw.sha256.hexdigest()


def decryption_failed(exc: Exception) -> bool:
    return isinstance(exc, EngineError) and exc.code == DECRYPTION_FAILED
