"""Reading an archive back as one stream: file -> hash -> decrypt -> decompress -> tar.

``ArchiveStream`` is shared by verify, extract and inspect so all three read
the stored file exactly once, and all three see the same framing rules
(``problems()``): the manifest is last and has the shape the engine writes
(``manifest_problem``, checked once here so everything downstream can index
it freely); the tar stream ends with its end-of-archive marker (two zero
blocks — a stream that just stops is truncated, even at a member boundary);
anything but zeros after that marker is corruption. Which members may be
restored is ``safety.py``'s business; tar headers are parsed with limits by
``tarread.py``.

Every failure is an ``EngineError`` (BACKUP_CORRUPTED for anything wrong
with the bytes), never a raw tarfile error, TypeError or KeyError.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import queue
import re
import tarfile
import threading
from dataclasses import dataclass

from .archive import MANIFEST_FORMAT, MANIFEST_NAME
from .compress import DecompressingReader, sniff_compression
from .crypto import HEADER_SIZE, MAGIC, DecryptingReader, parse_header
from .errors import BACKUP_CORRUPTED, BACKUP_NOT_FOUND, DECRYPTION_FAILED, EngineError, from_os_error
from .safety import name_problem, normalize_name
from .tarread import TailKeeper, TarReader

MAX_MANIFEST_BYTES = 256 * 1024 * 1024
_TAR_BUFSIZE = 64 * 1024
_TAR_BLOCK = tarfile.BLOCKSIZE
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


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


# --- the manifest's shape ----------------------------------------------------------------------

def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _path_problem(where: str, entry, seen: set) -> str | None:
    if not isinstance(entry, dict):
        return f"{where} is not an object"
    path = entry.get("path")
    if not isinstance(path, str) or not path or normalize_name(path) != path or name_problem(path):
        return f"{where} has no path, or one that is not a plain path inside the folder"
    if path in seen:
        return f"{where}: {path} listed twice"
    seen.add(path)
    return None


def manifest_problem(doc) -> str | None:
    """Why ``doc`` is not a manifest the rest of the engine can trust, or None.

    Checked once here, so verify, extract and the restore test can index
    entries without guarding: ``files`` a list of {path, size, sha256} (plain
    relative paths, each once; non-negative int sizes; lowercase hex SHA-256),
    ``symlinks`` (when present) a list of {path, target} with string targets.
    """
    if not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT:
        return "not an mcsite manifest"
    files, symlinks = doc.get("files"), doc.get("symlinks", [])
    if not isinstance(files, list) or not isinstance(symlinks, list):
        return "'files' or 'symlinks' is not a list"
    seen: set = set()
    for index, entry in enumerate(files):
        where = f"files[{index}]"
        problem = _path_problem(where, entry, seen)
        if problem:
            return problem
        if not _is_count(entry.get("size")):
            return f"{where} ({entry['path']}): size is not a whole number of bytes"
        sha = entry.get("sha256")
        if not isinstance(sha, str) or not _SHA256_HEX.fullmatch(sha):
            return f"{where} ({entry['path']}): sha256 is not 64 lowercase hex digits"
    seen = set()
    for index, entry in enumerate(symlinks):
        problem = _path_problem(f"symlinks[{index}]", entry, seen)
        if problem:
            return problem
        if not isinstance(entry.get("target"), str):
            return f"symlinks[{index}] ({entry['path']}): target is not a string"
    return None


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


class _MemberReader:
    """A member's data; tarfile's own errors (data cut short) become BACKUP_CORRUPTED."""

    def __init__(self, fileobj, name: str):
        self._f = fileobj
        self._name = name

    def read(self, n: int = -1) -> bytes:
        try:
            return self._f.read(n)
        except tarfile.TarError as exc:
            raise EngineError(BACKUP_CORRUPTED, f"member data cut short or damaged ({exc})",
                              path=self._name) from None


class ArchiveStream:
    """One pass over a stored archive.

    Use as a context manager; iterate ``members()`` (yields ``(TarInfo,
    normalized_name)`` — read file data with ``extractfile(info)`` before the
    next member), then call ``finish()`` which drains the rest of the stream
    so the compression trailer, the final encrypted chunk and the raw file's
    hash are all checked, and then ``problems()``. ``manifest`` is set once the
    manifest member is read (its shape already checked: see ``manifest_problem``).
    ``members_after_manifest`` holds the first names that came after it.
    """

    def __init__(self, path, *, keyring=None, progress=None, fileobj=None, size: int | None = None):
        """``path`` is the stored file; or, with ``fileobj``, a name for
        messages and ``fileobj`` a stream read once, front to back, never
        seeked (a copy on a storage target), ``size`` its expected length
        (for progress). The caller closes ``fileobj``."""
        self.path = os.fspath(path) if path is not None else "<stream>"
        self._owns_fh = fileobj is None
        if fileobj is not None:
            self._fh = fileobj
            size = int(size or 0)
        else:
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
        self.end_marker = False  # set by finish(): the tar stream ended with its two zero blocks
        self._tar = None
        self._tail = None
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
        if self._owns_fh:
            self._fh.close()

    def open_payload(self):
        """Set up decryption and decompression; raises DECRYPTION_FAILED / BACKUP_CORRUPTED."""
        source = self._raw_peek
        if self.format.encrypted:
            decrypting = DecryptingReader(source, self._keyring)
            # The header's fingerprint is the file's own; the secret's stable id is what records keep.
            self.format.key_fingerprint = decrypting.key_fingerprint
            source = _Peekable(decrypting)
        head = source.peek(512)
        compression = sniff_compression(head)
        if compression is None:
            raise EngineError(BACKUP_CORRUPTED, "Not a tar archive in any known compression", path=self.path)
        self.format.compression = compression
        payload = source if compression == "none" else DecompressingReader(source, compression)
        self._prefetch = _Prefetcher(payload)
        self._payload = self._prefetch
        self._tail = TailKeeper(self._payload, 2 * _TAR_BUFSIZE)
        try:
            self._tar = TarReader.open(fileobj=self._tail, mode="r|", bufsize=_TAR_BUFSIZE)
        except tarfile.TarError as exc:
            raise EngineError(BACKUP_CORRUPTED, f"Not a readable tar archive: {exc}", path=self.path) from None

    def members(self):
        if self._tar is None:
            self.open_payload()
        try:
            while (info := self._tar.next()) is not None:
                name = normalize_name(info.name)
                if self.manifest is not None or self.manifest_error is not None:
                    if len(self.members_after_manifest) < 10:
                        self.members_after_manifest.append(name)
                elif name == MANIFEST_NAME and info.isfile():
                    self._read_manifest(info)
                    continue
                yield info, name
        except tarfile.TarError as exc:
            raise EngineError(BACKUP_CORRUPTED, f"Tar stream corrupted: {exc}", path=self.path) from None

    def extractfile(self, info):
        """The data of regular file ``info``, the member just yielded."""
        return _MemberReader(self._tar.member_reader(info), normalize_name(info.name))

    def _read_manifest(self, info) -> None:
        if info.size > MAX_MANIFEST_BYTES:
            self.manifest_error = "manifest too large"
            return
        body = self.extractfile(info).read()
        try:
            doc = json.loads(body)
        except (ValueError, RecursionError) as exc:
            self.manifest_error = f"manifest unreadable: {exc.__class__.__name__}: {exc}"
            return
        problem = manifest_problem(doc)
        if problem is not None:
            self.manifest_error = f"manifest unreadable: {problem}"
        else:
            self.manifest = doc

    def finish(self) -> None:
        """Drain what tar did not read (what it read ahead, then the rest of the stream):
        must be the second zero block of the end-of-archive marker, then only zeros;
        then the raw file to its end."""
        if self._payload is not None:
            read_ahead = self._tail.unused(self._tar.fileobj.tell()) if self._tar is not None else b""
            leading_zeros = 0
            for data in itertools.chain([read_ahead], iter(lambda: self._payload.read(1 << 20), b"")):
                stripped = data.lstrip(b"\0")
                if not self.trailing_data:
                    leading_zeros += len(data) - len(stripped)
                if stripped:
                    # tarfile stops quietly at a damaged header; data after it is the tell.
                    self.trailing_data = True
            stop = self._tar.stopped_at if self._tar is not None else None
            # tarfile consumed the first zero block (that is where it stopped); the second must follow.
            self.end_marker = isinstance(stop, tarfile.EOFHeaderError) and leading_zeros >= _TAR_BLOCK
        self.stop_reading()
        while self.raw.read(1 << 20):
            pass
        if self._progress:
            self._progress(self.raw.bytes_read, max(self.size, self.raw.bytes_read))

    def problems(self) -> list:
        """After ``finish()``: what is wrong with how the archive is framed, as messages
        (empty when it is fine) — a damaged header, a stream that stops without its
        end-of-archive marker (truncation), data after that marker, a bad manifest."""
        found = []
        stop = self._tar.stopped_at if self._tar is not None else None
        if isinstance(stop, tarfile.InvalidHeaderError):
            found.append(f"damaged tar header at byte {self._tar.offset} ({stop}); "
                         "the archive cannot be read past it")
        elif not self.end_marker:
            found.append("archive truncated: the tar stream ends without its end-of-archive marker")
        elif self.trailing_data:
            found.append("data after the end-of-archive marker (damaged tar header?)")
        if self.manifest_error:
            found.append(self.manifest_error)
        return found

    def raise_problems(self) -> None:
        """``problems()`` as an EngineError(BACKUP_CORRUPTED), for callers that stop at the first."""
        found = self.problems()
        if found:
            raise EngineError(BACKUP_CORRUPTED, found[0], path=self.path)

    @property
    def sha256(self) -> str:
        return self.raw.sha256.hexdigest()


def decryption_failed(exc: Exception) -> bool:
    return isinstance(exc, EngineError) and exc.code == DECRYPTION_FAILED
