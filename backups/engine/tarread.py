"""Python's stream-mode tarfile, with limits on what a header can make it do.

tarfile trusts header fields: it reads a GNU long name/link or a PAX header
whole into memory whatever its size field says, follows a chain of extended
headers by recursion, merges every global PAX header into one dict for the
rest of the archive, reads old-GNU sparse extension blocks and GNU 1.0 sparse
maps for as long as they go on, keeps every TarInfo it has read, and lets
ValueError / IndexError / RecursionError out of a lying header. ``TarReader``
is tarfile with:

* ``MAX_TAR_HEADER_BYTES`` (1 MiB) for one GNU long name or link name, one
  PAX header, all global PAX headers together, and one sparse map — refused
  by the size field before anything is read (a real one is a path, or a few
  hundred bytes of records);
* at most ``_MAX_EXTENDED_HEADERS`` (8) extended headers before one member
  (GNU tar and Python write at most three);
* no TarInfo kept once the next member is read (iterate with ``next()``);
* a note of how the member list ended (``stopped_at``: tarfile stops quietly
  at an empty, short, zero or damaged block), for the end-of-archive check;
* every refusal or stray exception raised as ``TarHeaderError``, a
  ``tarfile.ReadError``, which the reader reports as BACKUP_CORRUPTED.

``TailKeeper`` remembers the last bytes handed to tarfile, so what it read
ahead but never used can be checked once it stops.

Member data is read straight from tarfile's stream (``TarReader.member_reader``)
in reads as large as asked: tarfile's own path (a buffered reader over a file
view over the stream, gathering 64 KiB reads) copied every byte four times,
a quarter of a verification's reading time on a 1 GiB world.
"""
from __future__ import annotations

import collections
import tarfile

MAX_TAR_HEADER_BYTES = 1024 * 1024
_MAX_EXTENDED_HEADERS = 8


class TarHeaderError(tarfile.ReadError):
    """A tar header refused before or while it is parsed (too large, damaged)."""


def _check_header_size(what: str, size: int) -> None:
    if size > MAX_TAR_HEADER_BYTES:
        raise TarHeaderError(f"{what} of {size} bytes is over the {MAX_TAR_HEADER_BYTES >> 20} MiB limit")


class _ReadBudget:
    """``tarfile.fileobj`` while a sparse map is read: at most ``MAX_TAR_HEADER_BYTES``."""

    def __init__(self, fileobj, what: str):
        self._f = fileobj
        self._what = what
        self._left = MAX_TAR_HEADER_BYTES

    def read(self, n: int) -> bytes:
        self._left -= n
        if self._left < 0:
            raise TarHeaderError(f"{self._what} over the {MAX_TAR_HEADER_BYTES >> 20} MiB limit")
        return self._f.read(n)

    def tell(self) -> int:
        return self._f.tell()


class _BoundedTarInfo(tarfile.TarInfo):
    """tarfile's header parsing with the limits in the module docstring (private
    tarfile hooks: ``_proc_*`` are the per-type steps ``fromtarfile`` dispatches to).

    ``fromtarfile`` is the entry point for every header (tarfile calls it again
    for the header after an extended one): it counts that nesting, notes on
    the reader how the member list ended (tarfile stops quietly at an empty,
    short, zero or damaged block), and turns the stray ValueError /
    IndexError / RecursionError that a lying header can raise inside tarfile
    into a ``TarHeaderError``.
    """

    __slots__ = ()

    @classmethod
    def fromtarfile(cls, tar):
        depth = tar.header_depth
        if depth > _MAX_EXTENDED_HEADERS:
            raise TarHeaderError(f"more than {_MAX_EXTENDED_HEADERS} extended headers before one member")
        tar.header_depth = depth + 1
        try:
            info = super().fromtarfile(tar)
        except tarfile.HeaderError as exc:
            if depth == 0:
                tar.stopped_at = exc
            raise
        except (ValueError, IndexError, OverflowError, RecursionError) as exc:
            raise TarHeaderError(f"damaged tar header ({exc.__class__.__name__}: {exc})") from None
        finally:
            tar.header_depth = depth
        if info.size < 0:
            raise TarHeaderError(f"negative size in the header of {info.name!r}")
        return info

    def _proc_gnulong(self, tar):
        what = "GNU long name" if self.type == tarfile.GNUTYPE_LONGNAME else "GNU long link name"
        _check_header_size(what, self.size)
        return super()._proc_gnulong(tar)

    def _proc_pax(self, tar):
        _check_header_size("PAX header", self.size)
        if self.type == tarfile.XGLTYPE:
            tar.global_pax_bytes += self.size
            if tar.global_pax_bytes > MAX_TAR_HEADER_BYTES:
                raise TarHeaderError(
                    f"global PAX headers of more than {MAX_TAR_HEADER_BYTES >> 20} MiB in total")
        return super()._proc_pax(tar)

    def _proc_sparse(self, tar):
        real = tar.fileobj
        tar.fileobj = _ReadBudget(real, "GNU sparse map")
        try:
            return super()._proc_sparse(tar)
        finally:
            tar.fileobj = real

    def _proc_gnusparse_10(self, next, pax_headers, tar):
        real = tar.fileobj
        tar.fileobj = _ReadBudget(real, "GNU sparse map")
        try:
            return super()._proc_gnusparse_10(next, pax_headers, tar)
        finally:
            tar.fileobj = real


def _whole_reads(stream) -> None:
    """Make tarfile's ``_Stream`` (uncompressed, as we hand it a decompressed stream)
    gather a read of ``size`` bytes from as few source reads as the source gives,
    instead of ``bufsize`` pieces joined and sliced: the same bytes, the same
    position, at most ``bufsize`` read ahead as before (``TailKeeper`` relies on it)."""

    def read(size: int) -> bytes:
        buf = stream.buf
        if len(buf) >= size:
            stream.buf = buf[size:]
            return buf[:size]
        parts = [buf] if buf else []
        have = len(buf)
        while have < size:
            more = stream.fileobj.read(max(stream.bufsize, size - have))
            if not more:
                break
            parts.append(more)
            have += len(more)
        joined = parts[0] if len(parts) == 1 else b"".join(parts)
        stream.buf = joined[size:]
        return joined[:size] if len(joined) > size else joined

    stream._Stream__read = read  # tarfile's private reader (name-mangled), called by _Stream._read


class _MemberData:
    """A plain regular member's data, read from tarfile's stream as tarfile's own
    reader would (same bytes, same ``ReadError`` when they are cut short)."""

    def __init__(self, stream, info):
        self._stream = stream
        self._start = info.offset_data
        self._left = info.size

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0 or n > self._left:
            n = self._left
        if n == 0:
            return b""
        if self._start is not None:
            if self._stream.tell() != self._start:  # as tarfile's reader: seek on the first read
                self._stream.seek(self._start)  # forward only (StreamError, a TarError, otherwise)
            self._start = None
        data = self._stream.read(n)
        if len(data) != n:
            raise tarfile.ReadError("unexpected end of data")
        self._left -= n
        return data


class TarReader(tarfile.TarFile):
    """Stream-mode (``r|``) TarFile that parses headers with ``_BoundedTarInfo`` and
    keeps no TarInfo behind (iterate with ``next()``, never ``__iter__``/``getmembers``,
    which rely on the kept list)."""

    tarinfo = _BoundedTarInfo

    def __init__(self, *args, **kwargs):
        self.header_depth = 0
        self.global_pax_bytes = 0
        self.stopped_at: tarfile.HeaderError | None = None  # why the member list ended
        stream = kwargs.get("fileobj", args[2] if len(args) > 2 else None)
        if isinstance(stream, tarfile._Stream) and stream.comptype == "tar" and hasattr(stream, "_Stream__read"):
            _whole_reads(stream)
        super().__init__(*args, **kwargs)  # reads the first header

    def member_reader(self, info):
        """A reader of ``info``'s data (the member just read): direct for a plain
        regular file, tarfile's own for anything else (sparse files)."""
        if info.isreg() and not info.issparse() and isinstance(self.fileobj, tarfile._Stream):
            return _MemberData(self.fileobj, info)
        return self.extractfile(info)

    def next(self):
        info = super().next()
        self.members.clear()  # stream mode never looks back; tarfile would keep one per member
        return info


class TailKeeper:
    """Passes reads through and remembers the last bytes handed out, so the bytes
    tarfile read ahead but never used can be looked at once it stops."""

    def __init__(self, source, keep: int):
        self._src = source
        self._keep = keep
        self._tail: collections.deque = collections.deque()
        self._tail_bytes = 0
        self.delivered = 0

    def read(self, n: int = -1) -> bytes:
        data = self._src.read(n)
        if data:
            self.delivered += len(data)
            self._tail.append(data)
            self._tail_bytes += len(data)
            while self._tail_bytes - len(self._tail[0]) >= self._keep:
                self._tail_bytes -= len(self._tail.popleft())
        return data

    def unused(self, consumed: int) -> bytes:
        """The bytes delivered after the first ``consumed`` (at most ``keep`` of them)."""
        count = self.delivered - consumed
        if count <= 0:
            return b""
        if count > self._tail_bytes:
            raise RuntimeError("tar read-ahead larger than expected")  # a tarfile change; never silently pass
        return b"".join(self._tail)[-count:]
