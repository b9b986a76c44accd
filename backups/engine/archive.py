"""create_archive: one streaming pass folder -> tar -> compress -> encrypt -> file.

The tar stream is written by hand (tarfile only builds the headers) so each
file is read exactly once, in 1 MiB chunks, with its SHA-256 computed on the
same bytes that go into the archive. The stored file's SHA-256 and MD5 are
computed on the output stream as it is written: no second pass.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import queue
import stat
import tarfile
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

from . import walk
from .compress import check_compression, open_compressor
from .crypto import EncryptingWriter, EncryptionSpec
from .errors import DESTINATION_EXISTS, SERVER_DIRECTORY_NOT_FOUND, EngineError, from_os_error

MANIFEST_NAME = ".mcsite-manifest.json"
MANIFEST_FORMAT = "mcsite-backup-manifest"
MANIFEST_VERSION = 1
PARTIAL_PREFIX = ".partial-"
READ_CHUNK = 1024 * 1024
_BLOCK = tarfile.BLOCKSIZE
_RECORD = tarfile.RECORDSIZE
_ZEROS = bytes(READ_CHUNK)

Progress = Callable[[int, int], None]


@dataclass
class ArchiveResult:
    path: str
    size_bytes: int
    sha256: str
    md5: str
    file_count: int
    total_bytes: int
    compression: str
    encrypted: bool
    key_fingerprint: str | None
    duration_seconds: float
    changed_files: list = field(default_factory=list)  # [{"path", "reason"}]
    vanished_files: list = field(default_factory=list)  # [path]
    skipped: list = field(default_factory=list)  # [{"path", "reason"}]
    symlink_count: int = 0
    directory_count: int = 0
    deflate_blocks: dict = field(default_factory=dict)  # gzip: {"blocks", "fast"} (codecs.DeflatePlan)

    def to_dict(self) -> dict:
        return asdict(self)

    def warnings(self, listed: int = 10) -> list[str]:
        """What a user should hear about this archive, one line each: files
        that changed or vanished while being read, entries not archived."""
        out = []
        if self.changed_files:
            out.append(f"{len(self.changed_files)} file(s) changed while being read: "
                       + ", ".join(f"{c['path']} ({c['reason']})" for c in self.changed_files[:listed]))
        if self.vanished_files:
            out.append(f"{len(self.vanished_files)} file(s) vanished while being read: "
                       + ", ".join(self.vanished_files[:listed]))
        out += [f"not archived: {s['path']} ({s['reason']})" for s in self.skipped[:listed]]
        return out


class _HashingFileSink:
    """The end of the pipeline: hashes the stored bytes and writes them to ``fd``."""

    def __init__(self, fd: int):
        self._fd = fd
        self.sha256 = hashlib.sha256()
        self.md5 = hashlib.md5()
        self.size = 0

    def write(self, data) -> None:
        self.sha256.update(data)
        self.md5.update(data)
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self.size += len(data)

    def close(self) -> None:
        pass


class _BackgroundSink:
    """Hands output to ``sink`` on a writer thread.

    Hashing the stored bytes (SHA-256 + MD5) and writing them releases the GIL,
    so doing it here overlaps it with reading and compressing. Bounded queue:
    a slow disk slows the producer instead of growing memory. A write error is
    raised on the producer's next write or on close.
    """

    def __init__(self, sink):
        self._sink = sink
        self._queue: queue.Queue = queue.Queue(maxsize=8)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="mcsite-write", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            data = self._queue.get()
            if data is None:
                return
            if self._error is None:
                try:
                    self._sink.write(data)
                except BaseException as exc:  # re-raised in the producer
                    self._error = exc

    def write(self, data) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(bytes(data))

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        self._error = self._error or RuntimeError("aborted")
        self._queue.put(None)
        self._thread.join()


def _header(entry: walk.Entry, size: int, mtime: int, mode: int) -> bytes:
    info = tarfile.TarInfo(entry.rel)
    info.mtime = mtime  # an int: a float would cost a PAX header per member
    info.mode = mode
    info.uid, info.gid = entry.st.st_uid, entry.st.st_gid
    info.uname = info.gname = ""
    if entry.kind == "dir":
        info.type = tarfile.DIRTYPE
    elif entry.kind == "symlink":
        info.type = tarfile.SYMTYPE
        info.linkname = entry.link_target
    else:
        info.size = size
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


class _TarStream:
    def __init__(self, sink):
        self._sink = sink
        self.offset = 0

    def write(self, data) -> None:
        self._sink.write(data)
        self.offset += len(data)

    def pad(self) -> None:
        rest = self.offset % _BLOCK
        if rest:
            self.write(_ZEROS[: _BLOCK - rest])

    def finish(self) -> None:
        self.write(_ZEROS[: 2 * _BLOCK])
        rest = self.offset % _RECORD  # like tar: whole 10 KiB records
        if rest:
            self.write(_ZEROS[: _RECORD - rest])


class _Archiver:
    def __init__(self, root: str, tar: _TarStream, progress: Progress | None, total: int):
        self.root = root
        self.tar = tar
        self.progress = progress
        self.total = total
        self.done = 0
        self.files: list = []
        self.symlinks: list = []
        self.changed: list = []
        self.vanished: list = []
        self.skipped: list = []
        self.dirs = 0
        self._reported = 0

    def _report(self, final: bool = False) -> None:
        # At most one call per MiB, so folders of many small files do not flood the caller.
        if self.progress and (final or self.done - self._reported >= READ_CHUNK):
            self._reported = self.done
            # The final call says done == total even if files shrank or vanished meanwhile.
            self.progress(self.done, self.done if final else max(self.total, self.done))

    def add(self, entry: walk.Entry) -> None:
        mode = stat.S_IMODE(entry.st.st_mode)
        if entry.kind == "dir":
            self.tar.write(_header(entry, 0, int(entry.st.st_mtime), mode))
            self.dirs += 1
        elif entry.kind == "symlink":
            self.tar.write(_header(entry, 0, int(entry.st.st_mtime), mode))
            self.symlinks.append({"path": entry.rel, "target": entry.link_target})
        else:
            self._add_file(entry)

    def _add_file(self, entry: walk.Entry) -> None:
        try:
            # O_NOFOLLOW: a file swapped for a symlink since the scan is not followed out.
            fd = os.open(entry.abs, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            self.vanished.append(entry.rel)
            return
        except OSError as exc:
            if exc.errno == 40:  # ELOOP: now a symlink
                self.changed.append({"path": entry.rel, "reason": "replaced by a symlink; not archived"})
                return
            raise from_os_error(exc, path=entry.abs) from exc
        try:
            before = os.fstat(fd)
            if not stat.S_ISREG(before.st_mode):
                self.skipped.append({"path": entry.rel, "reason": "no longer a regular file"})
                return
            size = before.st_size
            mtime = int(before.st_mtime)
            self.tar.write(_header(entry, size, mtime, stat.S_IMODE(before.st_mode)))
            digest = hashlib.sha256()
            remaining = size
            shrank = False
            while remaining:
                data = os.read(fd, min(READ_CHUNK, remaining))
                if not data:
                    # The header promised `size` bytes: pad with zeros (as GNU tar does) and say so.
                    shrank = True
                    data = _ZEROS[: min(READ_CHUNK, remaining)]
                digest.update(data)
                self.tar.write(data)
                remaining -= len(data)
                self.done += len(data)
                self._report()
            self.tar.pad()
            after = os.fstat(fd)
            if shrank:
                self.changed.append({"path": entry.rel, "reason": "file shrank while being read; padded with zeros"})
            elif after.st_size != size or after.st_mtime_ns != before.st_mtime_ns:
                self.changed.append({"path": entry.rel, "reason": "file changed while being read"})
        except OSError as exc:
            raise from_os_error(exc, path=entry.abs) from exc
        finally:
            os.close(fd)
        self.files.append({"path": entry.rel, "size": size, "sha256": digest.hexdigest(),
                           "mode": stat.S_IMODE(before.st_mode), "mtime": mtime})

    def manifest(self, created: str, compression: str, encrypted: bool) -> bytes:
        doc = {
            "format": MANIFEST_FORMAT,
            "version": MANIFEST_VERSION,
            "created": created,
            "compression": compression,
            "encrypted": encrypted,
            "files": self.files,
            "symlinks": self.symlinks,
            "changed_files": self.changed,
            "vanished_files": self.vanished,
            "totals": {
                "files": len(self.files),
                "bytes": sum(f["size"] for f in self.files),
                "symlinks": len(self.symlinks),
                "directories": self.dirs,
            },
        }
        return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode("utf-8")

    def add_manifest(self, body: bytes) -> None:
        info = tarfile.TarInfo(MANIFEST_NAME)
        info.size = len(body)
        info.mtime = int(time.time())
        info.mode = 0o644
        self.tar.write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
        self.tar.write(body)
        self.tar.pad()


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def create_archive(source_dir, dest_path, *, compression: str = "gzip", encryption: EncryptionSpec | None = None,
                   exclude=(), progress: Progress | None = None, level: int | None = None,
                   threads: int | None = None, on_step: Callable[[str], None] | None = None) -> ArchiveResult:
    """Archive ``source_dir`` into ``dest_path`` in one streaming pass.

    The archive is written to ``<dest dir>/.partial-<name>-<random>``, fsynced,
    renamed to ``dest_path`` (which must not exist) and the directory fsynced;
    on any exception the partial file is removed. Member paths are relative to
    ``source_dir``. ``exclude`` takes gitignore-ish patterns (see
    ``walk.ExcludeRules``). ``progress(bytes_done, bytes_total)`` is called after
    every chunk read. Files that change or vanish while being read, and entries
    not archived (sockets, fifos, devices, symlinks leaving the folder) are
    listed in the result, never silently dropped.

    ``on_step(name)``, if given, hears ``"scanning"`` (the partial file
    exists, the folder scan starts), ``"archiving"`` (the scan is done) and
    ``"renamed"`` (the archive is in place, about to return).

    Raises ``EngineError`` with SERVER_DIRECTORY_NOT_FOUND, PERMISSION_DENIED,
    INSUFFICIENT_DISK_SPACE, DESTINATION_EXISTS or INVALID_SETTING.
    """
    started = time.monotonic()
    check_compression(compression)
    root = os.path.abspath(os.fspath(source_dir))
    dest = os.path.abspath(os.fspath(dest_path))
    if not os.path.isdir(root):
        raise EngineError(SERVER_DIRECTORY_NOT_FOUND, "Server directory not found", path=root)
    if os.path.lexists(dest):
        raise EngineError(DESTINATION_EXISTS, "A file already exists at the backup path", path=dest)
    dest_dir = os.path.dirname(dest)
    try:
        fd, tmp_path = tempfile.mkstemp(prefix=f"{PARTIAL_PREFIX}{os.path.basename(dest)}-", dir=dest_dir)
    except OSError as exc:
        raise from_os_error(exc, path=dest_dir) from exc
    compressor = background = None
    step = on_step or (lambda name: None)
    try:
        step("scanning")
        scanned = walk.scan(root, exclude, skip_paths=(tmp_path, dest), reserved_names=(MANIFEST_NAME,))
        step("archiving")
        sink = _HashingFileSink(fd)
        chain = background = _BackgroundSink(sink)
        if encryption is not None:
            chain = EncryptingWriter(background, encryption)  # closing it ends the writer thread
        compressor = open_compressor(chain, compression, level, threads)
        tar = _TarStream(compressor)
        archiver = _Archiver(root, tar, progress, scanned.total_bytes)
        archiver.vanished.extend(scanned.vanished)
        archiver.skipped.extend(scanned.skipped)
        for entry in scanned.entries:
            archiver.add(entry)
        created = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        archiver.add_manifest(archiver.manifest(created, compression, encryption is not None))
        tar.finish()
        archiver._report(final=True)
        compressor.close()
        plan = getattr(compressor, "plan", None)
        compressor = None
        os.fsync(fd)
        os.close(fd)
        fd = -1
        if os.path.lexists(dest):
            raise EngineError(DESTINATION_EXISTS, "A file already exists at the backup path", path=dest)
        os.replace(tmp_path, dest)
        _fsync_dir(dest_dir)
        step("renamed")
    except BaseException as exc:
        if compressor is not None:
            compressor.abort()
        if background is not None:
            background.abort()
        if fd >= 0:
            os.close(fd)
        try:
            os.unlink(tmp_path)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):
            raise from_os_error(exc) from exc
        raise
    return ArchiveResult(
        path=dest,
        size_bytes=sink.size,
        sha256=sink.sha256.hexdigest(),
        md5=sink.md5.hexdigest(),
        file_count=len(archiver.files),
        total_bytes=archiver.done,
        compression=compression,
        encrypted=encryption is not None,
        key_fingerprint=encryption.fingerprint if encryption is not None else None,
        duration_seconds=round(time.monotonic() - started, 3),
        changed_files=archiver.changed,
        vanished_files=archiver.vanished,
        skipped=archiver.skipped,
        symlink_count=len(archiver.symlinks),
        directory_count=archiver.dirs,
        deflate_blocks=plan.stats() if plan is not None else {},
    )
