"""Small files that expand to GiBs, built without ever holding the expansion.

* deflate/zlib/gzip of N MiB of zeros: one 1 MiB block compressed after a
  Z_FULL_FLUSH is the same bytes every time, so the stream is that block
  repeated (about 1 KB per MiB); the gzip CRC-32 of N zero bytes is computed
  with zlib's crc32_combine matrix trick, the Adler-32 in closed form.
* lz4-java (Minecraft type 4) streams of 32 MiB zero blocks (the largest the
  framing allows), each about 128 KB.
* zstd frames of run-length blocks: 128 KiB of one byte costs 4 bytes, so a
  1 GiB tar header fits in 32 KB of ``.tar.zst``.
* hand-made tar streams whose headers lie (GNU long names, PAX records,
  sparse maps), for what Python's tarfile would otherwise read whole.
"""
from __future__ import annotations

import struct
import tarfile
import zlib

import lz4.block
import xxhash
import zstandard

from . import regions

MiB = 1 << 20
GiB = 1 << 30
_ZERO_MIB = bytes(MiB)


# --- deflate family ------------------------------------------------------------------------------

def deflate_zeros(mib: int) -> bytes:
    """Raw deflate of ``mib`` MiB of zeros (~1 KB per MiB)."""
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = comp.compress(_ZERO_MIB) + comp.flush(zlib.Z_FULL_FLUSH)
    return block * mib + comp.flush(zlib.Z_FINISH)


def _gf2_times(mat: list, vec: int) -> int:
    out, i = 0, 0
    while vec:
        if vec & 1:
            out ^= mat[i]
        vec >>= 1
        i += 1
    return out


def _gf2_square(mat: list) -> list:
    return [_gf2_times(mat, mat[n]) for n in range(32)]


def crc32_of_zeros(length: int) -> int:
    """zlib.crc32(bytes(length)) without the bytes (zlib's crc32_combine, crc2 = 0)."""
    odd = [0xEDB88320] + [1 << n for n in range(31)]  # the operator for one zero bit
    even = _gf2_square(odd)  # two zero bits
    odd = _gf2_square(even)  # four
    crc = 0xFFFFFFFF  # crc32's preset; the final xor is undone below
    while length:
        even = _gf2_square(odd)  # apply a zero byte operator per set bit of length
        if length & 1:
            crc = _gf2_times(even, crc)
        length >>= 1
        if not length:
            break
        odd = _gf2_square(even)
        if length & 1:
            crc = _gf2_times(odd, crc)
        length >>= 1
    return crc ^ 0xFFFFFFFF


def zlib_zeros(mib: int) -> bytes:
    """A zlib stream (Minecraft chunk type 2) of ``mib`` MiB of zeros."""
    size = mib * MiB
    adler = ((size % 65521) << 16) | 1
    return b"\x78\xda" + deflate_zeros(mib) + struct.pack(">I", adler)


def gzip_zeros(mib: int) -> bytes:
    """A valid gzip member (level.dat, chunk type 1) of ``mib`` MiB of zeros."""
    size = mib * MiB
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03"
    return header + deflate_zeros(mib) + struct.pack("<II", crc32_of_zeros(size), size & 0xFFFFFFFF)


# --- lz4-java ------------------------------------------------------------------------------------

_LZ4_BLOCK = 32 * MiB  # token level 15: 2 ** (10 + 15)


def lz4_java_zeros(blocks: int) -> bytes:
    """Minecraft's type-4 framing: ``blocks`` LZ4 blocks of 32 MiB of zeros each, valid checksums."""
    zeros = bytes(_LZ4_BLOCK)
    packed = lz4.block.compress(zeros, store_size=False)
    check = xxhash.xxh32_intdigest(zeros, seed=regions.LZ4_SEED) & 0x0FFFFFFF
    one = b"LZ4Block" + struct.pack("<Biii", 0x20 | 15, len(packed), _LZ4_BLOCK, check) + packed
    return one * blocks + b"LZ4Block" + struct.pack("<Biii", 0x10 | 15, 0, 0, 0)


def region_with(kind: int, payload: bytes) -> bytes:
    """A region file holding one chunk (index 0)."""
    return regions.region({0: (kind, payload)})


# --- zstd ----------------------------------------------------------------------------------------

_RLE_BLOCK = 128 * 1024


def zstd_frame(data: bytes) -> bytes:
    return zstandard.ZstdCompressor(level=3).compress(data)


def zstd_run(byte: int, count: int) -> bytes:
    """A zstd frame of ``count`` copies of ``byte`` (RLE blocks; count a multiple of 128 KiB)."""
    assert count % _RLE_BLOCK == 0 and count
    blocks = count // _RLE_BLOCK
    out = bytearray(b"\x28\xb5\x2f\xfd\x00\x38")  # no checksum, 128 KiB window
    for i in range(blocks):
        head = (i == blocks - 1) | (1 << 1) | (_RLE_BLOCK << 3)
        out += head.to_bytes(3, "little") + bytes([byte])
    return bytes(out)


def zstd_parts(parts) -> bytes:
    """Concatenated zstd frames: bytes are compressed, ``(byte, count)`` become RLE runs."""
    return b"".join(zstd_frame(p) if isinstance(p, (bytes, bytearray)) else zstd_run(*p) for p in parts)


# --- tar -----------------------------------------------------------------------------------------

END_OF_ARCHIVE = bytes(2 * tarfile.BLOCKSIZE)


def header(name: str, *, size: int = 0, type: bytes = tarfile.REGTYPE, linkname: str = "",
           fmt=tarfile.GNU_FORMAT) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.type, info.linkname, info.mode, info.mtime = size, type, linkname, 0o644, 1_700_000_000
    return info.tobuf(fmt, "utf-8", "surrogateescape")


def member(name: str, data: bytes = b"data") -> bytes:
    """A regular file member: header, data, padding."""
    pad = -len(data) % tarfile.BLOCKSIZE
    return header(name, size=len(data)) + data + bytes(pad)


def pax_record(keyword: str, value: bytes) -> bytes:
    """One PAX record ``"<len> <keyword>=<value>\\n"``, its length counting itself."""
    body = b" " + keyword.encode() + b"=" + value + b"\n"
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length += 1
    return str(length).encode() + body


def gnu_long_name_zst(size: int = GiB, link: bool = False) -> bytes:
    """A ``.tar.zst`` whose first member's GNU long name (or long link) is ``size`` bytes of 'a'."""
    kind = tarfile.GNUTYPE_LONGLINK if link else tarfile.GNUTYPE_LONGNAME
    return zstd_parts([header("././@LongLink", size=size, type=kind), (ord("a"), size),
                       member("x.txt") + END_OF_ARCHIVE])


def pax_bomb_zst(size: int = GiB, global_header: bool = False) -> bytes:
    """A ``.tar.zst`` whose first PAX header is one ``size``-byte ``comment`` record."""
    record_head = f"{size} comment=".encode()
    head = record_head + b"a" * (_RLE_BLOCK - len(record_head))
    kind = tarfile.XGLTYPE if global_header else tarfile.XHDTYPE
    return zstd_parts([header("././@PaxHeader", size=size, type=kind, fmt=tarfile.USTAR_FORMAT) + head,
                       (ord("a"), size - 2 * _RLE_BLOCK), b"a" * (_RLE_BLOCK - 1) + b"\n",
                       member("x.txt") + END_OF_ARCHIVE])


def many_global_pax_headers_zst(count: int, each: int = MiB) -> bytes:
    """``count`` members, each after a global PAX header holding one ``each``-byte record
    with a new keyword: tarfile merges every one into the archive's global header dict."""
    parts = []
    for n in range(count):
        keyword = f"mcsite.k{n:06d}".encode()
        record_head = f"{each} ".encode() + keyword + b"="
        parts += [header(f"././@PaxHeader{n}", size=each, type=tarfile.XGLTYPE, fmt=tarfile.USTAR_FORMAT)
                  + record_head + b"a" * (_RLE_BLOCK - len(record_head)),
                  (ord("a"), each - 2 * _RLE_BLOCK), b"a" * (_RLE_BLOCK - 1) + b"\n" + member(f"f{n}.txt")]
    parts.append(END_OF_ARCHIVE)
    return zstd_parts(parts)


def many_members_zst(count: int) -> bytes:
    """A ``.tar.zst`` of ``count`` empty files ``f0000000``... (headers patched from one template)."""
    template = bytearray(header("f0000000", fmt=tarfile.USTAR_FORMAT))
    template[148:156] = b" " * 8
    base = sum(template) - sum(b"f0000000")
    out = bytearray()
    for n in range(count):
        name = b"f%07d" % n
        template[0:8] = name
        template[148:156] = b"%06o\0 " % (base + sum(name))
        out += template
    return zstd_frame(bytes(out + END_OF_ARCHIVE))


def old_gnu_sparse_bomb_zst(size: int = 256 * MiB) -> bytes:
    """An old-GNU sparse member followed by ``size`` bytes of extension blocks, each saying
    another follows and holding 21 (offset, length) entries tarfile collects in a list."""
    head = bytearray(header("sparse.bin", size=0, type=tarfile.GNUTYPE_SPARSE))
    head[482] = 1
    head[148:156] = b" " * 8
    head[148:156] = b"%06o\0 " % sum(head)
    entry = b"%011o\0" % 4096 + b"%011o\0" % 512
    block = entry * 21 + b"\x01" + bytes(7)
    assert len(block) == tarfile.BLOCKSIZE
    comp = zstandard.ZstdCompressor(level=1).compressobj()
    run = block * (MiB // tarfile.BLOCKSIZE)
    body = [comp.compress(bytes(head))] + [comp.compress(run) for _ in range(size // MiB)]
    return b"".join(body) + comp.flush()


def gnu_sparse_1_0_bomb_zst(size: int = 256 * MiB) -> bytes:
    """A GNU 1.0 sparse member whose map (read from the member's data) claims 10**9 entries
    and goes on for ``size`` bytes of ``1\\n``: tarfile appends each number to a list."""
    pax = pax_record("GNU.sparse.major", b"1") + pax_record("GNU.sparse.minor", b"0") \
        + pax_record("GNU.sparse.name", b"sparse.bin") + pax_record("GNU.sparse.realsize", b"1")
    pax_member = header("././@PaxHeader", size=len(pax), type=tarfile.XHDTYPE, fmt=tarfile.USTAR_FORMAT) \
        + pax + bytes(-len(pax) % tarfile.BLOCKSIZE)
    comp = zstandard.ZstdCompressor(level=1).compressobj()
    body = [comp.compress(pax_member + header("GNUSparseFile.0/sparse.bin", size=size) + b"1000000000\n")]
    run = b"1\n" * (MiB // 2)
    body += [comp.compress(run) for _ in range(size // MiB)]
    return b"".join(body) + comp.flush()


def deep_names_zst(count: int, depth: int) -> bytes:
    """A ``.tar.zst`` of ``count`` files ``x00000/a/a/.../a/f`` (``depth`` folders each, every
    member under a folder of its own): a few KB, but ``count * depth`` distinct folders."""
    out = bytearray()
    for n in range(count):
        out += member(f"x{n:05d}/" + "a/" * depth + "f", b"")
    return zstd_frame(bytes(out + END_OF_ARCHIVE))
