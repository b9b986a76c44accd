"""Which deflate the engine runs: native libraries when they import, zlib otherwise.

Every gzip byte the engine writes or reads, and every zlib/gzip chunk of a
world it validates, goes through here:

* deflate at levels 2-9: zlib-ng (``zlib-ng``), about 2x zlib's speed at the
  same level with output within about 1.5 % of zlib's either way (measured on
  worlds, logs, JSON and Python source: docs/benchmarks.md); except for blocks
  where a probe shows that ISA-L's level 2 gives output within 0.5 % of the
  level's own (``DeflatePlan``): data already compressed, such as region files,
  where a thorough search finds nothing more and ISA-L runs 4-5x faster;
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
# Adaptive deflate (DeflatePlan): ISA-L at ADAPT_LEVEL for blocks where it is as good.
ADAPTIVE = _ISAL is not None
ADAPT_LEVEL = 2  # on region files as fast as ISA-L's level 1 and 0.03 % smaller
PROBE_EVERY = 8  # blocks (4 MiB of 512 KiB blocks) from one probe to the next
PROBE_MARGIN = 0.005  # the fast output may be this much larger than the level's and still be used
PROBE_SHIFT = 0.05  # a fast block whose ratio moves this far from the probe's is probed itself
# What an inflate can raise on damaged data, whichever library runs it.
ERRORS = tuple({zlib.error, *(m.error for m in (_ISAL, _NG) if m is not None)})

_warned = threading.Event()


def _name(module) -> str:
    return {id(_ISAL): "ISA-L (isal)", id(_NG): "zlib-ng"}.get(id(module), "zlib")


def describe() -> dict:
    """The implementation behind each job, for logs, ``make bench`` and tests."""
    return {"deflate": _name(DEFLATE), "fast_deflate": _name(FAST_DEFLATE), "inflate": _name(INFLATE),
            "adaptive": f"ISA-L level {ADAPT_LEVEL} where within {PROBE_MARGIN:.1%}" if ADAPTIVE else "off",
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


def _deflate(module, level: int, block, zdict: bytes | None, last: bool) -> bytes:
    if zdict:
        comp = module.compressobj(level, module.DEFLATED, -15, 8, module.Z_DEFAULT_STRATEGY, zdict)
    else:
        comp = module.compressobj(level, module.DEFLATED, -15)
    return comp.compress(block) + comp.flush(module.Z_FINISH if last else module.Z_SYNC_FLUSH)


def deflate_block(block: bytes, zdict: bytes | None, level: int, last: bool) -> bytes:
    """One pigz-style block: raw deflate primed with ``zdict``, ended with a sync
    flush (byte-aligned, not final) or, for the ``last`` block, the final block."""
    return _deflate(deflate_module(level), level, block, zdict, last)


class DeflatePlan:
    """Which deflate each block of one gzip stream gets, learnt from the data.

    Most of a world is region files: chunks the game already compressed, where
    deflate at level 6 searches hard and finds no more than ISA-L's level 2 does
    in a fifth of the time. Every ``PROBE_EVERY`` blocks one block is deflated
    both ways (the smaller output is kept); the blocks after it get ISA-L where
    its output was within ``PROBE_MARGIN`` of the level's, the level otherwise. A
    fast block whose compression ratio moves more than ``PROBE_SHIFT`` from the
    probe's (the stream went from a region file to a log, say) is probed itself,
    so text never waits for the next probe to get the level; data that turns
    fast-worthy does (at most ``PROBE_EVERY`` blocks at the level: lost time,
    never size). Every block sent before the first probe's answer came back is
    a probe too. Every choice is ordinary deflate continuing from the same 32 KiB dictionary,
    so the stream stays one standard gzip member. The fast level (1) and a
    missing ISA-L turn the plan off: every block at the level, by its library.

    ``next()`` gives the task arguments for the next block, in stream order;
    ``learn()`` takes each block's note back, also in stream order (the writer
    keeps blocks in flight, so what a probe learns applies a few blocks later).
    """

    def __init__(self, level: int):
        self.level = level
        self.adaptive = ADAPTIVE and level != FAST_LEVEL
        self.blocks = 0
        self.fast_blocks = 0
        self._fast = None  # unknown until the first probe comes back
        self._ratio = 0.0  # the ratio the last probe saw with the fast deflate
        self._since_probe = 0

    def next(self) -> tuple[str, float]:
        """(mode, the fast ratio the last probe saw) for ``deflate_planned``."""
        if not self.adaptive:
            return "level", 0.0
        if self._fast is None or self._since_probe >= PROBE_EVERY:
            self._since_probe = 1
            return "probe", 0.0
        self._since_probe += 1
        return ("fast" if self._fast else "level"), self._ratio

    def learn(self, note: tuple) -> None:
        used_fast, probed = note
        self.blocks += 1
        self.fast_blocks += used_fast or (self.level == FAST_LEVEL)
        if probed is not None:
            self._fast, self._ratio = probed

    def stats(self) -> dict:
        return {"blocks": self.blocks, "fast": self.fast_blocks}


def deflate_planned(block, zdict: bytes | None, level: int, last: bool, mode: str, ratio: float):
    """Deflate one block as ``DeflatePlan.next()`` said; returns (bytes, note for ``learn``)."""
    if mode == "level":
        return deflate_block(block, zdict, level, last), (False, None)
    size = max(1, len(block))
    fast = _deflate(_ISAL, ADAPT_LEVEL, block, zdict, last)
    if mode == "fast" and abs(len(fast) / size - ratio) <= PROBE_SHIFT:
        return fast, (True, None)
    thorough = deflate_block(block, zdict, level, last)
    fast_ok = len(fast) <= len(thorough) * (1 + PROBE_MARGIN)
    learnt = (fast_ok, len(fast) / size)
    if len(fast) <= len(thorough):
        return fast, (True, learnt)
    return thorough, (False, learnt)


def decompressobj(wbits: int):
    """An inflater with zlib's API (``decompress(data, max_length)``, ``eof``,
    ``unused_data``, ``unconsumed_tail``); its errors are in ``ERRORS``."""
    _note_fallback()
    return INFLATE.decompressobj(wbits)


def crc32(data, value: int = 0) -> int:
    return INFLATE.crc32(data, value)
