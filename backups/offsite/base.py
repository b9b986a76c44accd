"""The storage-target interface: one ``Target`` per configured destination.

``open_target(TargetConfig(kind, name, settings, secrets))`` returns a target
of kind ``local`` (a mounted path), ``s3`` (S3-compatible object storage) or
``sftp``. Every operation raises ``OffsiteError`` (``errors.py``) with a code
and a user-readable message; every remote name is checked by ``names.py``
before any I/O, so nothing reaches outside the target's prefix or base path.

A target holds open connections: use it as a context manager or call
``close()``. It is not shared between threads.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import os
import secrets as _secrets
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import BinaryIO, Callable

from .errors import CHECKSUM_MISMATCH, INVALID_SETTING, REMOTE_ERROR, TOO_LARGE, OffsiteError

KINDS = ("local", "s3", "sftp")
SMALL_LIMIT = 1024 * 1024   # put_small/get_small: JSON sidecars, never archives

Progress = Callable[[int, int], None]      # (bytes_done, bytes_total), like the engine
OnState = Callable[[dict | None], None]    # clean-up state of an unfinished upload, None when nothing is left


@dataclass(frozen=True)
class TargetConfig:
    """What a target needs: ``settings`` are shown back to admins, ``secrets``
    (S3 secret key, SSH password or private key) never are."""

    kind: str
    name: str
    settings: dict = field(default_factory=dict)
    secrets: dict = field(default_factory=dict)

    def __repr__(self) -> str:  # never print a secret
        return f"TargetConfig(kind={self.kind!r}, name={self.name!r}, settings={self.settings!r}, secrets=<{len(self.secrets)} hidden>)"


@dataclass(frozen=True)
class UploadResult:
    remote_name: str
    size: int
    sha256: str                      # hex SHA-256 of the local file, computed while uploading
    part_size: int | None = None     # S3 only
    composite: str | None = None     # S3 only: "base64-N", what S3 reports for the object
    parts_reused: int = 0            # S3 only: parts kept from a resumed upload
    lock_until: dt.datetime | None = None


@dataclass(frozen=True)
class VerifyResult:
    remote_name: str
    size: int
    method: str                      # "read_back" or "s3_composite"
    checksum: str                    # the SHA-256 hex read back, or S3's composite


@dataclass(frozen=True)
class RemoteEntry:
    name: str                        # relative to the target's prefix or base path
    size: int
    modified: dt.datetime | None     # aware, UTC


@dataclass(frozen=True)
class TestResult:
    steps: tuple[str, ...]           # the steps that passed, in order
    detail: str


class LocalSource:
    """The local backup a whole-file upload (folder, SFTP) reads once: its
    chunks, hashed as they go by and reported to ``progress``. ``size`` and
    ``sha256`` hold once the chunks are read. OffsiteError(LOCAL_ERROR) when
    the file cannot be opened or read."""

    def __init__(self, local_path, progress: Progress | None = None):
        from .checksums import READ_CHUNK
        from .errors import LOCAL_ERROR

        self._chunk, self._code = READ_CHUNK, LOCAL_ERROR
        try:
            self.total = os.stat(local_path).st_size
            self._file = open(local_path, "rb")
        except OSError as exc:
            raise OffsiteError(LOCAL_ERROR, f"Cannot read the local backup {local_path}: {exc.strerror}") from exc
        self._progress = progress
        self._digest = hashlib.sha256()
        self.size = 0

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    def chunks(self):
        while True:
            try:
                chunk = self._file.read(self._chunk)
            except OSError as exc:
                raise OffsiteError(self._code, f"Reading the local backup failed: {exc.strerror}") from exc
            if not chunk:
                return
            self._digest.update(chunk)
            self.size += len(chunk)
            yield chunk
            if self._progress:
                self._progress(self.size, self.total)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._file.close()


class BoundedStream:
    """At most ``length`` bytes of ``raw`` (a file-like opened at the start)."""

    def __init__(self, raw, length: int | None):
        self._raw = raw
        self._left = length

    def read(self, size: int = -1) -> bytes:
        if self._left is None:
            return self._raw.read(size)
        if size is None or size < 0 or size > self._left:
            size = self._left
        data = self._raw.read(size) if size else b""
        self._left -= len(data)
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._raw.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _require(settings: dict, key: str, kind: str) -> str:
    value = settings.get(key)
    if value in (None, ""):
        raise OffsiteError(INVALID_SETTING, f"A {kind} target needs the setting '{key}'")
    return value


class Target(ABC):
    kind: str = ""

    def __init__(self, config: TargetConfig):
        self.config = config
        self.name = config.name

    # -- lifecycle ---------------------------------------------------------
    def close(self) -> None:
        """Close connections; the target may not be used afterwards."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- the operations ----------------------------------------------------
    def connect(self) -> None:
        """Reach the target and check it can be used (credentials, bucket,
        host key, base folder); the other operations connect on first use."""

    @abstractmethod
    def upload(self, local_path, remote_name: str, *, progress: Progress | None = None,
               resume_state: dict | None = None, on_state: OnState | None = None,
               object_lock_days: int | None = None) -> UploadResult:
        """Stream ``local_path`` to ``remote_name``: written under a temporary
        name (or as an S3 multipart upload) and committed atomically, so the
        final name only ever holds a complete copy. ``on_state(dict)`` is called
        before the first byte with what ``abort_incomplete(state)`` needs to
        remove the unfinished upload after a crash (and ``resume_state`` accepts
        it to continue, S3 only); ``on_state(None)`` once nothing is left."""

    @abstractmethod
    def abort_incomplete(self, prefix_or_state: str | dict = "") -> int:
        """Remove this target's unfinished uploads: those of one ``state``, or
        every one under a name ``prefix``. Returns how many were removed."""

    @abstractmethod
    def verify(self, remote_name: str, *, size: int, sha256: str, part_size: int | None = None,
               composite: str | None = None, local_path=None, read_back: bool = False) -> VerifyResult:
        """Check the remote copy's size and bytes; raise SIZE_MISMATCH or
        CHECKSUM_MISMATCH, or NOT_FOUND when it is missing."""

    @abstractmethod
    def open_read(self, remote_name: str, offset: int = 0, length: int | None = None) -> BinaryIO:
        """A read-only stream of the remote copy from ``offset`` (``length``
        bytes, or to the end); close it when done."""

    @abstractmethod
    def delete(self, remote_name: str) -> bool:
        """Delete; True if it existed. Deleting a missing name is not an error."""

    @abstractmethod
    def exists(self, remote_name: str) -> bool: ...

    @abstractmethod
    def list(self, prefix: str = "") -> list[RemoteEntry]:
        """Every complete object whose name starts with ``prefix``, sorted by name."""

    @abstractmethod
    def put_small(self, remote_name: str, data: bytes) -> None:
        """Write a small object (a JSON sidecar) atomically."""

    @abstractmethod
    def _get_small(self, remote_name: str) -> bytes: ...

    def get_small(self, remote_name: str) -> bytes:
        data = self._get_small(remote_name)
        if len(data) > SMALL_LIMIT:
            raise OffsiteError(TOO_LARGE, f"{remote_name} is larger than {SMALL_LIMIT} bytes")
        return data

    def signed_url(self, remote_name: str, expires: int = 300, filename: str | None = None) -> str | None:
        """A short-lived URL that downloads the copy without credentials (S3
        only); with ``filename`` the download is saved under that name."""
        return None

    # -- the "test this target" action ---------------------------------------
    def test(self) -> TestResult:
        """Write, read back and delete a small object; an OffsiteError names the
        step that failed (``step`` is connect, write, read, compare, delete or
        confirm-delete) and why."""
        probe = f".mcsite-test-{_secrets.token_hex(6)}"
        payload = b"mcsite target test " + _secrets.token_bytes(16)
        done: list[str] = []

        def step(label: str, action):
            try:
                result = action()
            except OffsiteError as exc:
                raise OffsiteError(exc.code, f"Step '{label}' failed: {exc.message}", step=label) from exc
            done.append(label)
            return result

        step("connect", self.connect)
        step("write", lambda: self.put_small(probe, payload))
        try:
            got = step("read", lambda: self.get_small(probe))
            if got != payload:
                raise OffsiteError(CHECKSUM_MISMATCH, "Step 'compare' failed: the object read back differs from "
                                   "the one written", step="compare")
            done.append("compare")
        except OffsiteError:
            try:
                self.delete(probe)
            except OffsiteError:
                pass
            raise
        step("delete", lambda: self.delete(probe))
        if step("confirm-delete", lambda: self.exists(probe)):
            raise OffsiteError(REMOTE_ERROR, "Step 'confirm-delete' failed: the test object is still there "
                               "after it was deleted", step="confirm-delete")
        return TestResult(steps=tuple(done), detail=f"wrote, read back and deleted {len(payload)} bytes")


def open_target(config: TargetConfig) -> Target:
    """The target for ``config``; raises INVALID_SETTING for an unknown kind or
    a missing setting. Connections are made on first use."""
    if config.kind == "local":
        from .local import LocalTarget
        return LocalTarget(config)
    if config.kind == "s3":
        from .s3 import S3Target
        return S3Target(config)
    if config.kind == "sftp":
        from .sftp import SFTPTarget
        return SFTPTarget(config)
    raise OffsiteError(INVALID_SETTING, f"Unknown target kind {config.kind!r} (one of {', '.join(KINDS)})")
