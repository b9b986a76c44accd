"""Safe staged extraction, and the renames that swap a restore into place.

Nothing is ever written outside the staging folder:

* every member goes through ``safety.MemberRules`` — the same rules
  ``verify_backup`` applies, so what verifies restores: names that are
  absolute, contain ``..``, repeat, or pass through a symlink or a file of
  the archive are refused, as are devices, fifos, unknown member types, any
  member named like the manifest or after it, and hardlinks to anything but
  a regular file already extracted from the same archive;
* symlinks are checked (target relative and lexically inside) as they come,
  and once all are known each is resolved through the archive's own
  symlinks and refused if it leaves the folder at any step or loops; they
  are created only at the very end, after every file is written, so no write
  can travel through a link; files are opened with O_CREAT|O_EXCL|O_NOFOLLOW.

The stream is authenticated/CRC-checked as it is read; plaintext of an
encrypted archive only lands in the staging folder, which is removed on any
failure (including a final chunk that fails or is missing), so the target
never sees unauthenticated data.
"""
from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import stat
import tempfile
import time
from dataclasses import asdict, dataclass

from .archive import _fsync_dir
from .errors import (BACKUP_CORRUPTED, DECRYPTION_FAILED, INVALID_SETTING, SERVER_DIRECTORY_NOT_FOUND,
                     EngineError, from_os_error)
from .reader import ArchiveStream
from .safety import MemberRules, name_problem, normalize_name

_CHUNK = 1024 * 1024


@dataclass
class ExtractResult:
    staging_dir: str
    file_count: int
    total_bytes: int
    symlink_count: int
    directory_count: int
    manifest_checked: bool
    compression: str | None
    encrypted: bool
    duration_seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


def _set_mtime(path: str, mtime) -> None:
    try:
        os.utime(path, (mtime, mtime), follow_symlinks=False)
    except (OverflowError, ValueError):
        pass  # a time the platform cannot hold (a PAX header may say inf or 1e300): left as now


class _SafeExtractor:
    def __init__(self, root: str):
        self.root = root
        self.rules = MemberRules()
        self.files: dict = {}  # name -> (size, sha256)
        self.links: dict = {}  # name -> target, created in finish()
        self.dirs: dict = {}  # name -> (mode, mtime)
        self.total_bytes = 0

    def _path(self, name: str) -> str:
        return os.path.join(self.root, *name.split("/"))

    def skip(self, info, name: str, *, after_manifest: bool = False) -> None:
        """A member outside the chosen part: checked by the same rules (a
        partial restore refuses whatever a whole one refuses), not written."""
        self.rules.check(info, name, after_manifest=after_manifest)

    def add(self, info, name: str, stream, *, after_manifest: bool = False) -> None:
        # Raises UNSAFE_ARCHIVE for anything but a safe file, folder, symlink or hardlink.
        self.rules.check(info, name, after_manifest=after_manifest)
        if name == "":
            return  # the "./" entry of `tar -C dir .`: the staging folder itself
        if info.isdir():
            os.makedirs(self._path(name), exist_ok=True)
            self.dirs[name] = (info.mode, info.mtime)
        elif info.isfile():
            self._write_file(info, name, stream.extractfile(info))
        elif info.issym():
            self.links[name] = info.linkname
        else:  # a hardlink to a regular file extracted before (checked by the rules)
            target = self.rules.hardlink_target(info)
            if target not in self.files:  # stored outside the chosen part of a partial restore
                raise EngineError(INVALID_SETTING, f"hard link to {target}, outside the chosen part", path=name)
            os.makedirs(os.path.dirname(self._path(name)), exist_ok=True)
            os.link(self._path(target), self._path(name), follow_symlinks=False)
            self.files[name] = self.files[target]

    def _write_file(self, info, name: str, source) -> None:
        full = self._path(name)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(full, flags, 0o600)
        digest = hashlib.sha256()
        size = 0
        try:
            while chunk := source.read(_CHUNK):
                digest.update(chunk)
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view):]
                size += len(chunk)
            # setuid/setgid/sticky are never restored: a backup must not grant privileges.
            os.fchmod(fd, stat.S_IMODE(info.mode) & 0o777)
        finally:
            os.close(fd)
        _set_mtime(full, info.mtime)
        if size != info.size:
            raise EngineError(BACKUP_CORRUPTED, "member data truncated", path=name)
        self.files[name] = (size, digest.hexdigest())
        self.total_bytes += size

    def finish(self) -> None:
        unsafe = self.rules.finish()  # symlink chains that leave the folder or loop
        if unsafe:
            raise unsafe[0]
        for name, target in self.links.items():
            full = self._path(name)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            os.symlink(target, full)
        # Deepest first, so setting a parent's mtime is not undone by its children.
        for name in sorted(self.dirs, key=lambda n: n.count("/"), reverse=True):
            mode, mtime = self.dirs[name]
            full = self._path(name)
            os.chmod(full, (stat.S_IMODE(mode) & 0o777) | 0o700)  # owner keeps access to clean up
            _set_mtime(full, mtime)

    def check_manifest(self, manifest: dict, wanted=None) -> None:
        """Every file (of the chosen part, with ``wanted``) as the manifest lists it."""
        keep = wanted or (lambda path: True)
        listed = {f["path"]: f for f in manifest.get("files", []) if keep(f["path"])}
        for path, entry in listed.items():
            got = self.files.get(path)
            if got is None:
                raise EngineError(BACKUP_CORRUPTED, "file in the manifest missing from the archive", path=path)
            if got != (entry.get("size"), entry.get("sha256")):
                raise EngineError(BACKUP_CORRUPTED, "extracted file differs from the manifest", path=path)
        extra = sorted(set(self.files) - set(listed))
        if extra:
            raise EngineError(BACKUP_CORRUPTED, "file in the archive not listed in the manifest", path=extra[0])
        links = {s["path"]: s.get("target") for s in manifest.get("symlinks", []) if keep(s["path"])}
        if links != self.links:
            raise EngineError(BACKUP_CORRUPTED, "symlinks differ from the manifest")


def chosen_part(paths):
    """``wanted(name)`` for a partial extraction: True for each of ``paths``
    (normalized folder-relative paths, see ``normalize_selection``) and
    everything below it; None (everything) when ``paths`` is empty."""
    if not paths:
        return None
    chosen = frozenset(paths)

    def wanted(name: str) -> bool:
        if name in chosen:
            return True
        slash = name.find("/")
        while slash != -1:
            if name[:slash] in chosen:
                return True
            slash = name.find("/", slash + 1)
        return False
    return wanted


def normalize_selection(paths) -> list[str]:
    """Folder-relative "/"-separated paths as given by a user, made plain:
    ``./world//DIM-1/`` -> ``world/DIM-1``; a path inside another chosen one
    is dropped (the outer one holds it). Raises ValueError naming the first
    path that is empty, absolute, holds ``..``, a backslash or a NUL."""
    cleaned = []
    for raw in paths:
        if not isinstance(raw, str) or not raw.strip():
            raise ValueError("an empty path")
        text = raw.strip()
        if "\\" in text or "\0" in text or text.startswith("/") or (len(text) > 1 and text[1] == ":"):
            raise ValueError(f"{raw!r} is not a path inside the server folder")
        if ".." in text.split("/"):
            raise ValueError(f"{raw!r} holds '..'")
        name = normalize_name(text.strip("/"))
        if not name or name_problem(name):
            raise ValueError(f"{raw!r} is not a path inside the server folder")
        cleaned.append(name)
    unique = sorted(set(cleaned))
    return [p for p in unique if not any(p.startswith(q + "/") for q in unique)]


def extract_to_staging(path, target_dir, *, keyring=None, progress=None, on_staging=None,
                       only=None) -> ExtractResult:
    """Extract a backup into a new folder beside ``target_dir``.

    The staging folder is ``<parent>/.<name>.restore-<random>``, on the same
    filesystem as the target so ``swap_into_place`` is a rename. Every file
    is hashed as it is written and checked against the manifest (size and
    SHA-256; missing and extra files are errors) once the whole stream has
    authenticated. Archives without a manifest (made by other tools) are
    extracted under the same safety rules, unchecked (``manifest_checked``
    False). On any failure the staging folder is removed and ``EngineError``
    raised (UNSAFE_ARCHIVE, BACKUP_CORRUPTED, DECRYPTION_FAILED,
    INSUFFICIENT_DISK_SPACE, PERMISSION_DENIED). ``on_staging(path)`` hears
    the staging folder's path as soon as it exists, before anything is
    written to it, so a caller can record it (a crash mid-extraction must not
    leave an unknown folder behind).

    ``only`` (a list of plain folder-relative paths, ``normalize_selection``)
    extracts just those paths and what is below them: the archive is still
    read once, whole, every member still passes the safety rules and the
    stored file's hash is still taken; the manifest check covers the chosen
    part. A chosen path that matches no member is INVALID_SETTING.
    """
    return _extract(lambda: ArchiveStream(path, keyring=keyring, progress=progress), target_dir,
                    keyring=keyring, on_staging=on_staging, only=only)


def extract_stream_to_staging(fileobj, target_dir, *, size: int | None = None, sha256: str | None = None,
                              name: str = "<stream>", keyring=None, progress=None, on_staging=None,
                              only=None) -> ExtractResult:
    """``extract_to_staging`` from a stream instead of a stored file: a copy
    read from a storage target, front to back, never seeked (``fileobj`` needs
    only ``read(n)``; the caller closes it). The same safety rules, the same
    bounded memory (1 MiB blocks, a queue of four). The raw bytes are hashed as
    they arrive: once the stream has ended, their count must be ``size`` and
    their SHA-256 ``sha256`` (when given), else BACKUP_CORRUPTED — checked
    before the staging folder is handed back, so altered or cut-short bytes
    never reach the swap. ``name`` is what messages call the stream."""
    return _extract(lambda: ArchiveStream(name, keyring=keyring, progress=progress, fileobj=fileobj, size=size),
                    target_dir, keyring=keyring, on_staging=on_staging, only=only, size=size, sha256=sha256)


def _check_raw(stream, size: int | None, sha256: str | None) -> None:
    if size is not None and stream.raw.bytes_read != size:
        raise EngineError(BACKUP_CORRUPTED, f"the backup read is {stream.raw.bytes_read} bytes, expected {size}",
                          path=stream.path)
    if sha256 and stream.sha256 != sha256.lower():
        raise EngineError(BACKUP_CORRUPTED, "the SHA-256 of the bytes read does not match the backup's checksum",
                          path=stream.path)


def _extract(open_stream, target_dir, *, keyring, on_staging, only, size=None, sha256=None) -> ExtractResult:
    started = time.monotonic()
    target = os.path.abspath(os.fspath(target_dir))
    parent, base = os.path.split(target)
    if not os.path.isdir(parent):
        raise EngineError(SERVER_DIRECTORY_NOT_FOUND, "Folder for the restore not found", path=parent)
    try:
        staging = tempfile.mkdtemp(prefix=f".{base}.restore-", dir=parent)
    except OSError as exc:
        raise from_os_error(exc, path=parent) from exc
    try:
        if on_staging is not None:
            on_staging(staging)
        with open_stream() as stream:
            if stream.format.encrypted and not keyring:
                raise EngineError(DECRYPTION_FAILED, "Backup is encrypted and no key or password was given")
            extractor = _SafeExtractor(staging)
            wanted = chosen_part(only)
            matched = set()
            for info, name in stream.members():
                after = bool(stream.members_after_manifest)
                if wanted is None or wanted(name):
                    extractor.add(info, name, stream, after_manifest=after)
                    if wanted is not None:
                        matched.add(next(p for p in only if name == p or name.startswith(p + "/")))
                else:
                    extractor.skip(info, name, after_manifest=after)
            stream.finish()
            _check_raw(stream, size, sha256)  # a streamed copy: the bytes are the backup's, whole
            stream.raise_problems()  # truncated, damaged header, trailing data, bad manifest
            extractor.finish()
            if stream.manifest is not None:
                extractor.check_manifest(stream.manifest, wanted)
            missing = [p for p in (only or ()) if p not in matched]
            if missing:
                raise EngineError(INVALID_SETTING, "not in this backup", path=missing[0])
            fmt = stream.format
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, OSError):
            raise from_os_error(exc) from exc
        raise
    return ExtractResult(
        staging_dir=staging, file_count=len(extractor.files), total_bytes=extractor.total_bytes,
        symlink_count=len(extractor.links), directory_count=len(extractor.dirs),
        manifest_checked=stream.manifest is not None, compression=fmt.compression, encrypted=fmt.encrypted,
        duration_seconds=round(time.monotonic() - started, 3),
    )


def _free_sibling(target: str, label: str) -> str:
    parent, base = os.path.split(target)
    while True:
        candidate = os.path.join(parent, f".{base}.{label}-{secrets.token_hex(4)}")
        if not os.path.lexists(candidate):
            return candidate


def swap_into_place(staging, target, *, before_rename=None, label: str = "previous") -> str | None:
    """Rename ``target`` aside and ``staging`` onto it; returns where the old folder went.

    Both must be in the same directory (same filesystem: renames, no copies).
    Returns None when there was nothing at ``target``. If the second rename
    fails the first is undone before re-raising. ``before_rename(source,
    destination)``, if given, is called before each rename, so a caller can
    record its intent durably first (a crash between the two renames is then
    repairable). The folder moved aside is ``.<name>.<label>-<random>``.
    """
    staging, target = os.path.abspath(os.fspath(staging)), os.path.abspath(os.fspath(target))
    if os.path.dirname(staging) != os.path.dirname(target):
        raise EngineError(INVALID_SETTING, "Staging folder must be beside the target", path=staging)
    intent = before_rename or (lambda source, destination: None)
    previous = None
    if os.path.lexists(target):
        previous = _free_sibling(target, label)
        intent(target, previous)
        os.rename(target, previous)
    try:
        intent(staging, target)
        os.rename(staging, target)
    except BaseException:
        if previous is not None and not os.path.lexists(target):
            intent(previous, target)
            os.rename(previous, target)
        raise
    _fsync_dir(os.path.dirname(target))
    return previous


def rollback_swap(target, previous_path, *, before_rename=None) -> str | None:
    """Undo ``swap_into_place``: put ``previous_path`` back at ``target``.

    The restored folder now at ``target`` is renamed aside (not deleted) and
    its new path returned so the caller can inspect or remove it.
    ``before_rename`` is called before each rename, as in ``swap_into_place``.
    """
    target = os.path.abspath(os.fspath(target))
    intent = before_rename or (lambda source, destination: None)
    moved = None
    if os.path.lexists(target):
        moved = _free_sibling(target, "failed-restore")
        intent(target, moved)
        os.rename(target, moved)
    if previous_path is not None:
        intent(previous_path, target)
        os.rename(previous_path, target)
    _fsync_dir(os.path.dirname(target))
    return moved
