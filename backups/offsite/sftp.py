"""SFTP as a target, with a pinned host key.

Settings: ``host``, ``port`` (default 22), ``username``, ``host_key`` (required:
the server's public key line as in ``known_hosts`` or ``ssh-keyscan`` output,
e.g. ``ssh-ed25519 AAAAC3…``; a leading host name field is ignored),
``base_path`` (the folder on the server, absolute or relative to the login
folder), ``timeout`` (seconds, default 15). Secrets: ``password`` and/or
``private_key`` (OpenSSH or PEM text) with ``private_key_passphrase``.

The host key is checked before any credential is sent: a server showing
another key is refused with HOST_KEY_MISMATCH naming both fingerprints, and
nothing is written. Keys in ``~/.ssh`` and the SSH agent are never used.

django-storages' ``SFTPStorage`` keeps the connection (our pinned connect
replaces its trust-on-first-use one) and answers exists, size and sidecar
reads; its paramiko ``SFTPClient`` does the rest: ``<name>.mcsite.partial``
written with pipelined requests, size checked, ``posix-rename`` over the final
name (atomic on the server), bounded windowed reads for read-back and restore.
"""
from __future__ import annotations

import base64
import binascii
import collections
import datetime as dt
import errno
import hashlib
import io
import os
import posixpath
import socket
import stat

import paramiko

from . import names
from .base import SMALL_LIMIT, LocalSource, RemoteEntry, Target, TargetConfig, UploadResult, VerifyResult, _require
from .checksums import MIB, READ_CHUNK
from .djangoconf import ensure_settings
from .errors import (AUTH_FAILED, CHECKSUM_MISMATCH, HOST_KEY_MISMATCH, INVALID_SETTING, NOT_FOUND,
                     PERMISSION_DENIED, REMOTE_ERROR, SIZE_MISMATCH, TOO_LARGE, UNREACHABLE, OffsiteError)

READ_WINDOW = 8 * MIB      # bytes of read requests in flight at once (the most a reader buffers)
REQUEST_SIZE = 32 * 1024   # one SFTP read request (what OpenSSH serves in one answer)


def parse_host_key(line: str) -> paramiko.PKey:
    """The public key of a ``known_hosts``/``ssh-keyscan`` line or of a bare
    ``type base64 [comment]`` line; INVALID_SETTING when there is none."""
    tokens = (line or "").split()
    for i, token in enumerate(tokens[:-1]):
        if token.startswith(("ssh-", "ecdsa-sha2-", "sk-")):
            try:
                blob = base64.b64decode(tokens[i + 1], validate=True)
                return paramiko.PKey.from_type_string(token, blob)
            except (binascii.Error, ValueError, paramiko.SSHException) as exc:
                raise OffsiteError(INVALID_SETTING, f"The pinned host key is not a valid {token} key ({exc})") from exc
    raise OffsiteError(INVALID_SETTING, "The pinned host key must be the server's public key line, as in "
                       "known_hosts or the output of ssh-keyscan (for example 'ssh-ed25519 AAAA…')")


def _load_private_key(text: str, passphrase: str | None) -> paramiko.PKey:
    errors = []
    for key_class in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return key_class.from_private_key(io.StringIO(text), password=passphrase or None)
        except paramiko.PasswordRequiredException as exc:
            raise OffsiteError(INVALID_SETTING, "The private key is encrypted: give its passphrase") from exc
        except (paramiko.SSHException, ValueError) as exc:
            errors.append(str(exc))
    raise OffsiteError(INVALID_SETTING, "The private key could not be read (OpenSSH or PEM Ed25519, ECDSA or RSA "
                       "key expected)")


class _HostKeyRefused(Exception):
    def __init__(self, offered: paramiko.PKey):
        self.offered = offered


class _PinnedPolicy(paramiko.MissingHostKeyPolicy):
    """The server offered no key of the pinned type: refuse like a changed key."""

    def missing_host_key(self, client, hostname, key):
        raise _HostKeyRefused(key)


def _describe(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.fingerprint}"


class SFTPTarget(Target):
    kind = "sftp"

    def __init__(self, config: TargetConfig):
        super().__init__(config)
        settings, secrets = config.settings, config.secrets
        self.host = _require(settings, "host", "sftp")
        self.username = _require(settings, "username", "sftp")
        try:
            self.port = int(settings.get("port") or 22)
            self.timeout = float(settings.get("timeout") or 15)
        except (TypeError, ValueError) as exc:
            raise OffsiteError(INVALID_SETTING, f"port and timeout are numbers ({exc})") from exc
        self.pinned = parse_host_key(_require(settings, "host_key", "sftp"))
        self.base_path = str(settings.get("base_path") or ".").rstrip("/") or "/"
        if "\0" in self.base_path or "\\" in self.base_path:
            raise OffsiteError(INVALID_SETTING, "The base path may not contain NUL or backslashes")
        self.password = secrets.get("password") or None
        self.pkey = (_load_private_key(secrets["private_key"], secrets.get("private_key_passphrase"))
                     if secrets.get("private_key") else None)
        if not self.password and not self.pkey:
            raise OffsiteError(INVALID_SETTING, "An SFTP target needs a password or a private key")
        ensure_settings()
        from storages.backends.sftpstorage import SFTPStorage

        target = self

        class PinnedSFTPStorage(SFTPStorage):
            def _connect(self):  # replaces django-storages' trust-on-first-use connect
                self._ssh, self._sftp = target._open_connection()

        self.storage = PinnedSFTPStorage(host=self.host, params={}, root_path=self.base_path, interactive=False,
                                         base_url="")

    # -- connection ----------------------------------------------------------
    def _open_connection(self):
        client = paramiko.SSHClient()
        entry = self.host if self.port == 22 else f"[{self.host}]:{self.port}"
        client.get_host_keys().add(entry, self.pinned.get_name(), self.pinned)
        client.set_missing_host_key_policy(_PinnedPolicy())
        where = f"{self.host}:{self.port}"
        try:
            client.connect(self.host, port=self.port, username=self.username, password=self.password,
                           pkey=self.pkey, look_for_keys=False, allow_agent=False, timeout=self.timeout,
                           banner_timeout=self.timeout, auth_timeout=self.timeout)
            return client, client.open_sftp()
        except (paramiko.BadHostKeyException, _HostKeyRefused) as exc:
            client.close()
            offered = exc.key if isinstance(exc, paramiko.BadHostKeyException) else exc.offered
            raise OffsiteError(HOST_KEY_MISMATCH, f"The SFTP server {where} showed the host key {_describe(offered)}, "
                               f"but target {self.name} is pinned to {_describe(self.pinned)}. Nothing was sent. If "
                               "the server's key was changed on purpose, update the target's host key; otherwise "
                               "the connection may be intercepted.", step="connect") from None
        except paramiko.AuthenticationException as exc:
            client.close()
            tried = " and ".join(x for x, on in (("password", self.password), ("private key", self.pkey)) if on)
            raise OffsiteError(AUTH_FAILED, f"The SFTP server {where} refused the login of {self.username!r} "
                               f"with the {tried} ({exc})", step="connect") from None
        except (socket.timeout, TimeoutError) as exc:
            client.close()
            raise OffsiteError(UNREACHABLE, f"The SFTP server {where} did not answer in time", step="connect") from exc
        except (OSError, paramiko.SSHException, EOFError) as exc:
            client.close()
            raise OffsiteError(UNREACHABLE, f"Cannot connect to the SFTP server {where}: {exc}",
                               step="connect") from exc

    @property
    def sftp(self) -> paramiko.SFTPClient:
        try:
            return self.storage.sftp
        except OffsiteError:
            raise
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise OffsiteError(UNREACHABLE, f"The SFTP connection to {self.host}:{self.port} was lost: {exc}") from exc

    def close(self) -> None:
        self.storage.close()

    def connect(self) -> None:
        try:
            attrs = self.sftp.stat(self.base_path)
        except OSError as exc:
            raise self._error(exc, f"the base folder {self.base_path}") from exc
        if not stat.S_ISDIR(attrs.st_mode or 0):
            raise OffsiteError(INVALID_SETTING, f"The base path {self.base_path} on {self.host} is not a folder")

    def _error(self, exc: Exception, what: str) -> OffsiteError:
        if isinstance(exc, OffsiteError):
            return exc
        if isinstance(exc, (EOFError, paramiko.SSHException, socket.error)) and not isinstance(exc, IOError):
            return OffsiteError(UNREACHABLE, f"The SFTP connection to {self.host} was lost while handling {what}")
        if isinstance(exc, OSError):
            if exc.errno == errno.ENOENT or isinstance(exc, FileNotFoundError):
                return OffsiteError(NOT_FOUND, f"{what} does not exist on {self.host}")
            if exc.errno == errno.EACCES or isinstance(exc, PermissionError):
                return OffsiteError(PERMISSION_DENIED, f"The SFTP server {self.host} denied access to {what}")
            if isinstance(exc, (ConnectionError, socket.timeout)):
                return OffsiteError(UNREACHABLE, f"The SFTP connection to {self.host} was lost while handling {what}")
            reason = exc.strerror or (exc.args[0] if exc.args else "") or type(exc).__name__
            return OffsiteError(REMOTE_ERROR, f"The SFTP server {self.host} failed on {what}: {reason} (a full disk "
                                "or quota is reported this way too)")
        return OffsiteError(REMOTE_ERROR, f"SFTP failed on {what}: {type(exc).__name__}: {exc}")

    def _remote(self, remote_name: str) -> str:
        return posixpath.join(self.base_path, names.check_name(remote_name))

    def _makedirs(self, folder: str) -> None:
        missing = []
        while folder not in ("", "/", ".", self.base_path):
            try:
                self.sftp.stat(folder)
                break
            except FileNotFoundError:
                missing.append(folder)
                folder = posixpath.dirname(folder)
        for path in reversed(missing):
            self.sftp.mkdir(path)

    # -- writing -----------------------------------------------------------
    def _write_atomically(self, remote_name: str, chunks, on_state=None) -> int:
        path = self._remote(remote_name)
        partial = path + names.PARTIAL_SUFFIX
        written = 0
        try:
            self._makedirs(posixpath.dirname(path))
            if on_state:
                on_state({"kind": self.kind, "partial": remote_name + names.PARTIAL_SUFFIX})
            with self.sftp.open(partial, "wb") as remote:
                remote.set_pipelined(True)
                for chunk in chunks:
                    remote.write(chunk)
                    written += len(chunk)
            if self.sftp.stat(partial).st_size != written:
                raise OffsiteError(SIZE_MISMATCH, f"The SFTP server kept {written} bytes of {remote_name} short")
            try:
                self.sftp.posix_rename(partial, path)
            except OSError:   # a server without the posix-rename extension
                try:
                    self.sftp.remove(path)
                except FileNotFoundError:
                    pass
                self.sftp.rename(partial, path)
        except BaseException as exc:
            self._remove_quietly(partial)
            if isinstance(exc, (OSError, EOFError, paramiko.SSHException)):
                raise self._error(exc, f"writing {remote_name}") from exc
            raise
        if on_state:
            on_state(None)
        return written

    def _remove_quietly(self, path: str) -> None:
        try:
            self.storage._sftp and self.sftp.remove(path)
        except Exception:  # the connection may be gone: abort_incomplete removes it later
            pass

    def upload(self, local_path, remote_name, *, progress=None, resume_state=None, on_state=None,
               object_lock_days=None) -> UploadResult:
        source = LocalSource(local_path, progress)
        self._remote(remote_name)
        self.sftp  # connect (host key, login) before anything is read
        with source:
            size = self._write_atomically(remote_name, source.chunks(), on_state)
        return UploadResult(remote_name=remote_name, size=size, sha256=source.sha256)

    def put_small(self, remote_name, data) -> None:
        self._write_atomically(remote_name, [bytes(data)])

    def abort_incomplete(self, prefix_or_state="") -> int:
        if isinstance(prefix_or_state, dict):
            partial = prefix_or_state.get("partial") or ""
            if prefix_or_state.get("kind") != self.kind or not partial.endswith(names.PARTIAL_SUFFIX):
                return 0
            names.check_name(partial[: -len(names.PARTIAL_SUFFIX)])
            candidates = [partial]
        else:
            candidates = [rel for rel, _a in self._walk(prefix_or_state, partials=True)]
        removed = 0
        for rel in candidates:
            try:
                self.sftp.remove(posixpath.join(self.base_path, rel))
                removed += 1
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise self._error(exc, rel) from exc
        return removed

    # -- reading -----------------------------------------------------------
    def _stat(self, remote_name: str):
        try:
            return self.sftp.stat(self._remote(remote_name))
        except OSError as exc:
            raise self._error(exc, remote_name) from exc

    def verify(self, remote_name, *, size, sha256, part_size=None, composite=None, local_path=None,
               read_back=True) -> VerifyResult:
        remote_size = self._stat(remote_name).st_size
        if remote_size != size:
            raise OffsiteError(SIZE_MISMATCH, f"The copy of {remote_name} on {self.name} has {remote_size} bytes, "
                               f"the backup has {size}")
        digest = hashlib.sha256()
        with self.open_read(remote_name) as stream:
            for chunk in iter(lambda: stream.read(READ_CHUNK), b""):
                digest.update(chunk)
        if digest.hexdigest() != sha256:
            raise OffsiteError(CHECKSUM_MISMATCH, f"The copy of {remote_name} on {self.name} has other bytes than "
                               f"the backup (SHA-256 {digest.hexdigest()[:12]}…, expected {sha256[:12]}…)")
        return VerifyResult(remote_name=remote_name, size=remote_size, method="read_back", checksum=digest.hexdigest())

    def open_read(self, remote_name, offset=0, length=None):
        size = self._stat(remote_name).st_size
        end = size if length is None else min(size, offset + length)
        try:
            handle = self.sftp.open(self._remote(remote_name), "rb")
        except OSError as exc:
            raise self._error(exc, remote_name) from exc
        return _WindowReader(handle, offset, end, self, remote_name)

    def _get_small(self, remote_name) -> bytes:
        if self._stat(remote_name).st_size > SMALL_LIMIT:
            raise OffsiteError(TOO_LARGE, f"{remote_name} is larger than {SMALL_LIMIT} bytes")
        try:
            with self.storage.open(remote_name, "rb") as fh:
                return fh.read()
        except OSError as exc:
            raise self._error(exc, remote_name) from exc

    def exists(self, remote_name) -> bool:
        self._remote(remote_name)
        self.sftp
        try:
            return self.storage.exists(remote_name)
        except OSError as exc:
            raise self._error(exc, remote_name) from exc

    def delete(self, remote_name) -> bool:
        try:
            self.sftp.remove(self._remote(remote_name))
            return True
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise self._error(exc, f"deleting {remote_name}") from exc

    def _walk(self, prefix: str, *, partials: bool):
        names.check_prefix(prefix)
        start = prefix.rpartition("/")[0] if "/" in prefix else ""
        stack = [start]
        while stack:
            rel_dir = stack.pop()
            try:
                items = self.sftp.listdir_attr(posixpath.join(self.base_path, rel_dir) if rel_dir else self.base_path)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise self._error(exc, f"the folder {rel_dir or self.base_path}") from exc
            for item in sorted(items, key=lambda a: a.filename):
                rel = posixpath.join(rel_dir, item.filename) if rel_dir else item.filename
                if stat.S_ISDIR(item.st_mode or 0):
                    if (rel + "/").startswith(prefix) or prefix.startswith(rel + "/"):
                        stack.append(rel)
                elif stat.S_ISREG(item.st_mode or 0) and rel.startswith(prefix):
                    if item.filename.endswith(names.PARTIAL_SUFFIX) == partials:
                        yield rel, item

    def list(self, prefix="") -> list[RemoteEntry]:
        entries = [RemoteEntry(name=rel, size=attrs.st_size,
                               modified=dt.datetime.fromtimestamp(attrs.st_mtime, tz=dt.timezone.utc))
                   for rel, attrs in self._walk(prefix, partials=False)]
        return sorted(entries, key=lambda e: e.name)


class _WindowReader:
    """Reads a remote file with up to READ_WINDOW bytes of requests in flight
    (paramiko's readv), never more buffered than one window."""

    def __init__(self, handle, offset: int, end: int, target: SFTPTarget, remote_name: str):
        self._handle, self._pos, self._end = handle, offset, end
        self._target, self._name = target, remote_name
        self._pieces: collections.deque[bytes] = collections.deque()

    def _fill(self) -> None:
        stop = min(self._end, self._pos + READ_WINDOW)
        requests = [(off, min(REQUEST_SIZE, stop - off)) for off in range(self._pos, stop, REQUEST_SIZE)]
        try:
            self._pieces.extend(piece for piece in self._handle.readv(requests) if piece)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise self._target._error(exc, f"reading {self._name}") from exc
        self._pos = stop

    def read(self, size: int = -1) -> bytes:
        """``size`` bytes (fewer only at the end); ``read()`` reads to the end."""
        wanted = (self._end - self._pos) + sum(map(len, self._pieces)) if size is None or size < 0 else size
        out = bytearray()
        while len(out) < wanted:
            if not self._pieces:
                if self._pos >= self._end:
                    break
                self._fill()
                continue
            piece = self._pieces.popleft()
            take = wanted - len(out)
            if len(piece) > take:
                self._pieces.appendleft(piece[take:])
                piece = piece[:take]
            out += piece
        return bytes(out)

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._handle.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
