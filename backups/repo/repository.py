"""A self-describing repository of snapshots (issue #14, item 1), readable
with its key alone — no database:

    config                 plain JSON: format version, repository id, chunking parameters
    data/<xx>/<pack id>    packs (pack.py), named by their SHA-256
    index/<id>             sealed: which blobs each pack holds
    snapshots/<id>         sealed: one backup — every file with its metadata and blob list
    locks/<id>             plain JSON: a backup in progress (host, pid, time)
    pending/<pack id>      plain: a pack prune found unused, deleted by a later prune (two phases)

Written in the order that keeps it consistent at any crash (after restic):
a pack is complete under its final name before an index names it, and the
indexes naming every blob of a snapshot exist before the snapshot does. A
crash leaves at most packs no index names (found by ``check`` as unused,
removed by prune), never a snapshot that needs a missing blob.

``Store`` is where the files live: ``LocalStore`` (a folder; writes go to a
temporary name and are renamed, fsynced) here; a storage target adapts the
same five calls.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import secrets
import signal
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from backups.engine.walk import scan
from backups.repo import chunking
from backups.repo.crypto import BlobError, RepoKey
from backups.repo.index import BlobIndex
from backups.repo.pack import DATA, TREE, PackError, PackWriter, bytes_reader, read_blob, read_header

FORMAT_VERSION = 1
PACK_CACHE = 4  # whole packs a reader keeps (verify, export): 64 MiB at most
INDEX_PACKS = 8  # a backup writes an index file every this many packs (and at its end)
RESTORE_BATCH = 65536  # blobs a restore plans at once (about 256 MiB of a world)
INLINE_BLOBS = 8  # a file of more blobs keeps its id list in a tree blob ("list"), not in the snapshot
TREE_PACK_SIZE = 1024 * 1024  # tree blobs go to packs of their own, small: a reader keeps a few whole
SNAPSHOT_LABEL = b"snapshot"
INDEX_LABEL = b"index"


class RepositoryError(Exception):
    pass


class _IndexReplaced(Exception):
    """An index file listed a moment ago is gone (a prune rewrote the index)."""


def _process_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _checkpoint(name: str) -> None:
    """A crash point for the kill -9 tests (tests/repo/test_crashes.py):
    SIGKILL this process here when MCSITE_CRASH_AT names it."""
    if os.environ.get("MCSITE_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


class LocalStore:
    """A repository in a folder (a second disk, NFS, SMB)."""

    def __init__(self, root):
        self.root = Path(root)

    def _path(self, name: str) -> Path:
        path = (self.root / name).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise RepositoryError(f"{name}: outside the repository")
        return path

    def put(self, name: str, data: bytes) -> None:
        path = self._path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(temporary, path)
        except BaseException:
            if os.path.exists(temporary):
                os.unlink(temporary)
            raise
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def get(self, name: str) -> bytes:
        try:
            return self._path(name).read_bytes()
        except FileNotFoundError:
            raise RepositoryError(f"{name}: missing") from None

    def read_at(self, name: str):
        path = self._path(name)

        def read(offset: int, length: int) -> bytes:
            with open(path, "rb") as fh:
                fh.seek(offset)
                return fh.read(length)
        return read

    def size(self, name: str) -> int:
        try:
            return self._path(name).stat().st_size
        except FileNotFoundError:
            raise RepositoryError(f"{name}: missing") from None

    def list(self, prefix: str) -> list[str]:
        base = self._path(prefix)
        if not base.is_dir():
            return []
        return sorted(p.relative_to(self.root).as_posix() for p in base.rglob("*")
                      if p.is_file() and not p.name.startswith(".tmp-"))

    def sizes(self, prefix: str) -> dict[str, int]:
        """{name: bytes} of every file under ``prefix`` (one listing)."""
        return {name: self._path(name).stat().st_size for name in self.list(prefix)}

    def exists(self, name: str) -> bool:
        return self._path(name).is_file()

    def delete(self, name: str) -> None:
        try:
            self._path(name).unlink()
        except FileNotFoundError:
            pass


def file_blob_ids(item: dict) -> list[bytes]:
    """The blob ids of a snapshot's file, in order: stored as one base64
    string of the concatenated 32-byte ids (a list of hex ids is read too)."""
    blobs = item.get("blobs", ())
    if isinstance(blobs, str):
        raw = base64.b64decode(blobs)
        return [raw[i:i + 32] for i in range(0, len(raw), 32)]
    return [bytes.fromhex(b) for b in blobs]


def _encode_blob_ids(ids: list[bytes]) -> str:
    return base64.b64encode(b"".join(ids)).decode("ascii")


def index_columns(entries) -> dict:
    """One pack's entries as an index file stores them: by column (ids as
    base64 of the concatenated 32-byte ids), which loads in bulk."""
    return {"kind": base64.b64encode(bytes(e.kind for e in entries)).decode("ascii"),
            "ids": base64.b64encode(b"".join(e.blob_id for e in entries)).decode("ascii"),
            "offset": [e.offset for e in entries], "length": [e.length for e in entries],
            "raw": [e.raw_length for e in entries]}


def _write_pieces(path, pieces: list) -> int:
    """Writes (offset, bytes) pieces into a file: adjacent ones in one
    vectored write (no copy), at most 512 buffers each."""
    pieces.sort(key=lambda piece: piece[0])
    fd = os.open(path, os.O_WRONLY)
    total = 0
    try:
        start, run = pieces[0][0], [pieces[0][1]]
        end = start + len(pieces[0][1])
        for offset, text in pieces[1:] + [(None, b"")]:
            if offset == end and len(run) < 512:
                run.append(text)
                end += len(text)
                continue
            total += _pwritev_all(fd, run, start)
            if offset is not None:
                start, run, end = offset, [text], offset + len(text)
    finally:
        os.close(fd)
    return total


def _pwritev_all(fd: int, buffers: list, offset: int) -> int:
    total = sum(len(b) for b in buffers)
    done = os.pwritev(fd, buffers, offset)
    if done < total:  # a short write (rare): the rest one piece at a time
        view, at = memoryview(b"".join(buffers))[done:], offset + done
        while view:
            step = os.pwrite(fd, view, at)
            view, at = view[step:], at + step
    return total


def pack_name(pack_id: str) -> str:
    return f"data/{pack_id[:2]}/{pack_id}"


@dataclass
class PackCache:
    """Whole packs a reader keeps (Repository.blob), and the packs it has read once."""

    packs: dict = field(default_factory=dict)
    seen: set = field(default_factory=set)


@dataclass
class SnapshotStats:
    files: int = 0
    bytes: int = 0
    blobs_new: int = 0
    bytes_new: int = 0  # sealed bytes added to the repository
    files_unchanged: int = 0  # taken from the parent without reading (size, mtime, inode)


@dataclass
class Repository:
    store: object
    key: RepoKey
    _index: BlobIndex = field(default_factory=BlobIndex)  # blob id -> (pack id, Entry)
    damaged_indexes: list = field(default_factory=list)
    _pack_ends: dict = field(default_factory=dict)
    marked: set = field(default_factory=set)  # packs prune found unused (pending/)

    # --- creating and opening -------------------------------------------------------

    @classmethod
    def init(cls, store, key: RepoKey) -> "Repository":
        if store.exists("config"):
            raise RepositoryError("a repository is already there")
        config = {"version": FORMAT_VERSION, "id": secrets.token_hex(16),
                  "chunking": {"region": "chunk boundaries", "cdc_avg": chunking.CDC_AVG,
                               "cdc_min": chunking.CDC_MIN, "cdc_max": chunking.CDC_MAX,
                               "small_file": chunking.SMALL_FILE},
                  # a sealed token: a wrong key is told at open, not at the first blob
                  "key_check": key.seal_meta(b"mcsite repository", b"key-check").hex()}
        store.put("config", json.dumps(config, indent=2).encode())
        return cls.open(store, key)

    @classmethod
    def open(cls, store, key: RepoKey) -> "Repository":
        config = json.loads(store.get("config"))
        if config.get("version") != FORMAT_VERSION:
            raise RepositoryError(f"repository format {config.get('version')} is not {FORMAT_VERSION}")
        try:
            key.open_meta(bytes.fromhex(config["key_check"]), b"key-check")
        except BlobError:
            raise RepositoryError("this is not the key of this repository") from None
        repo = cls(store, key)
        repo.load_index()
        return repo

    def load_index(self) -> None:
        """Every index file's entries; one that does not read (truncated,
        changed) is listed in ``damaged_indexes`` and its blobs count as
        missing — check names the snapshots that need them. An index file
        that goes between the listing and its reading was replaced by a
        prune (which writes the new files first): the listing is read again."""
        for attempt in range(5):
            try:
                return self._load_index()
            except _IndexReplaced:
                continue
        self._load_index(tolerate_missing=True)

    def _load_index(self, *, tolerate_missing: bool = False) -> None:
        self._index = BlobIndex()
        self._pack_ends = {}
        self.damaged_indexes = []
        self.marked = {name.rsplit("/", 1)[1] for name in self.store.list("pending")}
        present = {name.rsplit("/", 1)[1] for name in self.store.list("data")}
        for name in self.store.list("index"):
            try:
                sealed = self.store.get(name)
            except RepositoryError:
                if tolerate_missing:
                    self.damaged_indexes.append(name)
                    continue
                raise _IndexReplaced(name) from None
            try:
                document = json.loads(self.key.open_meta(sealed, INDEX_LABEL))
            except (BlobError, ValueError):
                self.damaged_indexes.append(name)
                continue
            for pack_id, entries in document["packs"].items():
                # A blob in two packs (repacked): the pack that is there and not marked wins.
                here = pack_id in present
                self._index.load(pack_id, entries,
                                 replaces=lambda known: here and (known not in present or known in self.marked))

    def knows(self, blob_id: bytes) -> bool:
        """In an index (marked for deletion or not): readable."""
        return blob_id in self._index

    def pack_of(self, blob_id: bytes) -> str | None:
        return self._index.pack_of(blob_id)

    def has_blob(self, blob_id: bytes) -> bool:
        """Known in a pack that prune has not marked for deletion."""
        pack_id = self._index.pack_of(blob_id)
        return pack_id is not None and pack_id not in self.marked

    # --- writing a snapshot ----------------------------------------------------------

    def backup(self, folder, *, exclude=(), parent: str | None = None, force_read: bool = False,
               now: dt.datetime | None = None, progress=None, tags: dict | None = None,
               before_snapshot=None) -> tuple[str, SnapshotStats]:
        """Takes a snapshot of ``folder``; returns (snapshot id, stats). A
        lock file says a backup is running (prune deletes no pack meanwhile);
        blobs of packs prune marked are stored again, never reused.
        ``progress(bytes_done)`` hears the bytes of the folder's files
        covered so far (read, or taken unread from the parent). ``tags``
        (plain JSON) are kept in the snapshot: what it is, for whoever reads
        the repository without the database. ``before_snapshot(snapshot_id)``
        hears the id before the snapshot is written (a caller records it
        first, so that no crash leaves a snapshot nobody knows of)."""
        lock = f"locks/{secrets.token_hex(8)}"
        self.store.put(lock, json.dumps({"host": os.uname().nodename, "pid": os.getpid(),
                                         "time": dt.datetime.now(dt.timezone.utc).isoformat()}).encode())
        try:
            self.load_index()  # what prune did since this repository was opened
            return self._backup(folder, exclude=exclude, parent=parent, force_read=force_read, now=now,
                                progress=progress, tags=tags, before_snapshot=before_snapshot)
        finally:
            self.store.delete(lock)

    def _backup(self, folder, *, exclude, parent, force_read, now, progress, tags,
                before_snapshot) -> tuple[str, SnapshotStats]:
        parent_files = {} if parent is None or force_read else \
            {f["path"]: f for f in self.snapshot(parent)["files"] if f["type"] == "file"}
        stats = SnapshotStats()
        writer = PackWriter(self.key)
        trees = PackWriter(self.key, target_size=TREE_PACK_SIZE)
        tree_cache = PackCache()
        new_packs: dict[str, list] = {}
        files = []
        result = scan(os.fspath(folder), exclude)
        for entry in result.entries:
            st = entry.st
            record = {"path": entry.rel, "mode": stat.S_IMODE(st.st_mode), "mtime_ns": st.st_mtime_ns}
            if entry.kind == "dir":
                files.append({**record, "type": "dir"})
                continue
            if entry.kind == "symlink":
                files.append({**record, "type": "symlink", "target": entry.link_target})
                continue
            record.update(type="file", size=st.st_size, inode=[st.st_dev, st.st_ino])
            known = parent_files.get(entry.rel)
            if (known and known["size"] == st.st_size and known["mtime_ns"] == st.st_mtime_ns
                    and known.get("inode") == [st.st_dev, st.st_ino] and self._reusable(known, tree_cache)):
                record.update({k: known[k] for k in ("blobs", "list") if k in known})
                stats.files_unchanged += 1
            else:
                blobs = []
                for _piece, data in chunking.pieces(entry.abs, name=os.path.basename(entry.rel)):
                    blob_id = self.key.blob_id(data)
                    if not self.has_blob(blob_id) and blob_id not in writer:
                        writer.add(data, kind=DATA, blob_id=blob_id)
                        stats.blobs_new += 1
                        if writer.full:
                            stats.bytes_new += self._flush(writer, new_packs)
                            writer = PackWriter(self.key)
                            if len(new_packs) >= INDEX_PACKS:
                                self._write_index(new_packs)  # memory stays bounded on a big world
                    blobs.append(blob_id)
                if len(blobs) <= INLINE_BLOBS:
                    record["blobs"] = _encode_blob_ids(blobs)
                else:  # the list as a blob of its own: an unchanged file costs the next snapshot 64 bytes
                    listing = b"".join(blobs)
                    list_id = self.key.blob_id(listing)
                    if not self.has_blob(list_id) and list_id not in trees:
                        trees.add(listing, kind=TREE, blob_id=list_id)
                        if trees.full:
                            stats.bytes_new += self._flush(trees, new_packs)
                            trees = PackWriter(self.key, target_size=TREE_PACK_SIZE)
                    record["list"] = list_id.hex()
            stats.files += 1
            stats.bytes += st.st_size
            files.append(record)
            if progress is not None:
                progress(stats.bytes)
        for last in (writer, trees):
            if last.entries:
                stats.bytes_new += self._flush(last, new_packs)
        if new_packs:  # every new blob is indexed before the snapshot that needs it exists
            self._write_index(new_packs)
        now = now or dt.datetime.now(dt.timezone.utc)
        snapshot = {"time": now.isoformat(), "parent": parent, "files": files,
                    "stats": {"files": stats.files, "bytes": stats.bytes}, "tags": dict(tags or {})}
        text = json.dumps(snapshot, sort_keys=True).encode()  # one copy: it is both sealed and hashed
        del files, snapshot
        snapshot_id = hashlib.sha256(text).hexdigest()
        sealed = self.key.seal_meta(text, SNAPSHOT_LABEL)
        del text
        if before_snapshot is not None:
            before_snapshot(snapshot_id)
        self.store.put(f"snapshots/{snapshot_id}", sealed)
        return snapshot_id, stats

    def _reusable(self, known: dict, cache: "PackCache") -> bool:
        """A parent's file can be taken unread: its blobs (and its list's) are
        indexed in packs prune has not marked."""
        try:
            ids = self.blob_ids(known, cache)
        except (BlobError, RepositoryError):
            return False
        listed = [bytes.fromhex(known["list"])] if "list" in known else []
        return self._index.has_all(ids + listed, unless_in=self.marked)

    def blob_ids(self, item: dict, cache: "PackCache | None" = None) -> list[bytes]:
        """A snapshot file's blob ids, in order: inline (``blobs``) or read
        from its tree blob (``list``); BlobError when that does not read."""
        if "list" in item:
            listing = self.blob(bytes.fromhex(item["list"]), cache)
            return [listing[i:i + 32] for i in range(0, len(listing), 32)]
        return file_blob_ids(item)

    def list_id(self, item: dict) -> bytes | None:
        return bytes.fromhex(item["list"]) if "list" in item else None

    def _write_index(self, new_packs: dict) -> None:
        """An index file of the packs written since the last one (all complete)."""
        sealed = self.key.seal_meta(json.dumps({"packs": new_packs}).encode(), INDEX_LABEL)
        self.store.put(f"index/{hashlib.sha256(sealed).hexdigest()}", sealed)
        _checkpoint("repo-index-written")
        new_packs.clear()

    def _flush(self, writer: PackWriter, new_packs: dict) -> int:
        pack_id, data, entries = writer.finish()
        self.store.put(pack_name(pack_id), data)  # complete under its name before any index names it
        _checkpoint("repo-pack-written")
        new_packs[pack_id] = index_columns(entries)
        for e in entries:
            self._index[e.blob_id] = (pack_id, e)
        return len(data)

    # --- reading -------------------------------------------------------------------------

    def stored_bytes(self) -> int:
        """Bytes of the repository's packs (those prune marked for deletion excluded)."""
        return sum(size for name, size in self.store.sizes("data").items()
                   if name.rsplit("/", 1)[1] not in self.marked)

    def snapshots(self) -> list[str]:
        return [name.rsplit("/", 1)[1] for name in self.store.list("snapshots")]

    def snapshot(self, snapshot_id: str) -> dict:
        return json.loads(self.key.open_meta(self.store.get(f"snapshots/{snapshot_id}"), SNAPSHOT_LABEL))

    def blob(self, blob_id: bytes, cache: "PackCache | None" = None) -> bytes:
        """One blob, authenticated. With ``cache`` (a PackCache the caller
        keeps), whole packs are read and kept, at most PACK_CACHE of them:
        one request per pack instead of one per blob on a remote target. A
        pack already read once and let go is not read whole again: its later
        blobs (a deduplicated blob far from the rest, such as a chunk's
        zero padding) are read by range."""
        found = self._index.get(blob_id)
        if found is None:
            raise BlobError(blob_id, "not in any index")
        pack_id, entry = found
        if cache is None:
            return read_blob(self.key, self.store.read_at(pack_name(pack_id)), entry)
        data = cache.packs.pop(pack_id, None)
        if data is None:
            if pack_id in cache.seen:
                return read_blob(self.key, self.store.read_at(pack_name(pack_id)), entry)
            data = self.store.get(pack_name(pack_id))
            cache.seen.add(pack_id)
            while len(cache.packs) >= PACK_CACHE:
                cache.packs.pop(next(iter(cache.packs)))
        cache.packs[pack_id] = data  # most recently used last
        return read_blob(self.key, bytes_reader(data), entry)

    def restore(self, snapshot_id: str, target, *, only=None, progress=None) -> int:
        """Writes the snapshot into ``target`` (a new or empty folder); the
        number of files. Pack by pack (after restic's restorer): each pack
        is read once, each of its blobs authenticated once and written to
        every place the snapshot's files hold it.
        ``only``: paths (a dimension's folder, ``world/playerdata``, one file)
        — just those and what lies inside them; a path the snapshot does not
        hold is a RepositoryError before anything is written.
        ``progress(bytes_written)`` hears each pack's end."""
        target = Path(target)
        document = self.snapshot(snapshot_id)
        items = document["files"]
        if only is not None:
            wanted = [p.strip("/") for p in only]
            held = {item["path"] for item in items}
            absent = [p for p in wanted if p not in held]
            if absent:
                raise RepositoryError(f"not in this snapshot: {', '.join(absent)}")
            items = [item for item in items
                     if any(item["path"] == p or item["path"].startswith(p + "/") for p in wanted)]
            # the folders above a chosen path, so that it has somewhere to go
            parents = {"/".join(item["path"].split("/")[:i]) for item in items
                       for i in range(1, item["path"].count("/") + 1)}
            items = [item for item in document["files"] if item["path"] in parents and item["type"] == "dir"] + items
        target.mkdir(parents=True, exist_ok=True)
        root = target.resolve()
        files = []
        for item in items:
            path = target / item["path"]
            if not path.resolve().is_relative_to(root):
                raise RepositoryError(f"{item['path']}: outside the target")
            if item["type"] == "dir":
                path.mkdir(parents=True, exist_ok=True)
            elif item["type"] == "symlink":
                path.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(item["target"], path)
            else:
                files.append((path, item))
        self._write_files(files, progress)
        for path, item in files:
            os.chmod(path, item["mode"])
            os.utime(path, ns=(item["mtime_ns"], item["mtime_ns"]))
        for item in reversed(items):  # directories' times after their contents
            if item["type"] == "dir":
                os.chmod(target / item["path"], item["mode"])
                os.utime(target / item["path"], ns=(item["mtime_ns"], item["mtime_ns"]))
        return len(files)

    def _write_files(self, files: list, progress) -> None:
        """The files' bytes, pack by pack, in batches of files holding about
        RESTORE_BATCH blobs (the plan's memory stays bounded on a big world;
        a pack a later batch needs again is read again). Every blob of a
        batch is looked up, and each file's blobs add up to its size, before
        the batch writes anything."""
        written = [0]
        plan: dict[str, list] = {}  # pack id -> [(blob id, file number, offset)], packs in first-use order
        planned = 0
        lists = PackCache()
        for number, (path, item) in enumerate(files):
            offset = 0
            for blob_id in self.blob_ids(item, lists):
                found = self._index.get(blob_id)
                if found is None:
                    raise BlobError(blob_id, f"not in any index ({item['path']})")
                plan.setdefault(found[0], []).append((blob_id, number, offset))
                offset += found[1].raw_length
                planned += 1
            if offset != item["size"]:
                raise RepositoryError(f"{item['path']}: its blobs hold {offset} bytes, the snapshot says {item['size']}")
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "wb") as fh:
                fh.truncate(item["size"])
            item.pop("blobs", None)  # planned: the list is not needed again
            item.pop("list", None)
            if planned >= RESTORE_BATCH:
                self._write_batch(plan, files, written, progress)
                plan, planned = {}, 0
        self._write_batch(plan, files, written, progress)

    def _pack_size(self, pack_id: str, entries: dict) -> int:
        """About how big a pack is (its last indexed blob's end), without asking the store."""
        sizes = self._pack_ends
        if pack_id not in sizes:
            sizes.update(self._index.pack_ends())
        return sizes.get(pack_id) or max(e.offset + e.length for e in entries.values())

    def _write_batch(self, plan: dict, files: list, written: list, progress) -> None:
        for pack_id in list(plan):
            wanted = plan.pop(pack_id)
            entries = {blob_id: self._index[blob_id][1] for blob_id, _, _ in wanted}
            name = pack_name(pack_id)
            if sum(e.length for e in entries.values()) * 4 < self._pack_size(pack_id, entries):
                reader = self.store.read_at(name)  # a few blobs of it (a chunk's padding, say): by range
            else:
                reader = bytes_reader(self.store.get(name))  # the whole pack, once (one request on a remote target)
            plaintexts = {blob_id: read_blob(self.key, reader, entry) for blob_id, entry in entries.items()}
            by_file: dict[int, list] = {}
            for blob_id, number, offset in wanted:
                by_file.setdefault(number, []).append((offset, plaintexts[blob_id]))
            for number, pieces in by_file.items():
                written[0] += _write_pieces(files[number][0], pieces)
            del reader, plaintexts, by_file, entries, wanted
            if progress is not None:
                progress(written[0])

    # --- checking ------------------------------------------------------------------------

    def check(self, *, read_data: bool = False) -> dict:
        """What is wrong, by snapshot and file: blobs no index knows, packs
        missing or whose header does not read, and (``read_data``) blobs that
        do not authenticate. Unused packs (a crash before their index) are
        listed, not errors."""
        problems: dict[str, list[str]] = {}
        bad_blobs: dict[bytes, str] = {}
        packs = {name.rsplit("/", 1)[1] for name in self.store.list("data")}
        indexed_packs = self._index.pack_ids()
        for pack_id in sorted(indexed_packs):
            if pack_id not in packs:
                why = "its pack is missing"
            else:
                name = pack_name(pack_id)
                # Reading the data: the whole pack once (one request on a remote target), then its blobs from it.
                data = self.store.get(name) if read_data else None
                reader = bytes_reader(data) if data is not None else self.store.read_at(name)
                try:
                    entries = read_header(self.key, reader, len(data) if data is not None else self.store.size(name))
                    why = None
                except PackError as exc:
                    why, entries = f"its pack's header is damaged ({exc})", []
                if why is None and data is not None:
                    for entry in entries:
                        try:
                            read_blob(self.key, reader, entry)
                        except BlobError as exc:
                            bad_blobs[entry.blob_id] = exc.why
                    if hashlib.sha256(data).hexdigest() != pack_id:
                        for entry in entries:
                            bad_blobs.setdefault(entry.blob_id, "its pack's bytes changed")
            if why is not None:
                for blob_id, (owner, _) in self._index.items():
                    if owner == pack_id:
                        bad_blobs[blob_id] = why
        for snapshot_id in self.snapshots():
            try:
                document = self.snapshot(snapshot_id)
            except (BlobError, RepositoryError) as exc:
                problems[snapshot_id] = [f"the snapshot itself does not read ({exc})"]
                continue
            lists = PackCache()
            for item in document["files"]:
                listed = self.list_id(item)
                if listed is not None and (listed not in self._index or listed in bad_blobs):
                    why = bad_blobs.get(listed, "its blob list is in no index")
                    problems.setdefault(snapshot_id, []).append(f"{item['path']}: {why}")
                    continue
                try:
                    ids = self.blob_ids(item, lists)
                except BlobError as exc:
                    problems.setdefault(snapshot_id, []).append(f"{item['path']}: its blob list does not read ({exc})")
                    continue
                for blob_id in ids:
                    if blob_id not in self._index:
                        problems.setdefault(snapshot_id, []).append(f"{item['path']}: a blob no index knows")
                        break
                    if blob_id in bad_blobs:
                        problems.setdefault(snapshot_id, []).append(f"{item['path']}: {bad_blobs[blob_id]}")
                        break
        return {"ok": not problems and not self.damaged_indexes, "problems": problems,
                "damaged_indexes": list(self.damaged_indexes), "unused_packs": sorted(packs - indexed_packs)}

    # --- forgetting and pruning -------------------------------------------------------

    def forget(self, snapshot_ids) -> None:
        """Removes snapshots (their blobs go at the next prunes)."""
        for snapshot_id in snapshot_ids:
            self.store.delete(f"snapshots/{snapshot_id}")

    def _referenced(self) -> set[bytes]:
        used = set()
        lists = PackCache()
        for snapshot_id in self.snapshots():
            for item in self.snapshot(snapshot_id)["files"]:
                listed = self.list_id(item)
                if listed is not None:
                    used.add(listed)
                used.update(self.blob_ids(item, lists))
        return used

    def _backups_running(self, stale: dt.timedelta) -> bool:
        """A backup holds a lock: one younger than ``stale`` whose process,
        when it ran on this host, is still alive. The lock of a backup killed
        on this host is removed here (it can never finish)."""
        now = dt.datetime.now(dt.timezone.utc)
        here = os.uname().nodename
        for name in self.store.list("locks"):
            try:
                lock = json.loads(self.store.get(name))
                started = dt.datetime.fromisoformat(lock["time"])
            except (RepositoryError, ValueError, KeyError):
                continue
            if lock.get("host") == here and not _process_alive(int(lock.get("pid", 0))):
                self.store.delete(name)
                continue
            if now - started < stale:
                return True
        return False

    def prune(self, *, repack_below: float = 0.5, stale_lock: dt.timedelta = dt.timedelta(hours=12)) -> dict:
        """Two phases, so that a backup may run meanwhile and lose nothing:

        1. **sweep** what an earlier prune marked: only while no backup runs,
           and only packs still unused now (a backup that reused a blob before
           the mark keeps its pack); then one new index of what remains is
           written before the old index files go;
        2. **mark** the packs no snapshot uses, and repack those used less than
           ``repack_below``: their used blobs are written into new packs and
           indexed, then the old pack is marked.

        A crash at any step leaves a repository that ``check`` passes: packs
        are deleted only once no index needs them, index files only once a
        newer one holds their live entries."""
        self.load_index()
        report = {"deleted_packs": 0, "marked_packs": 0, "repacked_packs": 0, "freed_bytes": 0}
        used = self._referenced()
        if self.marked and not self._backups_running(stale_lock):
            still_used = {pack_id for blob_id, (pack_id, _) in self._index.items() if blob_id in used}
            for pack_id in sorted(self.marked):
                if pack_id in still_used:
                    self.store.delete(f"pending/{pack_id}")  # reused before its mark: kept
                    continue
                try:
                    report["freed_bytes"] += self.store.size(pack_name(pack_id))
                except RepositoryError:
                    pass
                self._rewrite_index(drop={pack_id})
                self.store.delete(pack_name(pack_id))
                _checkpoint("repo-pack-deleted")
                self.store.delete(f"pending/{pack_id}")
                report["deleted_packs"] += 1
            self.load_index()
        by_pack: dict[str, list] = {}
        for blob_id, (pack_id, entry) in self._index.items():
            if pack_id not in self.marked:
                by_pack.setdefault(pack_id, []).append((blob_id in used, entry))
        writer, new_packs = PackWriter(self.key), {}
        to_mark = []
        for pack_id, entries in sorted(by_pack.items()):
            live = [e for in_use, e in entries if in_use]
            total = sum(e.length for _, e in entries)
            if not live:
                to_mark.append(pack_id)
            elif sum(e.length for e in live) < repack_below * total:
                reader = self.store.read_at(pack_name(pack_id))
                for entry in live:
                    writer.add(read_blob(self.key, reader, entry), kind=entry.kind, blob_id=entry.blob_id)
                    if writer.full:
                        self._flush(writer, new_packs)
                        writer = PackWriter(self.key)
                to_mark.append(pack_id)
                report["repacked_packs"] += 1
        if not self._backups_running(stale_lock):  # packs of a crashed backup that no index names
            indexed = self._index.pack_ids()
            to_mark += [name.rsplit("/", 1)[1] for name in self.store.list("data")
                        if name.rsplit("/", 1)[1] not in indexed | self.marked]
        if writer.entries:
            self._flush(writer, new_packs)
        if new_packs:  # the copies are indexed before their old pack is marked
            _checkpoint("repo-repack-written")
            sealed = self.key.seal_meta(json.dumps({"packs": new_packs}).encode(), INDEX_LABEL)
            self.store.put(f"index/{hashlib.sha256(sealed).hexdigest()}", sealed)
            _checkpoint("repo-repack-indexed")
        for pack_id in to_mark:
            self.store.put(f"pending/{pack_id}", dt.datetime.now(dt.timezone.utc).isoformat().encode())
            report["marked_packs"] += 1
            _checkpoint("repo-pack-marked")
        self.load_index()
        return report

    def _rewrite_index(self, *, drop: set) -> None:
        """New index files of every entry outside the ``drop`` packs (one per
        INDEX_PACKS * 4 packs, so memory stays bounded), all written before
        the index files they replace are removed."""
        old = self.store.list("index")
        by_pack = self._index.by_pack()
        kept = sorted(pack_id for pack_id in by_pack if pack_id not in drop)
        written = set()
        for start in range(0, len(kept), INDEX_PACKS * 4):
            packs = {}
            for pack_id in kept[start:start + INDEX_PACKS * 4]:
                packs[pack_id] = index_columns([e for _, e in by_pack[pack_id]])
            sealed = self.key.seal_meta(json.dumps({"packs": packs}).encode(), INDEX_LABEL)
            name = f"index/{hashlib.sha256(sealed).hexdigest()}"
            self.store.put(name, sealed)
            written.add(name)
            _checkpoint("repo-index-rewritten")
        for other in old:
            if other not in written:
                self.store.delete(other)
        for blob_id in [b for b, (pack_id, _) in self._index.items() if pack_id in drop]:
            del self._index[blob_id]

    # --- the repository key, wrapped ----------------------------------------------------

    def add_key(self, kek: bytes) -> str:
        """Stores the repository key wrapped by ``kek`` (a 32-byte key the
        site keeps: its exported keys open the repository without the
        database) under ``keys/<id>``; returns the id."""
        wrapped = wrap_key(self.key, kek)
        key_id = hashlib.sha256(wrapped).hexdigest()[:32]
        self.store.put(f"keys/{key_id}", wrapped)
        return key_id

    def rewrap(self, old_kek: bytes, new_kek: bytes) -> str:
        """Key rotation: the repository key wrapped by the new key is written
        before the old wrap goes; no blob is encrypted again."""
        old = [name for name in self.store.list("keys") if _unwraps(self.store.get(name), old_kek)]
        key_id = self.add_key(new_kek)
        for name in old:
            if name != f"keys/{key_id}":
                self.store.delete(name)
        return key_id

    @classmethod
    def open_with(cls, store, kek: bytes) -> "Repository":
        """Opens with a key-encryption key: the first ``keys/`` entry it unwraps."""
        for name in store.list("keys"):
            key = _unwraps(store.get(name), kek)
            if key is not None:
                return cls.open(store, key)
        raise RepositoryError("none of this repository's keys opens with the key given")


def keks_of_export(document) -> list[bytes]:
    """The repository key-encryption keys of a keys export (its
    ``repositories`` list; docs/format.md); entries that are not 32 bytes of
    base64 are passed over."""
    keys = []
    entries = document.get("repositories") if isinstance(document, dict) else None
    for entry in entries if isinstance(entries, list) else ():
        try:
            key = base64.b64decode(entry["key"], validate=True)
        except (KeyError, TypeError, ValueError):
            continue
        if len(key) == 32:
            keys.append(key)
    return keys


def wrap_key(key: RepoKey, kek: bytes) -> bytes:
    """``nonce ‖ AES-256-GCM(kek, nonce, repository key, aad="mcsite repository key")``."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if len(kek) != 32:
        raise ValueError("a key-encryption key is 32 bytes")
    nonce = os.urandom(12)
    return nonce + AESGCM(kek).encrypt(nonce, key.key, b"mcsite repository key")


def _unwraps(wrapped: bytes, kek: bytes) -> RepoKey | None:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        return RepoKey(AESGCM(kek).decrypt(wrapped[:12], wrapped[12:], b"mcsite repository key"))
    except (InvalidTag, ValueError):
        return None
