"""Verifying a snapshot (issue #14, item 4), with the archives' methods and
quality score (backups.engine.verify):

* ``checksum`` — the snapshot document still hashes to its id (the
  backup's ``sha256:`` checksum);
* ``archive_integrity`` — every blob the snapshot needs is in an index and
  its pack, and is read and authenticated (all of them, or with ``sample``
  that fraction of the files, for periodic re-checks); a failure names the
  file;
* ``world_validation`` — the world's files (level.dat, region files,
  external chunks, player data) checked exactly as in an archive, streamed
  from the repository blob by blob, nothing written to disk;
* ``restore_test`` — skipped: a snapshot is restored blob by blob, each
  authenticated as it is written.
"""

from __future__ import annotations

import hashlib
import json
import random
import time

from backups.engine.verify import METHODS, MethodResult, VerificationReport, quality_level, quality_score
from backups.engine.worldcheck import WorldCheck
from backups.repo.crypto import BlobError
from backups.repo.repository import PackCache, RepositoryError


class _BlobStream:
    """A file of the snapshot as a stream, read blob by blob on demand."""

    def __init__(self, repo, blob_ids, cache):
        self._blobs = iter(blob_ids)
        self._repo, self._cache = repo, cache
        self._buffer = b""
        self.returned = 0  # bytes handed out so far

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buffer) < n:
            blob = next(self._blobs, None)
            if blob is None:
                break
            self._buffer += self._repo.blob(blob, self._cache)
        if n < 0:
            out, self._buffer = self._buffer, b""
        else:
            out, self._buffer = self._buffer[:n], self._buffer[n:]
        self.returned += len(out)
        return out

    def drain(self) -> int:
        """Reads (and so authenticates) the rest; the file's whole length."""
        while self.read(1 << 20):
            pass
        return self.returned


def verify_snapshot(repo, snapshot_id: str, *, check_world: bool = True, sample: float | None = None,
                    seed: int | None = None) -> VerificationReport:
    started = time.monotonic()
    methods = {name: MethodResult(name) for name in METHODS}
    checksum, integrity, world_result = methods["checksum"], methods["archive_integrity"], methods["world_validation"]
    methods["restore_test"].skip("a snapshot is restored blob by blob, each blob authenticated as it is written")
    try:
        document = repo.snapshot(snapshot_id)
    except (BlobError, RepositoryError) as exc:
        for method in (checksum, integrity):
            method.error(f"snapshot {snapshot_id[:12]}: does not read ({exc})")
        world_result.skip("the snapshot could not be read")
        return _report(snapshot_id, methods, None, [], started)
    digest = hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()
    checksum.details.update(sha256=digest, expected_sha256=snapshot_id)
    checksum.ok = digest == snapshot_id
    if not checksum.ok:
        checksum.error(f"snapshot {snapshot_id[:12]}: its document hashes to {digest}")
    files = document["files"]
    chosen = set(range(len(files)))
    if sample is not None:
        rng = random.Random(seed)
        chosen = {i for i in range(len(files)) if rng.random() < sample}
        integrity.details["sampled_files"] = len(chosen)
    world_check = WorldCheck(world_result) if check_world else None
    cache = PackCache()
    contents, missing, read_bytes = [], 0, 0
    try:
        for position, item in enumerate(files):
            kind = {"file": "f", "dir": "d", "symlink": "l"}[item["type"]]
            contents.append((item["path"], item.get("size", 0), kind))
            if item["type"] != "file":
                continue
            try:
                blobs = repo.blob_ids(item, cache)
            except (BlobError, RepositoryError) as exc:
                missing += 1
                integrity.error(f"{item['path']}: its blob list does not read ({exc})")
                continue
            unknown = [b for b in blobs if not repo.knows(b)]
            if unknown:
                missing += 1
                integrity.error(f"{item['path']}: {len(unknown)} of its blobs are in no index")
                continue
            wanted = world_check is not None and world_check.wants(item["path"])
            if position not in chosen and not wanted:
                continue
            stream = _BlobStream(repo, blobs, cache)
            try:
                if wanted:
                    world_check.check(item["path"], stream, item["size"])
                size = stream.drain()  # what the world check left is read too: every blob authenticated
            except (BlobError, RepositoryError, OSError) as exc:
                integrity.error(f"{item['path']}: {exc}")
                continue
            read_bytes += size
            if size != item["size"]:
                integrity.error(f"{item['path']}: {size} bytes read, the snapshot says {item['size']}")
    except BaseException:
        if world_check is not None:
            world_check.close()
        raise
    integrity.details.update(file_count=sum(1 for f in files if f["type"] == "file"), blobs_read_bytes=read_bytes,
                             files_with_missing_blobs=missing)
    integrity.ok = not integrity.errors
    if world_check is None:
        world_result.skip("not requested")
        worlds = []
    else:
        world_check.finish()
        world_result.ok = not world_result.errors
        worlds = world_check.worlds
    return _report(snapshot_id, methods, document, worlds, started, contents=contents)


def _report(snapshot_id, methods, document, worlds, started, contents=None) -> VerificationReport:
    score = quality_score(methods)
    files = [f for f in (document or {}).get("files", []) if f["type"] == "file"]
    return VerificationReport(
        path=f"snapshot {snapshot_id}", methods=methods, quality_score=score, quality_level=quality_level(score),
        ok=all(m.ok for m in methods.values() if not m.skipped), world_name=worlds[0]["level_name"] if worlds else None,
        minecraft_version=next((w["minecraft_version"] for w in worlds if w.get("minecraft_version")), None),
        file_count=len(files) if document else None, sha256=snapshot_id, worlds=worlds, encrypted=True,
        compression="zstd", duration_seconds=round(time.monotonic() - started, 3), contents=contents)
