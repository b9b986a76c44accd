"""Which deflate the engine runs: native libraries when they import, zlib otherwise.

Every gzip byte the engine writes or reads, and every zlib/gzip chunk of a
world it validates, goes through here:

* deflate at levels 2-9: zlib-ng (``zlib-ng``), about 2x zlib's speed at the
  same level with output within about 1.5 % of zlib's either way (measured on
  worlds, logs, JSON and Python source: docs/benchmarks.md);
* deflate at level 1, the "fast" level: ISA-L (``isal``) level 1, about 10x
  zlib's speed; on region files (already compressed chunks) its output is
  within 0.1 % of ``gzip -6``, on text it is 10-60 % larger;
* inflate and CRC-32: ISA-L, else zlib-ng, else zlib.

All three produce and read standard deflate, so a file written by one is read
by any other (``gzip -t``, ``tar -xzf``, Python's ``gzip``), and backups made
before these libraries were added read exactly as before. If a library is
missing or fails to import, the engine uses what is left down to the standard
``zlib`` and says so once in the log (``backups.engine``).
"""
from __future__ import annotations

import logging
import threading
import zlib

log = logging.getLogger("backups.engine")


def _import(name: str):
    try:
        if name == "isal":
            from isal import isal_zlib as module
        else:
            from zlib_ng import zlib_ng as module
        return module, None
    except Exception as exc:  # ImportError, or a broken native build
        return None, f"{exc.__class__.__name__}: {exc}"


_ISAL, _ISAL_ERROR = _import("isal")
_NG, _NG_ERROR = _import("zlib_ng")

INFLATE = _ISAL or _NG or zlib
DEFLATE = _NG or zlib
FAST_DEFLATE = _ISAL or _NG or zlib
FAST_LEVEL = 1
# What an inflate can raise on damaged data, whichever library runs it.
ERRORS = tuple({zlib.error, *(m.error for m in (_ISAL, _NG) if m is not None)})

_warned = threading.Event()


def _name(module) -> str:
    return {id(_ISAL): "ISA-L (isal)", id(_NG): "zlib-ng"}.get(id(module), "zlib")


def describe() -> dict:
    """The implementation behind each job, for logs, ``make bench`` and tests."""
    return {"deflate": _name(DEFLATE), "fast_deflate": _name(FAST_DEFLATE), "inflate": _name(INFLATE),
            "missing": {name: error for name, error in (("isal", _ISAL_ERROR), ("zlib-ng", _NG_ERROR)) if error}}


def _note_fallback() -> None:
    """Log once per process which native library is missing and what runs instead."""
    if _warned.is_set() or (_ISAL is not None and _NG is not None):
        return
    _warned.set()
    info = describe()
    log.warning("Native deflate library not available (%s); the engine falls back to %s for deflate and %s "
                "for inflate (slower, same files)",
                "; ".join(f"{name}: {error}" for name, error in info["missing"].items()),
                info["deflate"], info["inflate"])


def deflate_module(level: int):
    """The library that compresses at ``level`` (1 = the fast level)."""
    _note_fallback()
    return FAST_DEFLATE if level == FAST_LEVEL else DEFLATE


def compressobj(level: int, wbits: int, zdict: bytes | None = None):
    module = deflate_module(level)
    if zdict:
        return module.compressobj(level, module.DEFLATED, wbits, 8, module.Z_DEFAULT_STRATEGY, zdict)
    return module.compressobj(level, module.DEFLATED, wbits)


def deflate_block(block: bytes, zdict: bytes | None, level: int, last: bool) -> bytes:
    """One pigz-style block: raw deflate primed with ``zdict``, ended with a sync
    flush (byte-aligned, not final) or, for the ``last`` block, the final block."""
    comp = compressobj(level, -15, zdict)
    module = deflate_module(level)
    return comp.compress(block) + comp.flush(module.Z_FINISH if last else module.Z_SYNC_FLUSH)


def decompressobj(wbits: int):
    """An inflater with zlib's API (``decompress(data, max_length)``, ``eof``,
    ``unused_data``, ``unconsumed_tail``); its errors are in ``ERRORS``."""
    _note_fallback()
    return INFLATE.decompressobj(wbits)


def crc32(data, value: int = 0) -> int:
    return INFLATE.crc32(data, value)
