"""The game host comes first: backups run at lower CPU and I/O priority, on fewer threads.

* ``background(nice, io)``: lower the calling process's CPU priority (nice)
  and I/O priority (Linux ``ioprio``: ``idle``, ``best-effort:0``-``7``, or
  ``none`` to leave it). The worker calls it once at start (``mcsite.celery``);
  every pool process and thread it starts inherits it. Lowering needs no
  privilege; raising back would, which is why this is applied to a whole
  worker process and never to a web request. I/O priority is honoured by the
  BFQ (and old CFQ) disk schedulers; with ``mq-deadline`` or ``none`` it has
  no effect, and nice still does.
* ``set_thread_cap(n)``: at most ``n`` threads compress (gzip/bzip2/xz pools,
  libzstd's workers) or check world chunks per operation; 0 means one per
  core (``default_threads``).
"""
from __future__ import annotations

import logging
import os
import re

log = logging.getLogger("backups.engine")

IO_CHOICES = ("idle", "best-effort:0..7", "none")
_IO = re.compile(r"^(idle|none|best-effort:([0-7]))$")
_thread_cap = 0


def check_io(value: str) -> str:
    """``value`` normalised, or ValueError naming the choices."""
    text = (value or "").strip().lower()
    if not _IO.match(text):
        raise ValueError(f"{value!r} is not an I/O priority; use one of {', '.join(IO_CHOICES)}")
    return text


def check_nice(value: int) -> int:
    if not isinstance(value, int) or not 0 <= value <= 19:
        raise ValueError(f"{value!r} is not a niceness from 0 to 19")
    return value


def background(nice: int, io: str) -> dict:
    """Lower this process to ``nice`` and I/O class ``io``; never raises it.

    Returns what is now in force ({"nice", "io"}); a step the system refuses
    (no ioprio on this platform, a container that forbids it) is logged, not raised.
    """
    check_nice(nice)
    io = check_io(io)
    applied = {"nice": None, "io": None}
    try:
        current = os.getpriority(os.PRIO_PROCESS, 0)
        if nice > current:
            os.setpriority(os.PRIO_PROCESS, 0, nice)
        applied["nice"] = os.getpriority(os.PRIO_PROCESS, 0)
    except (AttributeError, OSError) as exc:
        log.warning("Could not lower the CPU priority of backups to nice %s: %s", nice, exc)
    if io != "none":
        try:
            import psutil

            process = psutil.Process()
            if io == "idle":
                process.ionice(psutil.IOPRIO_CLASS_IDLE)
            else:
                process.ionice(psutil.IOPRIO_CLASS_BE, int(io.split(":")[1]))
            klass, value = process.ionice()
            applied["io"] = "idle" if klass == psutil.IOPRIO_CLASS_IDLE else f"best-effort:{value}"
        except (AttributeError, OSError, psutil.Error) as exc:
            log.warning("Could not lower the I/O priority of backups to %s: %s", io, exc)
    return applied


def set_thread_cap(threads: int) -> None:
    """At most ``threads`` worker threads per operation (0: one per core)."""
    global _thread_cap
    if not isinstance(threads, int) or threads < 0:
        raise ValueError(f"{threads!r} is not a thread count (0 = one per core)")
    _thread_cap = threads


def cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """Threads an operation uses unless told otherwise: one per core, capped by ``set_thread_cap``."""
    return min(cores(), _thread_cap) if _thread_cap else cores()
