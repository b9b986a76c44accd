"""Helper processes that check region files, so world validation uses every core
even where the C NBT walker (``native/libnbtwalk.so``) could not be built.

Checking a chunk is inflating it (native code, no GIL) and walking its NBT:
in C without the GIL, or else in Python, holding the GIL. In threads the
Python walks of all chunks take turns on one core; a large world's
verification then waits on that core. So once a verification has read
``worldcheck.PROCESS_AFTER_BYTES`` of region files, ``WorldCheck`` hands
whole region files to these helpers instead:

    python -c <_BOOT> <folder holding backups/>

reads requests from stdin — a 12-byte header (name length, data length:
``>IQ``), the name (UTF-8, surrogateescape) and the region file's bytes —
checks each with the same ``world.check_region`` as a thread would, and
answers on stdout with an 8-byte length and a JSON object: ``{"chunks": n,
"events": [[kind, payload], ...]}``. It exits when stdin ends, so a helper
never outlives the process that started it (a killed worker closes the pipe).
A helper holds one region file (at most 64 MiB) and one inflated chunk, and
inherits its parent's CPU and I/O priority.
"""
from __future__ import annotations

import json
import logging
import queue
import struct
import subprocess
import sys
import threading
from pathlib import Path

_HEADER = struct.Struct(">IQ")
_REPLY = struct.Struct(">Q")
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # the folder holding backups/
# A helper imports world.py and what it needs, not the package's __init__ (archives,
# encryption, zstd: ~20 MB it would never use): the two packages are made empty here.
_BOOT = """
import sys, types
root = sys.argv[1]
for name, folder in (("backups", root + "/backups"), ("backups.engine", root + "/backups/engine")):
    package = types.ModuleType(name)
    package.__path__ = [folder]
    sys.modules[name] = package
from backups.engine.regionworker import main
main()
"""
log = logging.getLogger("backups.engine")


def _read_exact(stream, size: int) -> bytes:
    """Exactly ``size`` bytes of a buffered stream: one ``read``, which fills a single
    bytes object of that size (no joined parts, so no second copy of a region file)."""
    data = stream.read(size)
    if len(data) != size:
        raise EOFError("stream ended early")
    return data


def serve(inp, out) -> None:
    """The helper's loop: one region file in, its findings out, until ``inp`` ends."""
    from .worldcheck import check_region_blob

    while True:
        head = inp.read(_HEADER.size)
        if len(head) < _HEADER.size:
            return
        name_length, size = _HEADER.unpack(head)
        name = _read_exact(inp, name_length).decode("utf-8", "surrogateescape")
        findings = check_region_blob(name, _read_exact(inp, size))
        body = json.dumps({"chunks": findings.chunks, "events": findings.events}).encode()
        out.write(_REPLY.pack(len(body)) + body)
        out.flush()


class HelperFailed(Exception):
    """A helper process could not be started or stopped answering."""


class RegionHelpers:
    """``count`` helper processes; ``check(name, data)`` is safe to call from
    ``count`` threads at once (each takes an idle helper for one region file)."""

    def __init__(self, count: int):
        self._idle: queue.Queue = queue.Queue()
        self._all: list = []
        self._lock = threading.Lock()
        try:
            for _ in range(count):
                proc = subprocess.Popen([sys.executable, "-c", _BOOT, _PACKAGE_ROOT],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True)
                self._all.append(proc)
                self._idle.put(proc)
        except OSError as exc:
            self.close()
            raise HelperFailed(f"could not start a region helper: {exc}") from exc

    def check(self, name: str, data: bytes) -> dict:
        proc = self._idle.get()
        try:
            encoded = name.encode("utf-8", "surrogateescape")
            proc.stdin.write(_HEADER.pack(len(encoded), len(data)) + encoded)
            proc.stdin.write(data)
            proc.stdin.flush()
            (length,) = _REPLY.unpack(_read_exact(proc.stdout, _REPLY.size))
            reply = json.loads(_read_exact(proc.stdout, length))
        except (OSError, EOFError, ValueError, struct.error) as exc:
            proc.kill()
            raise HelperFailed(f"region helper {proc.pid} stopped answering ({exc})") from exc
        finally:
            # Back even when dead: a thread waiting for a helper then fails at once and
            # checks in-thread, rather than waiting for a helper that will never come.
            self._idle.put(proc)
        return reply

    def close(self) -> None:
        """Stop every helper: end its input, give it a moment, then kill it."""
        with self._lock:
            procs, self._all = self._all, []
        for proc in procs:
            try:
                proc.stdin.close()
            except OSError:
                pass
        for proc in procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            proc.stdout.close()


def main() -> None:
    try:
        serve(sys.stdin.buffer, sys.stdout.buffer)
    except (BrokenPipeError, EOFError, KeyboardInterrupt):
        pass  # the verifying process went away: nothing to answer to


if __name__ == "__main__":
    main()
