"""A local or mounted folder as a target: a second disk, NFS, SMB/CIFS.

Settings: ``path`` (absolute, required), ``must_be_mount_point`` (default
false: when true, an unmounted share is refused instead of silently filling
the empty mount point on the local disk). No secrets.

Upload: ``<name>.mcsite.partial`` written in 1 MiB pieces, fsync, rename to
``<name>``, fsync of the folder — the final name only ever holds a whole copy.
Verify always reads the copy back (after asking the kernel to drop it from the
page cache, so the bytes come from the share or disk where possible).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import os
import stat
from pathlib import Path

from . import names
from .base import SMALL_LIMIT, BoundedStream, LocalSource, RemoteEntry, Target, TargetConfig, UploadResult, VerifyResult, _require
from .checksums import READ_CHUNK
from .errors import (CHECKSUM_MISMATCH, INVALID_NAME, INVALID_SETTING, NOT_FOUND, PERMISSION_DENIED,
                     SIZE_MISMATCH, UNREACHABLE, OffsiteError, from_os_error)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalTarget(Target):
    kind = "local"

    def __init__(self, config: TargetConfig):
        super().__init__(config)
        raw = _require(config.settings, "path", "local")
        if not os.path.isabs(raw):
            raise OffsiteError(INVALID_SETTING, f"The folder of a local target must be an absolute path, not {raw!r}")
        self.root = Path(raw)
        self.must_be_mount_point = bool(config.settings.get("must_be_mount_point", False))

    # -- paths -------------------------------------------------------------
    def connect(self) -> None:
        if not self.root.is_dir():
            raise OffsiteError(UNREACHABLE, f"The target folder {self.root} does not exist "
                               "(is the disk or network share mounted?)", step="connect")
        if self.must_be_mount_point and not os.path.ismount(self.root):
            raise OffsiteError(UNREACHABLE, f"{self.root} is not a mount point: the disk or network share "
                               "is not mounted", step="connect")
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise OffsiteError(PERMISSION_DENIED, f"The target folder {self.root} is not writable", step="connect")

    def _inside(self, path: Path) -> None:
        root = os.path.realpath(self.root)
        real = os.path.realpath(path)
        if real != root and not real.startswith(root + os.sep):
            raise OffsiteError(INVALID_NAME, "A remote name may not lead outside the target folder "
                               "(through a symbolic link)")

    def _path(self, remote_name: str) -> Path:
        path = self.root / names.check_name(remote_name)
        self._inside(path)
        return path

    def _prepare_parent(self, path: Path) -> None:
        self.connect()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise from_os_error(exc, f"the folder {path.parent}") from exc
        self._inside(path.parent)

    # -- writing -----------------------------------------------------------
    def _write_atomically(self, path: Path, chunks, on_state=None) -> None:
        """Write the byte chunks to ``<path>.mcsite.partial`` then rename."""
        partial = path.with_name(path.name + names.PARTIAL_SUFFIX)
        if on_state:
            on_state({"kind": self.kind, "partial": str(partial.relative_to(self.root))})
        try:
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
            try:
                for chunk in chunks:
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(partial, path)
            _fsync_dir(path.parent)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise from_os_error(exc, f"{path.name} on {self.root}") from exc
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        if on_state:
            on_state(None)

    def upload(self, local_path, remote_name, *, progress=None, resume_state=None, on_state=None,
               object_lock_days=None) -> UploadResult:
        path = self._path(remote_name)
        source = LocalSource(local_path, progress)
        self._prepare_parent(path)
        with source:
            self._write_atomically(path, source.chunks(), on_state)
        return UploadResult(remote_name=remote_name, size=source.size, sha256=source.sha256)

    def put_small(self, remote_name, data) -> None:
        path = self._path(remote_name)
        self._prepare_parent(path)
        self._write_atomically(path, [bytes(data)])

    def abort_incomplete(self, prefix_or_state="") -> int:
        if isinstance(prefix_or_state, dict):
            partial = prefix_or_state.get("partial") or ""
            if not partial.endswith(names.PARTIAL_SUFFIX):
                return 0
            names.check_name(partial[: -len(names.PARTIAL_SUFFIX)])
            candidates = [self.root / partial]
        else:
            candidates = [self.root / rel for rel, _st in self._walk(prefix_or_state, partials=True)]
        removed = 0
        for path in candidates:
            self._inside(path)
            try:
                path.unlink()
                removed += 1
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise from_os_error(exc, str(path)) from exc
        return removed

    # -- reading -----------------------------------------------------------
    def _stat(self, remote_name: str) -> os.stat_result:
        path = self._path(remote_name)
        try:
            return path.stat()
        except FileNotFoundError:
            self.connect()
            raise OffsiteError(NOT_FOUND, f"{remote_name} is not on the target {self.name}") from None
        except OSError as exc:
            raise from_os_error(exc, remote_name) from exc

    def verify(self, remote_name, *, size, sha256, part_size=None, composite=None, local_path=None,
               read_back=True) -> VerifyResult:
        remote_size = self._stat(remote_name).st_size
        if remote_size != size:
            raise OffsiteError(SIZE_MISMATCH, f"The copy of {remote_name} on {self.name} has {remote_size} bytes, "
                               f"the backup has {size}")
        digest = hashlib.sha256()
        try:
            with open(self._path(remote_name), "rb") as fh:
                if hasattr(os, "posix_fadvise"):
                    os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
                for chunk in iter(lambda: fh.read(READ_CHUNK), b""):
                    digest.update(chunk)
        except OSError as exc:
            raise from_os_error(exc, remote_name) from exc
        if digest.hexdigest() != sha256:
            raise OffsiteError(CHECKSUM_MISMATCH, f"The copy of {remote_name} on {self.name} has other bytes "
                               f"than the backup (SHA-256 {digest.hexdigest()[:12]}…, expected {sha256[:12]}…)")
        return VerifyResult(remote_name=remote_name, size=remote_size, method="read_back", checksum=digest.hexdigest())

    def open_read(self, remote_name, offset=0, length=None):
        self._stat(remote_name)
        try:
            fh = open(self._path(remote_name), "rb")
            fh.seek(offset)
        except OSError as exc:
            raise from_os_error(exc, remote_name) from exc
        return BoundedStream(fh, length)

    def _get_small(self, remote_name) -> bytes:
        self._stat(remote_name)
        with self.open_read(remote_name, 0, SMALL_LIMIT + 1) as fh:
            return fh.read()

    def exists(self, remote_name) -> bool:
        path = self._path(remote_name)
        self.connect()
        return path.is_file()

    def delete(self, remote_name) -> bool:
        path = self._path(remote_name)
        self.connect()
        try:
            path.unlink()
            return True
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise from_os_error(exc, remote_name) from exc

    def _walk(self, prefix: str, *, partials: bool):
        names.check_prefix(prefix)
        self.connect()
        start = self.root / prefix.rpartition("/")[0] if "/" in prefix else self.root
        if not start.is_dir():
            return
        self._inside(start)
        for folder, dirs, files in os.walk(start):
            dirs.sort()
            for filename in sorted(files):
                full = Path(folder) / filename
                rel = full.relative_to(self.root).as_posix()
                if not rel.startswith(prefix) or filename.endswith(names.PARTIAL_SUFFIX) != partials:
                    continue
                try:
                    st = full.lstat()
                except FileNotFoundError:
                    continue
                if stat.S_ISREG(st.st_mode):
                    yield rel, st

    def list(self, prefix="") -> list[RemoteEntry]:
        entries = [RemoteEntry(name=rel, size=st.st_size,
                               modified=dt.datetime.fromtimestamp(st.st_mtime, tz=dt.timezone.utc))
                   for rel, st in self._walk(prefix, partials=False)]
        return sorted(entries, key=lambda e: e.name)
