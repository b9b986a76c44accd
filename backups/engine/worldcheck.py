"""World validation while an archive streams by (used by verify).

Region files are the bulk of a world and checking them means inflating every
chunk (~5x the bytes of the archive itself). So each region file up to
``_BUFFERED_REGION_LIMIT`` is read whole (through the member hasher, in
archive order) and checked on a small thread pool while the main thread reads
on: zlib and lz4 release the GIL, so chunk inflation overlaps with the archive's
own decompression and hashing. At most ``2 * threads`` region files, and at
most ``_MAX_BUFFERED_BYTES`` of them, are in flight, so memory stays bounded
whatever the archive holds (each worker also inflates at most one chunk,
``world.MAX_NBT_BYTES``). Findings are merged in archive order, so reports
are deterministic. Larger region files are checked inline, streaming.

The NBT walk is C (``native/nbtwalk.c``, no GIL either), so the threads
use every core. Without it the walks are Python and take turns on one core:
then, once ``PROCESS_AFTER_BYTES`` of region files have gone by (a large
world: small ones never pay for starting a process), the pool's threads hand
each region file to a helper process (``regionworker.py``) and wait for its
findings; if a helper cannot start or dies, that region file is checked in
the thread after all, and the log says so once. (With the C walker helpers
were measured no faster than threads, and they cost ~24 MiB each.)
"""
from __future__ import annotations

import collections
import io
import logging
import posixpath
import threading
from concurrent.futures import ThreadPoolExecutor

from . import world
from .priority import default_threads
from .regionworker import HelperFailed, RegionHelpers

_SMALL_FILE_LIMIT = 64 * 1024 * 1024  # level.dat / playerdata are read whole below this
_BUFFERED_REGION_LIMIT = 64 * 1024 * 1024
_MAX_BUFFERED_BYTES = 256 * 1024 * 1024  # region files read ahead for the pool, all together
_MAX_LISTED = 200
# None: never use helper processes (the default while the C walker runs: threads do as well)
PROCESS_AFTER_BYTES = None if world.NATIVE_WALKER_ERROR is None else 64 * 1024 * 1024
log = logging.getLogger("backups.engine")


class _Findings:
    """What one region check found, replayed into the report in archive order."""

    def __init__(self):
        self.events: list = []
        self.chunks = 0

    def error(self, message: str) -> None:
        self.events.append(("error", message))

    def warning(self, message: str) -> None:
        self.events.append(("warning", message))

    def external(self, path: str, kind: int, where: str) -> None:
        self.events.append(("external", (path, where)))


def check_region_blob(name: str, data: bytes) -> _Findings:
    findings = _Findings()
    findings.chunks = world.check_region(name, io.BytesIO(data), len(data), findings)
    return findings


_check_region_blob = check_region_blob  # what a pool thread runs without helpers (tests replace it)


class WorldCheck:
    """Collects world findings into a ``MethodResult`` while members stream by."""

    def __init__(self, result, threads: int | None = None):
        self.result = result
        self.worlds: list = []
        self.region_files = 0
        self.bad_files: set = set()
        self.chunks = 0
        self.external_needed: dict = {}
        self.external_seen: set = set()
        self._current = ""
        threads = threads or default_threads()
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="mcsite-world") if threads > 1 else None
        self._pending: collections.deque = collections.deque()  # (name, future, size)
        self._pending_bytes = 0
        self._max_pending = 2 * threads
        self._threads = threads
        self._region_bytes = 0
        self._helpers: RegionHelpers | None = None
        self._helpers_failed = threading.Event()
        world.note_walker_fallback()

    # report interface for world.check_region
    def error(self, message: str) -> None:
        self.bad_files.add(self._current)
        self.result.error(message)

    def warning(self, message: str) -> None:
        self.result.warning(message)

    def external(self, path: str, kind: int, where: str) -> None:
        self.external_needed[path] = where

    def wants(self, name: str) -> bool:
        return (world.is_level_dat(name) or world.is_region_file(name) or world.is_external_chunk(name)
                or world.is_player_data(name))

    def check(self, name: str, stream, size: int) -> None:
        """Check one member; ``stream`` must be read in order (it feeds the member hash)."""
        if world.is_region_file(name):
            self.region_files += 1
            if self._pool is not None and size <= _BUFFERED_REGION_LIMIT:
                # Make room first, so the buffered total never exceeds the budget.
                while self._pending and (len(self._pending) >= self._max_pending
                                         or self._pending_bytes + size > _MAX_BUFFERED_BYTES):
                    self._merge_oldest()
                data = stream.read(size)
                self._region_bytes += size
                if self._use_helpers():
                    # A helper checks one file at a time: one more waiting each is enough.
                    self._max_pending = self._threads + 1
                job = self._in_helper if self._helpers is not None else _check_region_blob
                self._pending.append((name, self._pool.submit(job, name, data), size))
                self._pending_bytes += size
            else:
                self._current = name
                self.chunks += world.check_region(name, stream, size, self)
            return
        self._current = name
        if world.is_external_chunk(name):
            self.external_seen.add(name)
            world.check_external_chunk(name, stream, size, None, self)
            return
        if size > _SMALL_FILE_LIMIT:
            self.warning(f"{name}: {size} bytes, too large to parse; not checked")
            return
        data = stream.read(size)
        if world.is_level_dat(name):
            try:
                info = world.parse_level_dat(data)
            except (ValueError, OSError, EOFError) as exc:
                self.error(f"{name}: level.dat invalid: {exc}")
                return
            self.worlds.append({"path": posixpath.dirname(name) or ".", **info})
        else:
            try:
                world.check_nbt_file(data)
            except (ValueError, OSError, EOFError) as exc:
                self.error(f"{name}: {exc}")

    def _use_helpers(self) -> bool:
        if self._helpers is not None:
            return True
        if (PROCESS_AFTER_BYTES is None or self._region_bytes < PROCESS_AFTER_BYTES
                or self._helpers_failed.is_set()):
            return False
        try:
            self._helpers = RegionHelpers(self._threads)
        except HelperFailed as exc:
            self._helper_failed(exc)
            return False
        return True

    def _helper_failed(self, exc: Exception) -> None:
        if not self._helpers_failed.is_set():
            self._helpers_failed.set()
            log.warning("World check: %s; region files are checked in threads instead (slower)", exc)

    def _in_helper(self, name: str, data: bytes) -> _Findings:
        """On a pool thread: the region file checked by a helper process, or here if none answers."""
        if not self._helpers_failed.is_set():
            try:
                reply = self._helpers.check(name, data)
            except HelperFailed as exc:
                self._helper_failed(exc)
            else:
                findings = _Findings()
                findings.chunks = reply["chunks"]
                findings.events = [tuple(event) for event in reply["events"]]
                return findings
        return check_region_blob(name, data)

    def _merge_oldest(self) -> None:
        name, future, size = self._pending.popleft()
        self._pending_bytes -= size
        self._merge(name, future)

    def _merge(self, name: str, future) -> None:
        findings = future.result()
        self._current = name
        self.chunks += findings.chunks
        for kind, payload in findings.events:
            if kind == "error":
                self.error(payload)
            elif kind == "warning":
                self.warning(payload)
            else:
                self.external(payload[0], 0, payload[1])

    def close(self) -> None:
        """Stop the pool and the helpers without merging (the archive could not be read to the end)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._helpers is not None:
            self._helpers.close()
            self._helpers = None

    def finish(self) -> None:
        while self._pending:
            self._merge_oldest()
        self.close()
        for path, where in sorted(self.external_needed.items()):
            if path not in self.external_seen:
                self._current = path
                self.error(f"{where} is stored externally but {path} is missing")
        self.worlds.sort(key=lambda w: (w["path"].count("/"), w["path"]))
        self.result.details.update(
            worlds=self.worlds, region_files=self.region_files, chunks_checked=self.chunks,
            files_with_errors=sorted(self.bad_files)[:_MAX_LISTED],
        )
        if not self.worlds and not self.region_files and "error_count" not in self.result.details:
            # (a level.dat that failed its check is a failed world, not a missing one)
            self.result.skip("no Minecraft world (level.dat or region files) in the archive")
        else:
            self.result.ok = not self.result.errors and "error_count" not in self.result.details
