"""Compression: parallel block writers and truncation-checking readers.

Writers are sinks with ``write(bytes)`` / ``close()`` / ``abort()`` that pass
compressed bytes to the next sink. gzip, bzip2 and xz are compressed in
parallel blocks on a thread pool (deflate, bz2 and lzma release the GIL;
which deflate runs, zlib-ng / ISA-L / zlib, is ``codecs.py``'s choice):

* gzip, like pigz: each block is raw deflate primed with the previous 32 KiB
  as dictionary and ended with Z_SYNC_FLUSH (byte-aligned, not final); the
  last block ends with Z_FINISH. The blocks joined form ONE deflate stream,
  wrapped in one gzip header and a trailer whose CRC32 is computed over the
  input in order and ISIZE = input length mod 2^32. Which deflate each block
  gets is ``codecs.DeflatePlan``'s choice; one thread writes the same blocks.
* bzip2 and xz: each block is an independent stream; the formats allow
  concatenated streams (bzip2 -d, xz -d and Python read them back).
* zstd uses libzstd's own worker threads (zstandard ``threads``).
"""
from __future__ import annotations

import bz2
import collections
import lzma
import struct
from concurrent.futures import ThreadPoolExecutor

import zstandard

from . import codecs
from .priority import default_threads
from .errors import BACKUP_CORRUPTED, INVALID_SETTING, EngineError

COMPRESSIONS = ("gzip", "bzip2", "lzma", "zstd", "none")
DEFAULT_LEVELS = {"gzip": 6, "bzip2": 9, "lzma": 6, "zstd": 3, "none": 0}
_SUFFIXES = {"gzip": ".tar.gz", "bzip2": ".tar.bz2", "lzma": ".tar.xz", "zstd": ".tar.zst", "none": ".tar"}
_LEVEL_RANGES = {"gzip": (1, 9), "bzip2": (1, 9), "lzma": (0, 9), "zstd": (1, 22), "none": (0, 0)}
_BLOCK_SIZES = {"gzip": 512 * 1024, "bzip2": 2 * 900 * 1024, "lzma": 8 * 1024 * 1024}
_DICT_SIZE = 32 * 1024
_XZ_DICT = {0: 1 << 18, 1: 1 << 20, 2: 1 << 21, 3: 1 << 22, 4: 1 << 22, 5: 1 << 23, 6: 1 << 23, 7: 1 << 24,
            8: 1 << 25, 9: 1 << 26}  # xz's own dictionary size for each preset

MAGICS = (  # (prefix, compression)
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "lzma"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)


def backup_suffix(compression: str, encrypted: bool) -> str:
    """File suffix for a backup: ``.tar.gz`` ... ``.tar`` plus ``.enc`` when encrypted."""
    check_compression(compression)
    return _SUFFIXES[compression] + (".enc" if encrypted else "")


def check_compression(compression: str) -> None:
    if compression not in COMPRESSIONS:
        raise EngineError(INVALID_SETTING, f"Unknown compression {compression!r}; use one of {COMPRESSIONS}")


def sniff_compression(head: bytes) -> str | None:
    """Compression named by the first bytes, "none" for a bare tar, None if unknown."""
    for magic, name in MAGICS:
        if head.startswith(magic):
            return name
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "none"
    if len(head) >= 512 and head[:512] == bytes(512):
        return "none"  # an empty tar is just zero blocks
    return None


class _PassThrough:
    """``none``: the tar stream goes to the next sink untouched."""

    def __init__(self, dest):
        self._dest = dest

    def write(self, data) -> None:
        self._dest.write(data)

    def close(self) -> None:
        self._dest.close()

    def abort(self) -> None:
        pass


_large_frees_returned = False


def _return_large_frees() -> None:
    """glibc keeps freed blocks of up to 32 MiB in each thread's heap for reuse; the xz
    match finders freed after every block then stay resident beside the next ones
    (~30 MiB). From here on, allocations of 1 MiB or more are mapped and unmapped
    on their own (``mallopt(M_MMAP_THRESHOLD)``). Elsewhere than glibc: nothing."""
    global _large_frees_returned
    if _large_frees_returned:
        return
    _large_frees_returned = True
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


_libc = None


def _trim_heap() -> None:
    """Give the heap's free memory back to the system (glibc's ``malloc_trim``).

    Blocks are allocated on one thread and freed on another; glibc keeps what
    was freed in each thread's arena, and when deflate runs fast that grows
    with the archive (gzip on 4 GiB: 110 MiB peak against 90 at 1 GiB). A trim
    every ``_TRIM_EVERY`` blocks keeps it flat and costs about a millisecond.
    Elsewhere than glibc: nothing."""
    global _libc
    if _libc is None:
        try:
            import ctypes

            _libc = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _libc = False
    if _libc:
        _libc(0)


_TRIM_EVERY = 64  # blocks


class _ParallelBlockWriter:
    """Splits input into blocks, compresses them on a pool, writes them in order.

    At most ``2 * threads`` blocks are in flight, so memory is bounded by
    block size and thread count, never by input size.
    """

    def __init__(self, dest, compression: str, level: int, threads: int):
        self._dest = dest
        self._kind = compression
        self._level = level
        self._block_size = _BLOCK_SIZES[compression]
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=f"mcsite-{compression}")
        self._in_flight: collections.deque = collections.deque()
        self._max_in_flight = threads if compression == "lzma" else threads * 2
        self._buf = bytearray()
        self._prev_tail = b""
        self._crc = 0
        self._size = 0
        self._written = 0
        self.plan = codecs.DeflatePlan(level) if compression == "gzip" else None
        if compression == "lzma":
            # Each block is its own stream, so a dictionary larger than a block finds nothing
            # more (xz's preset 9 would hold 64 MiB); the hc4 match finder needs 55 MiB per
            # thread at 8 MiB where presets 4-9's bt4 needs 87 MiB, for output 0.05 % larger
            # on region files.
            self._xz_filters = [{"id": lzma.FILTER_LZMA2, "preset": level, "mf": lzma.MF_HC4,
                                 "dict_size": min(_XZ_DICT[level], self._block_size)}]
            _return_large_frees()
        if compression == "gzip":
            # mtime 0, XFL 0, OS 3 (Unix): deterministic header like `gzip -n`.
            dest.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03")

    def write(self, data) -> None:
        # Each block is filled in a buffer of its own, which is then handed to the pool as
        # it is: no copy. A full block is sent only once more input comes, so close()
        # always has the final block to finish the stream with.
        view = memoryview(data)
        size = self._block_size
        while view:
            if len(self._buf) == size:
                self._submit(self._buf, last=False)
                self._buf = bytearray()
            room = size - len(self._buf)
            self._buf += view[:room]
            view = view[room:]

    def _submit(self, block, last: bool) -> None:
        if self._kind == "gzip":
            self._crc = codecs.crc32(block, self._crc)
            self._size += len(block)
            future = self._pool.submit(codecs.deflate_planned, block, self._prev_tail, self._level, last,
                                       *self.plan.next())
            self._prev_tail = bytes(block[-_DICT_SIZE:])
        elif self._kind == "bzip2":
            future = self._pool.submit(bz2.compress, block, self._level)
        else:
            future = self._pool.submit(lzma.compress, block, format=lzma.FORMAT_XZ, filters=self._xz_filters)
        self._in_flight.append(future)
        while len(self._in_flight) >= self._max_in_flight:
            self._write_oldest()

    def _write_oldest(self) -> None:
        result = self._in_flight.popleft().result()
        if self.plan is not None:
            result, note = result
            self.plan.learn(note)
        self._dest.write(result)
        self._written += 1
        if self._written % _TRIM_EVERY == 0:
            _trim_heap()

    def close(self) -> None:
        self._submit(self._buf, last=True)
        self._buf = bytearray()
        while self._in_flight:
            self._write_oldest()
        if self._kind == "gzip":
            self._dest.write(struct.pack("<II", self._crc & 0xFFFFFFFF, self._size & 0xFFFFFFFF))
        self._pool.shutdown(wait=True)
        self._dest.close()

    def abort(self) -> None:
        for future in self._in_flight:
            future.cancel()
        self._in_flight.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)


class _CompressObjWriter(_PassThrough):
    """A sink feeding one compressobj (zlib or zstandard): compress, flush at close."""

    def __init__(self, dest, comp):
        super().__init__(dest)
        self._comp = comp

    def write(self, data) -> None:
        out = self._comp.compress(data)
        if out:
            self._dest.write(out)

    def close(self) -> None:
        self._dest.write(self._comp.flush())
        self._dest.close()


class _ZstdWriter(_CompressObjWriter):
    def __init__(self, dest, level: int, threads: int):
        params = zstandard.ZstdCompressor(level=level, threads=threads if threads > 1 else 0, write_checksum=True)
        super().__init__(dest, params.compressobj())


def open_compressor(dest, compression: str, level: int | None = None, threads: int | None = None):
    """A sink compressing into ``dest`` (another sink with write/close)."""
    check_compression(compression)
    if level is None:
        level = DEFAULT_LEVELS[compression]
    low, high = _LEVEL_RANGES[compression]
    if compression != "none" and not (isinstance(level, int) and low <= level <= high):
        raise EngineError(INVALID_SETTING, f"{compression} level must be between {low} and {high}")
    threads = default_threads() if not threads else max(1, int(threads))
    if compression == "none":
        return _PassThrough(dest)
    if compression == "zstd":
        return _ZstdWriter(dest, level, threads)
    return _ParallelBlockWriter(dest, compression, level, threads)


# --- reading -----------------------------------------------------------------

_READ_SIZE = 256 * 1024
_MAX_OUT = 1024 * 1024  # bound on output per decompress call (zip bombs stay flat)
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_ZSTD_BLOCK_MAX = 128 * 1024  # a zstd block never decodes to more (RFC 8878 Block_Maximum_Size)


def _new_decompressor(compression: str):
    if compression == "gzip":
        return codecs.decompressobj(31)
    if compression == "bzip2":
        return bz2.BZ2Decompressor()
    if compression == "lzma":
        return lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
    return zstandard.ZstdDecompressor().decompressobj()


def _corrupted(message: str) -> EngineError:
    return EngineError(BACKUP_CORRUPTED, message)


class _ZstdCutter:
    """Where to cut zstd input so one ``decompress`` call yields at most ~``_MAX_OUT``.

    ``zstandard``'s decompressobj has no output limit: 256 KiB of 4-byte RLE
    blocks would come back as 8 GiB from one call. So this walks the frame
    layout (RFC 8878: frame header, then blocks behind 3-byte headers, each
    decoding to <= 128 KiB, an optional 4-byte checksum; skippable frames) and
    lets through blocks worth at most ``_MAX_OUT`` per call (always at least
    one). libzstd still does all decoding and checking: this only picks cut
    points, so a misparse could change how much is fed at once, never the output.
    """

    def __init__(self):
        self._state = "frame"  # next comes a frame header, a "block" header, or the "end" of the frame
        self._skip = 0  # bytes to pass before the next header (block content, checksum, skippable data)
        self._checksum = False

    def limit(self, buf) -> int:
        """How many bytes of ``buf`` (the stream from here on) to feed now; 0 means a
        header is cut off and more input is needed to go on."""
        pos, size, budget, blocks = 0, len(buf), _MAX_OUT, 0
        while pos < size:
            if self._skip:
                step = min(self._skip, size - pos)
                pos, self._skip = pos + step, self._skip - step
            elif self._state == "end":
                return size  # the library stops at the frame end; the rest comes back as unused_data
            elif self._state == "frame":
                used = self._frame_header(bytes(buf[pos:pos + 18]))
                if used == 0:
                    return pos
                if used < 0:
                    return size  # not a zstd frame: the library reports it
                pos += used
            else:
                if size - pos < 3:
                    return pos
                head = int.from_bytes(buf[pos:pos + 3], "little")
                kind, length = (head >> 1) & 3, head >> 3
                if kind == 3:
                    return size  # reserved block type: the library reports it
                cost = _ZSTD_BLOCK_MAX if kind == 2 else length
                if blocks and cost > budget:
                    return pos
                budget, blocks = budget - cost, blocks + 1
                pos += 3
                self._skip = 1 if kind == 1 else length  # an RLE block stores one byte
                if head & 1:  # last block
                    self._skip += 4 if self._checksum else 0
                    self._state = "end"
        return pos

    def _frame_header(self, head: bytes) -> int:
        """Header length, 0 if ``head`` is too short to tell, -1 if not a frame."""
        if len(head) < 4:
            return 0
        if head[:4] == _ZSTD_MAGIC:
            if len(head) < 5:
                return 0
            desc = head[4]
            single = (desc >> 5) & 1
            length = 5 + (1 - single) + (0, 1, 2, 4)[desc & 3] + (single, 2, 4, 8)[desc >> 6]
            if len(head) < length:
                return 0
            self._checksum, self._state = bool(desc & 4), "block"
            return length
        if head[0] & 0xF0 == 0x50 and head[1:4] == b"\x2a\x4d\x18":  # skippable frame
            if len(head) < 8:
                return 0
            self._skip, self._state = int.from_bytes(head[4:8], "little"), "end"
            return 8
        return -1


class DecompressingReader:
    """``read(n)`` over a compressed stream of one or more concatenated members.

    Unlike ``zstandard``'s stream reader it raises when the input ends inside
    a member (truncation), and every format's own check (gzip CRC32/ISIZE,
    bzip2 CRC, xz CRC64, zstd XXH64 when present) is enforced by the library.
    Output per step is bounded (about ``_MAX_OUT``; for zstd by feeding whole
    blocks, see ``_ZstdCutter``), so a decompression bomb does not balloon memory.
    """

    def __init__(self, source, compression: str):
        self._src = source
        self._kind = compression
        self._dec = _new_decompressor(compression)
        self._cutter = _ZstdCutter()
        self._pending = b""  # input not yet given to the current decompressor (bytes or memoryview)
        self._out = memoryview(b"")
        self._src_eof = False
        self._finished = False

    def _read_src(self) -> bytes:
        data = self._src.read(_READ_SIZE)
        self._src_eof = not data
        return data

    def _next_member(self) -> bool:
        """After a member ended: start the next one, or finish on EOF / zero padding."""
        tail = self._pending
        while not tail.strip(b"\0"):
            if self._src_eof:
                self._finished = True  # trailing zero padding is tolerated, as gzip -d does
                return False
            tail = self._read_src()
        self._pending = tail
        self._dec = _new_decompressor(self._kind)
        self._cutter = _ZstdCutter()
        return True

    def _produce(self) -> bytes:
        if self._dec.eof and not self._next_member():
            return b""
        dec, kind = self._dec, self._kind
        if kind in ("bzip2", "lzma") and not dec.needs_input:
            data = b""  # output still buffered inside the decompressor
        else:
            if not self._pending:
                self._pending = self._read_src()
                if not self._pending:
                    raise _corrupted(f"{kind} stream truncated (ended before its end marker)")
            data, self._pending = self._pending, b""
        try:
            if kind == "gzip":
                out = dec.decompress(data, _MAX_OUT)
                self._pending = dec.unused_data if dec.eof else dec.unconsumed_tail
            elif kind == "zstd":
                out = self._zstd_step(dec, data)
            else:
                out = dec.decompress(data, _MAX_OUT)
                self._pending = dec.unused_data if dec.eof else b""
        except (*codecs.ERRORS, OSError, EOFError, lzma.LZMAError, zstandard.ZstdError) as exc:
            raise _corrupted(f"{kind} data corrupted: {exc}") from None
        return out

    def _zstd_step(self, dec, data) -> bytes:
        cut = self._cutter.limit(data)
        while cut == 0 and not self._src_eof:  # a frame or block header split across reads
            data = bytes(data) + self._read_src()
            cut = self._cutter.limit(data)
        view = memoryview(data)
        cut = cut or len(view)  # input ended inside a header: feed it; truncation is reported next
        out = dec.decompress(view[:cut])
        # memoryview slices: cutting a 256 KiB read into many small steps copies nothing
        self._pending = bytes(dec.unused_data) + bytes(view[cut:]) if dec.eof else view[cut:]
        return out

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            parts = []
            while True:
                part = self.read(_MAX_OUT)
                if not part:
                    return b"".join(parts)
                parts.append(part)
        while not self._out and not self._finished:
            self._out = memoryview(self._produce())
        out = self._out[:n].tobytes()
        self._out = self._out[n:]
        return out

    def readable(self) -> bool:
        return True
