"""A snapshot as an ordinary archive (issue #14, item 6): a gzip-compressed
tar stream that ``tar -xzf`` and any archive tool open, written to a file
object front to back (a download response, a file), each file read blob by
blob from the repository (authenticated) — never the whole snapshot in
memory, nothing written to the repository's disk."""

from __future__ import annotations

import gzip
import tarfile

from backups.repo.repository import PackCache
from backups.repo.verify import _BlobStream


def export_tar_gz(repo, snapshot_id: str, fileobj, *, compresslevel: int = 6) -> int:
    """Writes the snapshot to ``fileobj``; returns the number of files."""
    document = repo.snapshot(snapshot_id)
    cache = PackCache()
    count = 0
    with gzip.GzipFile(fileobj=fileobj, mode="wb", compresslevel=compresslevel, mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for item in document["files"]:
            info = tarfile.TarInfo(item["path"])
            info.mode = item["mode"]
            info.mtime = item["mtime_ns"] / 1e9
            if item["type"] == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif item["type"] == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = item["target"]
                tar.addfile(info)
            else:
                info.size = item["size"]
                tar.addfile(info, _BlobStream(repo, repo.blob_ids(item, cache), cache))
                count += 1
    return count
