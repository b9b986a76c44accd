"""Minecraft Java world checks on bytes as they stream out of an archive.

* ``level.dat``: gzip (or plain) NBT whose root holds a ``Data`` compound;
  gives ``LevelName`` and ``Data.Version.Name`` (absent before 1.9).
* Anvil region files (``.mca``, also ``.mcr``; ``region/``, ``poi/`` and
  ``entities/`` use the same container): an 8 KiB header of 1024 locations
  (3-byte sector offset, 1-byte sector count) and 1024 timestamps, then 4 KiB
  sectors. A chunk is a 4-byte length, a compression byte (1 gzip, 2 zlib,
  3 none, 4 LZ4, 127 custom; +128 = stored in an external ``c.X.Z.mcc``
  file) and the payload, which must decompress and parse as NBT. A 0-byte
  region file is valid (the server creates it before saving any chunk).
* LZ4 (``region-file-compression=lz4``, 1.20.5+) is lz4-java's
  ``LZ4BlockOutputStream`` framing, decoded by ``lz4_block_stream_decompress``.

The region check reads the file front to back once, in offset order, holding
at most one chunk (<= 1 MiB) in memory — so it works on an archive stream.

Everything here reads untrusted bytes, so every expansion is capped and a
cap that is hit is a finding with its own reason (``LimitExceeded``, a
ValueError: "decompresses to more than 32 MiB"), never an out-of-memory:

* ``MAX_NBT_BYTES`` (32 MiB): the decompressed size of ``level.dat``, a
  player file or one region chunk. Real chunks inflate to well under 2 MiB
  (a region chunk is at most 1 MiB compressed; bigger ones go to ``.mcc``
  files) and ``level.dat`` / player files to a few KB. zlib and gzip are
  inflated incrementally with ``max_length`` (``_inflate``); LZ4 blocks
  declare their size up front, so the running total is checked before each
  block is decoded.
* ``MAX_EXTERNAL_CHUNK_BYTES`` (128 MiB): the same for an ``.mcc`` file
  (an oversized chunk, by definition over 1 MiB compressed); its compressed
  size is capped at ``_MAX_MCC_BYTES`` (64 MiB) before it is read.
* ``MAX_PARSED_TAGS`` (200 000): nbtlib builds one Python object (~70
  bytes, ~6 µs) per tag, so 32 MiB of one-byte tags would still be GiBs and
  minutes. level.dat and player files, the only ones parsed with nbtlib, hold
  a few hundred to a few thousand tags. Chunks go through the allocation-free
  structure walker instead.

Peak memory of a world check is therefore about threads x (one buffered
region file + one inflated chunk), whatever the archive holds.
"""
from __future__ import annotations

import ctypes
import io
import logging
import posixpath
import re
import struct
import threading
from pathlib import Path

import lz4.block

from . import codecs

import xxhash as _xxhash  # lz4-java's per-block checksum is xxHash32, which the lz4 package does not expose

SECTOR = 4096
HEADER_BYTES = 2 * SECTOR
REGION_SUFFIXES = (".mca", ".mcr")
_MCC = re.compile(r"^c\.(-?\d+)\.(-?\d+)\.mcc$")
_MAX_MCC_BYTES = 64 * 1024 * 1024
MAX_NBT_BYTES = 32 * 1024 * 1024
MAX_EXTERNAL_CHUNK_BYTES = 128 * 1024 * 1024
MAX_PARSED_TAGS = 200_000
log = logging.getLogger("backups.engine")


class LimitExceeded(ValueError):
    """Untrusted data that would expand past one of the caps above (a bomb, or absurd)."""


def _over(limit: int) -> LimitExceeded:
    return LimitExceeded(f"decompresses to more than {limit >> 20} MiB")


def _inflate(data: bytes, *, gzip_wrapped: bool, limit: int) -> bytes:
    """``zlib.decompress`` / ``gzip.decompress`` that stop at ``limit`` output bytes.

    Same acceptance as the stdlib calls: zlib ignores bytes after the stream;
    gzip reads concatenated members and tolerates trailing zeros. Raises
    ``LimitExceeded`` past ``limit``, EOFError if the stream is cut short and
    one of ``codecs.ERRORS`` if it is damaged (CRC, length and Adler-32 checks included).
    """
    parts, total = [], 0
    while True:
        dec = codecs.decompressobj(31 if gzip_wrapped else 15)
        # max_length: at most one byte more than allowed is ever produced (0 would mean unlimited).
        out = dec.decompress(data, limit - total + 1)
        total += len(out)
        if total > limit:
            raise _over(limit)
        if not dec.eof:  # all input consumed below the limit, yet no end marker
            raise EOFError("compressed data ended before the end-of-stream marker")
        parts.append(out)
        data = dec.unused_data.lstrip(b"\0") if gzip_wrapped else b""
        if not data:
            return parts[0] if len(parts) == 1 else b"".join(parts)


def _nbt_bytes(data: bytes) -> bytes:
    """The NBT inside a gzip (or plain) file, within ``MAX_NBT_BYTES``."""
    if data[:2] == b"\x1f\x8b":
        return _inflate(data, gzip_wrapped=True, limit=MAX_NBT_BYTES)
    if len(data) > MAX_NBT_BYTES:
        raise LimitExceeded(f"is more than {MAX_NBT_BYTES >> 20} MiB of NBT")
    return data


def is_level_dat(name: str) -> bool:
    return posixpath.basename(name) == "level.dat"


def is_region_file(name: str) -> bool:
    return name.endswith(REGION_SUFFIXES)


def is_external_chunk(name: str) -> bool:
    return bool(_MCC.match(posixpath.basename(name)))


def is_player_data(name: str) -> bool:
    return name.endswith(".dat") and posixpath.basename(posixpath.dirname(name)) == "playerdata"


class _StrictBytes(io.BytesIO):
    """nbtlib treats a short read as zeros (an End tag), so truncated NBT would
    "parse"; this reader makes every short or negative-length read an error.
    nbtlib reads at least once per tag it builds, so counting reads caps the
    objects a parse can create (``MAX_PARSED_TAGS``)."""

    def __init__(self, data: bytes):
        super().__init__(data)
        self._reads_left = MAX_PARSED_TAGS

    def read(self, n=-1):
        if n is None or n < 0:
            raise ValueError("negative length in NBT")
        self._reads_left -= 1
        if self._reads_left < 0:
            raise LimitExceeded(f"holds more than {MAX_PARSED_TAGS} NBT tags")
        data = super().read(n)
        if len(data) < n:
            raise EOFError("NBT data truncated")
        return data


def _parse_nbt(data: bytes):
    import nbtlib  # here: it brings numpy (~23 MB), which only level.dat and player files need

    stream = _StrictBytes(data)
    root = nbtlib.File.parse(stream)
    if stream.tell() != len(data):
        raise ValueError(f"{len(data) - stream.tell()} bytes after the end of the NBT data")
    return root


_WIDTH = (0, 1, 2, 4, 8, 4, 8)  # by tag: byte short int long float double (tags 1-6)
_ARRAY_WIDTH = {7: 1, 11: 4, 12: 8}  # byte/int/long arrays
_MAX_DEPTH = 256  # the game allows 512
_INT = struct.Struct(">i").unpack_from
_NESTED, _COMPOUNDS, _LISTS = 0, 1, 2  # what a frame of the walker waits for


def check_nbt_structure(data: bytes) -> None:
    """Raise ValueError unless ``data`` is exactly one complete named root compound.

    Region chunks are checked with this walker instead of nbtlib: it checks
    the same structure (every tag type, length and nesting, nothing missing,
    nothing left over) without building Python objects, which makes it about
    10x faster than ``nbtlib.File.parse`` — that parse dominated verification
    time. level.dat and player files, where values are read, still go
    through nbtlib.

    One loop and a list of frames, no recursion: a compound or list nested
    past ``_MAX_DEPTH`` is an error ("nested too deeply"), and the frames
    held are at most ``_MAX_DEPTH``, whatever the bytes say.

    The walk itself is ``native/nbtwalk.c`` where ``make venv`` built it (the
    same loop in C, without the GIL: 10-20x faster a chunk), else ``_walk_python``.
    """
    size = len(data)
    if size < 3 or data[0] != 10:
        raise ValueError("root tag is not a compound")
    try:
        end = _walk(data, 3 + ((data[1] << 8) | data[2]), size)
    except (IndexError, struct.error):
        raise ValueError("NBT data truncated") from None
    if end != size:
        raise ValueError("NBT data truncated" if end > size else f"{size - end} bytes after the end of the NBT data")


def _too_deep() -> ValueError:
    return ValueError("NBT nested too deeply")


def _skip_items(data: bytes, item: int, count: int, pos: int, size: int) -> int:
    """Past ``count`` > 0 list items of a type that holds no further tags."""
    if item < 7:
        if item == 0:
            raise ValueError("non-empty list of End tags in NBT")
        return pos + count * _WIDTH[item]
    if item == 8:
        for _ in range(count):
            pos += 2 + ((data[pos] << 8) | data[pos + 1])
            if pos > size:
                raise IndexError
        return pos
    width = _ARRAY_WIDTH.get(item)
    if width is None:
        raise ValueError(f"unknown NBT tag type {item}")
    for _ in range(count):
        length = _INT(data, pos)[0] if pos + 4 <= size else -1
        if length < 0:
            raise ValueError("negative or truncated array length in NBT")
        pos += 4 + length * width
        if pos > size:
            raise IndexError
    return pos


def _walk_python(data: bytes, pos: int, size: int) -> int:
    """The end of the root compound whose tags start at ``pos``.

    ``frames`` holds, for each open container below the root, [kind, items
    left, depth outside it]: a compound nested in a compound, a list of
    compounds (elements left after the current one), a list of lists (lists
    left to read). A compound's depth is that of the old recursive walker:
    one more than the compound or list holding it.
    """
    frames: list = []
    depth = 0
    width, arrays, read_int = _WIDTH, _ARRAY_WIDTH, _INT
    while True:
        while True:  # the tags of the compound we are in, up to its End or a list of lists
            tag = data[pos]
            if tag == 0:
                pos += 1
                if not frames:
                    return pos
                frame = frames[-1]
                kind = frame[0]
                if kind == _COMPOUNDS and frame[1]:
                    frame[1] -= 1  # the list's next compound starts here
                    continue
                frames.pop()
                depth = frame[2]
                if kind == _COMPOUNDS and frames and frames[-1][0] == _LISTS:
                    break
                continue
            pos += 3 + ((data[pos + 1] << 8) | data[pos + 2])
            if tag == 8:
                pos += 2 + ((data[pos] << 8) | data[pos + 1])
            elif tag < 7:
                pos += width[tag]
            elif tag == 10:
                if depth >= _MAX_DEPTH:
                    raise _too_deep()
                frames.append([_NESTED, 0, depth])
                depth += 1
            elif tag == 9:
                if pos + 5 > size:
                    raise IndexError
                item, count = data[pos], read_int(data, pos + 1)[0]
                pos += 5
                if count > 0:
                    if item == 10:
                        if depth >= _MAX_DEPTH:
                            raise _too_deep()
                        frames.append([_COMPOUNDS, count - 1, depth])
                        depth += 1
                    elif item == 9:
                        if depth >= _MAX_DEPTH:
                            raise _too_deep()
                        frames.append([_LISTS, count, depth])
                        depth += 1
                        break
                    else:
                        pos = _skip_items(data, item, count, pos, size)
            else:
                array = arrays.get(tag)
                if array is None:
                    raise ValueError(f"unknown NBT tag type {tag}")
                length = read_int(data, pos)[0] if pos + 4 <= size else -1
                if length < 0:
                    raise ValueError("negative or truncated array length in NBT")
                pos += 4 + length * array
            # (no bounds check here: a position past the end fails the next read, or the
            # final comparison with the size, as "NBT data truncated" all the same)
        while True:  # the top frame is a list of lists: its next list
            frame = frames[-1]
            if frame[1] == 0:
                frames.pop()
                depth = frame[2]
                if frames and frames[-1][0] == _LISTS:
                    continue
                break  # back in the compound holding the list
            frame[1] -= 1
            if pos + 5 > size:
                raise IndexError
            item, count = data[pos], read_int(data, pos + 1)[0]
            pos += 5
            if count <= 0:
                continue
            if item == 10 or item == 9:
                if depth >= _MAX_DEPTH:
                    raise _too_deep()
                frames.append([_COMPOUNDS if item == 10 else _LISTS, count - 1 if item == 10 else count, depth])
                depth += 1
                if item == 10:
                    break  # the first compound's tags
            else:
                pos = _skip_items(data, item, count, pos, size)
                if pos > size:
                    raise IndexError


NATIVE_WALKER = Path(__file__).with_name("native") / "libnbtwalk.so"
_NATIVE_VERSION = 1  # MCSITE_NBT_VERSION in nbtwalk.c: an older build is not used
_NATIVE_ERRORS = {2: "NBT nested too deeply", 3: "non-empty list of End tags in NBT",
                  4: "unknown NBT tag type {}", 5: "negative or truncated array length in NBT"}
_walker_warned = threading.Event()


def _load_native_walker(path: Path = NATIVE_WALKER):
    """``(walk, None)`` from the C library at ``path``, or ``(None, why not)``."""
    try:
        lib = ctypes.CDLL(str(path))  # a CDLL call releases the GIL
        version = lib.mcsite_nbt_version()
        if version != _NATIVE_VERSION:
            return None, f"{path.name} is version {version}, not {_NATIVE_VERSION} (run make venv)"
        walk = lib.mcsite_nbt_walk
    except (OSError, AttributeError) as exc:
        return None, str(exc)
    walk.argtypes = (ctypes.c_char_p, ctypes.c_int64, ctypes.c_int64)
    walk.restype = ctypes.c_int64

    def _walk_native(data: bytes, pos: int, size: int) -> int:
        if type(data) is not bytes:  # c_char_p takes the buffer of bytes as it is, nothing else
            data = bytes(data)
        end = walk(data, pos, size)
        if end >= 0:
            return end
        code, detail = divmod(-end, 256)
        if code == 1:
            raise IndexError  # "NBT data truncated", as from the Python walker
        raise ValueError(_NATIVE_ERRORS[code].format(detail))

    return _walk_native, None


_walk_native, NATIVE_WALKER_ERROR = _load_native_walker()
_walk = _walk_native or _walk_python


def describe_walker() -> str:
    """Which NBT walker runs, for logs and ``make bench``."""
    return "C (native/libnbtwalk.so)" if _walk is _walk_native else f"Python ({NATIVE_WALKER_ERROR})"


def note_walker_fallback() -> None:
    """Log once per process when chunks are walked in Python because the C walker did not load."""
    if _walk is _walk_python and _walk_native is None and not _walker_warned.is_set():
        _walker_warned.set()
        log.warning("Native NBT walker not available (%s); world validation walks NBT in Python "
                    "(slower, same findings)", NATIVE_WALKER_ERROR)


def parse_level_dat(data: bytes) -> dict:
    """{"level_name", "minecraft_version", "data_version"}; raises ValueError when invalid
    (``LimitExceeded`` when it inflates past ``MAX_NBT_BYTES`` or holds too many tags)."""
    try:
        raw = _nbt_bytes(data)
    except (OSError, EOFError, *codecs.ERRORS) as exc:
        raise ValueError(f"gzip data corrupted ({exc})") from None
    try:
        root = _parse_nbt(raw)
    except LimitExceeded:
        raise
    except Exception as exc:  # nbtlib raises assorted errors on bad input
        raise ValueError(f"not valid NBT ({exc.__class__.__name__})") from None
    from nbtlib import Compound

    level = root.get("Data")
    if not isinstance(level, Compound):
        raise ValueError("no Data compound")
    version = level.get("Version")
    name = version.get("Name") if isinstance(version, Compound) else None
    data_version = level.get("DataVersion")
    return {
        "level_name": str(level["LevelName"]) if "LevelName" in level else None,
        "minecraft_version": str(name) if name is not None else None,
        "data_version": int(data_version) if data_version is not None else None,
    }


def check_nbt_file(data: bytes) -> None:
    """Small gzip/plain NBT files (playerdata): raise ValueError if unreadable
    (``LimitExceeded``, with just the limit as its message, past a cap)."""
    try:
        _parse_nbt(_nbt_bytes(data))
    except LimitExceeded:
        raise
    except Exception as exc:
        raise ValueError(f"not valid NBT ({exc.__class__.__name__}: {exc})") from None


_LZ4_HEADER = struct.Struct("<8sBiii")  # magic, token, compressed length, length, checksum
_LZ4_MAGIC = b"LZ4Block"
_LZ4_RAW, _LZ4_LZ4 = 0x10, 0x20
_LZ4_SEED = 0x9747B28C
_LZ4_CHECK_MASK = 0x0FFFFFFF  # lz4-java stores xxHash32 & 0x0FFFFFFF (StreamingXXHash32.asChecksum)


def lz4_block_stream_decompress(payload: bytes, limit: int = MAX_NBT_BYTES) -> bytes:
    """Decode an lz4-java ``LZ4BlockOutputStream`` stream (chunk type 4); ValueError if damaged.

    Blocks of ``b"LZ4Block"``, token (0x10 raw / 0x20 LZ4 | level: length <=
    2**(10 + level)), compressed length, length, checksum (int32 LE), data; an
    empty block ends it. Headers are checked like lz4-java's ``LZ4BlockInputStream``
    and LZ4 data must decode to exactly its length from exactly its bytes. The
    checksum (xxHash32, seed 0x9747b28c, masked) of every block is verified, so a
    flipped byte in literal data is caught even when the NBT still parses.
    Bytes after the end block are damage (the game stores the exact stream length).
    Each block states its decoded length (at most 32 MiB), so the running total
    is checked against ``limit`` before a block is decoded (``LimitExceeded``).
    """
    out, pos, size, total = [], 0, len(payload), 0
    while True:
        if pos + _LZ4_HEADER.size > size:
            raise ValueError(f"LZ4 stream truncated at byte {pos} (no end block)")
        magic, token, packed, length, check = _LZ4_HEADER.unpack_from(payload, pos)
        method = token & 0xF0
        if magic != _LZ4_MAGIC or method not in (_LZ4_RAW, _LZ4_LZ4):
            raise ValueError(f"LZ4 block header at byte {pos} damaged (bad magic or token)")
        if (length < 0 or packed < 0 or length > 1 << (10 + (token & 0x0F)) or (length == 0) != (packed == 0)
                or (method == _LZ4_RAW and length != packed) or not 0 <= check <= _LZ4_CHECK_MASK):
            raise ValueError(f"LZ4 block header at byte {pos} damaged (impossible lengths or checksum)")
        pos += _LZ4_HEADER.size
        if length == 0:
            if check:
                raise ValueError(f"LZ4 end block at byte {pos - _LZ4_HEADER.size} has a checksum")
            break
        if pos + packed > size:
            raise ValueError(f"LZ4 stream truncated inside the block at byte {pos - _LZ4_HEADER.size}")
        total += length
        if total > limit:
            raise _over(limit)
        data = payload[pos:pos + packed]
        if method == _LZ4_LZ4:
            try:
                data = lz4.block.decompress(data, uncompressed_size=length)
            except lz4.block.LZ4BlockError:
                data = b""
            if len(data) != length:  # lz4 accepts a shorter result; lz4-java does not
                raise ValueError(f"LZ4 block at byte {pos - _LZ4_HEADER.size} corrupted")
        if _xxhash.xxh32_intdigest(data, seed=_LZ4_SEED) & _LZ4_CHECK_MASK != check:
            raise ValueError(f"LZ4 block at byte {pos - _LZ4_HEADER.size} fails its checksum")
        out.append(data)
        pos += packed
    if pos != size:
        raise ValueError(f"{size - pos} bytes after the end of the LZ4 stream")
    return b"".join(out)


def _decompress_chunk(kind: int, payload: bytes, limit: int = MAX_NBT_BYTES) -> bytes | None:
    """Decompressed NBT bytes, or None for a type we cannot check (a warning); raises if
    damaged, ``LimitExceeded`` past ``limit``."""
    if kind == 1:
        return _inflate(payload, gzip_wrapped=True, limit=limit)
    if kind == 2:
        return _inflate(payload, gzip_wrapped=False, limit=limit)
    if kind == 3:
        if len(payload) > limit:
            raise LimitExceeded(f"is more than {limit >> 20} MiB of NBT")
        return payload
    if kind == 4:
        return lz4_block_stream_decompress(payload, limit)
    return None


class _Reader:
    """Sequential reads with a position, from any ``read(n)`` stream."""

    def __init__(self, stream):
        self._stream = stream
        self.pos = 0

    def read(self, n: int) -> bytes:
        parts, want = [], n
        while want > 0:
            data = self._stream.read(want)
            if not data:
                break
            parts.append(data)
            want -= len(data)
        out = b"".join(parts)
        self.pos += len(out)
        return out

    def skip_to(self, offset: int) -> None:
        while self.pos < offset:
            if not self.read(min(offset - self.pos, 1 << 20)):
                return


def check_region(name: str, stream, size: int, report) -> int:
    """Validate one region file read from ``stream`` (``size`` bytes).

    ``report`` gets ``error(msg)`` / ``warning(msg)`` / ``external(path)``
    calls; returns the number of chunks checked.
    """
    if size == 0:
        return 0
    reader = _Reader(stream)
    header = reader.read(HEADER_BYTES)
    if len(header) < HEADER_BYTES:
        report.error(f"{name}: region header truncated ({size} bytes, needs {HEADER_BYTES})")
        return 0
    if size % SECTOR:
        report.warning(f"{name}: size {size} is not a multiple of {SECTOR}")
    locations = struct.unpack(">1024I", header[:SECTOR])
    chunks = []
    for index, loc in enumerate(locations):
        if loc == 0:
            continue
        offset, count = loc >> 8, loc & 0xFF
        where = f"{name}: chunk ({index % 32}, {index // 32})"
        if offset < 2:
            report.error(f"{where} overlaps the region header (sector {offset})")
        elif count == 0:
            report.error(f"{where} has a sector count of 0")
        elif offset * SECTOR >= size:
            report.error(f"{where} starts past end of file (sector {offset}, file has {size // SECTOR})")
        else:
            chunks.append((offset, count, index, where))
    chunks.sort()
    checked = 0
    end_of_previous = 2
    for offset, count, index, where in chunks:
        if offset < end_of_previous:
            report.error(f"{where} overlaps another chunk (sector {offset})")
            continue
        end_of_previous = offset + count
        reader.skip_to(offset * SECTOR)
        head = reader.read(5)
        if len(head) < 5:
            report.error(f"{where} starts past end of file")
            continue
        length, kind = struct.unpack(">IB", head)
        if length < 1 or length + 4 > count * SECTOR:
            report.error(f"{where} length field {length} does not fit its {count} sector(s)")
            continue
        if offset * SECTOR + 4 + length > size:
            report.error(f"{where} extends past end of file")
            continue
        payload = reader.read(length - 1)
        if len(payload) < length - 1:
            report.error(f"{where} extends past end of file")
            continue
        checked += 1
        _check_chunk(where, kind, payload, name, index, report)
    reader.skip_to(size)
    return checked


def _check_chunk(where: str, kind: int, payload: bytes, name: str, index: int, report) -> None:
    if kind & 0x80:
        # Oversized chunk: the data lives in c.<x>.<z>.mcc beside the region file.
        rx, rz = _region_coords(name)
        if rx is not None:
            mcc = posixpath.join(posixpath.dirname(name), f"c.{rx * 32 + index % 32}.{rz * 32 + index // 32}.mcc")
            report.external(mcc, kind & 0x7F, where)
        return
    if kind == 127:
        # Custom (named) compression from a mod: we cannot decode it, so warn, never fail.
        report.warning(f"{where} uses custom compression ({kind}); "
                       f"payload not checked (unsupported compression {kind})")
        return
    if kind not in (1, 2, 3, 4):
        report.error(f"{where} has unknown compression type {kind}")
        return
    try:
        raw = _decompress_chunk(kind, payload)
    except LimitExceeded as exc:
        report.error(f"{where} {exc}")
        return
    except (OSError, *codecs.ERRORS, EOFError, ValueError) as exc:
        report.error(f"{where} does not decompress ({exc})")
        return
    try:
        check_nbt_structure(raw)
    except ValueError as exc:
        report.error(f"{where} is not valid NBT ({exc})")


def _region_coords(name: str):
    parts = posixpath.basename(name).split(".")
    try:
        return int(parts[1]), int(parts[2])
    except (IndexError, ValueError):
        return None, None


def check_external_chunk(name: str, stream, size: int, kind: int | None, report) -> None:
    """Check a ``.mcc`` file: decompress and parse when small enough.

    ``.mcc`` files sort before the region file naming their type, so with
    ``kind=None`` the compression is recognised by its first bytes.
    """
    if size > _MAX_MCC_BYTES:
        report.warning(f"{name}: external chunk of {size} bytes not parsed (over {_MAX_MCC_BYTES})")
        _Reader(stream).skip_to(size)
        return
    data = _Reader(stream).read(size)
    if kind is None:
        kind = (1 if data[:2] == b"\x1f\x8b" else 2 if data[:1] == b"\x78"
                else 4 if data[:8] == _LZ4_MAGIC else 3)
    try:
        raw = _decompress_chunk(kind, data, MAX_EXTERNAL_CHUNK_BYTES)
    except LimitExceeded as exc:
        report.error(f"{name}: external chunk {exc}")
        return
    except (OSError, *codecs.ERRORS, EOFError, ValueError) as exc:
        report.error(f"{name}: external chunk does not decompress ({exc})")
        return
    if raw is None:
        report.warning(f"{name}: unsupported compression {kind}; not checked")
        return
    try:
        check_nbt_structure(raw)
    except ValueError as exc:
        report.error(f"{name}: external chunk is not valid NBT ({exc})")
