"""Incremental backups (issue #14): a server's snapshots in its own
repository (backups/repo), through the same run lifecycle as archives.

* **Choosing the format**: ``repository_enable`` / ``repository_disable``
  (the server's "Backup format": archive or incremental). The repository row
  is made at once (its key-encryption key sealed in the database); the
  repository itself is written by the first snapshot, on the node that takes
  it — a web tier never touches a game host's backup root.
* **Taking** (``snapshot_take``, called by runs._take): the parent is the
  server's newest snapshot, so unchanged files are not read again; the record
  is ``snapshot_YYYYMMDD_HHMMSS``, its ``sha256`` the snapshot document's,
  ``size_bytes`` what it added to the repository.
* **Verifying** (``snapshot_verify``): backups.repo.verify — the archives'
  methods and quality score.
* **Restoring** (``extract_to_staging``): the snapshot (or only the chosen
  paths) written into a staging folder beside the server folder; the staged
  restore does the rest as for an archive.
* **Removing** (``snapshot_forget``) and ``repository_prune`` (two-phase:
  a backup may run meanwhile).
* **Export** (``export_chunks``): the snapshot as a .tar.gz stream.

Where a repository is: ``<backup root>/repositories/server-<id>`` on the
server's node, or ``mcsite-repo/server-<id>-<random>`` on a storage target.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import secrets
import shutil
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timezone as dt_timezone

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from backups import storage
from backups.engine.extract import ExtractResult
from backups.models import BackupRecord, BackupSettings, SnapshotRepository, StorageTarget
from backups.offsite import OffsiteError, open_target
from backups.repo.crypto import BlobError, RepoKey
from backups.repo.export import export_tar_gz
from backups.repo.repository import LocalStore, Repository, RepositoryError
from backups.repo.target_store import TargetStore
from backups.repo.verify import verify_snapshot
from backups.services.lifecycle import checkpoint, send_task
from mcsite.audit import audit
from mcsite.errors import DomainError, ErrorCode

logger = logging.getLogger("mcsite.backups")

LOCAL_FOLDER = "repositories"
TARGET_FOLDER = "mcsite-repo"


# --- choosing the format ---------------------------------------------------------

def repository_of(server) -> SnapshotRepository | None:
    return SnapshotRepository.objects.filter(server=server).select_related("target").first()


def repository_enable(*, server, target: StorageTarget | None = None, actor=None, request=None,
                      source: str = "api") -> SnapshotRepository:
    """The server's backups become snapshots. A server that had a repository
    gets it back (its snapshots are still there); its place cannot change
    once it holds snapshots (they would be left behind). A repository left
    on another game host, or gone from this one, is replaced by a new one in
    a folder of its own."""
    if target is not None and not target.enabled:
        raise DomainError(ErrorCode.VALIDATION_ERROR, f"Storage target {target.name} is disabled",
                          details={"repository_target": ["This storage target is disabled."]})
    with transaction.atomic():
        row = SnapshotRepository.objects.select_for_update().filter(server=server).first()
        replacing = False
        moved = row is not None and row.target_id is None and target is None and bool(row.node) \
            and row.node != server.node
        vanished = row is not None and row.target_id is None and target is None and bool(row.repo_uid) \
            and where_readable(row) and not repository_present(row)
        if moved or vanished:
            # The server moved to another game host (the old repository stays on the old host with its
            # snapshots, still listed), or its repository vanished from this host: a new one starts here.
            SnapshotRepository.objects.filter(pk=row.pk).update(server=None, active=False)
            row, replacing = None, True
        if row is not None and row.target_id != (target.pk if target else None):
            if row.snapshots.filter(status__in=[BackupRecord.Status.SUCCEEDED, BackupRecord.Status.FAILED]).exists():
                where = row.target.name if row.target else "this game host's backup root"
                raise DomainError(
                    ErrorCode.VALIDATION_ERROR,
                    f"This server's repository is on {where} and holds snapshots; it stays there",
                    details={"repository_target": [f"The repository is on {where} and holds snapshots."]})
            row.delete()
            row = None
        if row is None:
            row = SnapshotRepository(server=server, server_name=server.name, node=server.node, target=target,
                                     location=_location(server, target, fresh=replacing),
                                     key_changed_at=timezone.now())
            row.kek = os.urandom(32)
            _keys_changed()
        row.active = True
        row.save()
        audit(actor=actor, action="server.backup_format", obj=server, request=request, source=source,
              detail={"format": "incremental", "target": target.name if target else None})
    return row


def repository_disable(*, server, actor=None, request=None, source: str = "api") -> None:
    """Back to archives; the repository and its snapshots stay, restorable."""
    changed = SnapshotRepository.objects.filter(server=server, active=True).update(active=False)
    if changed:
        audit(actor=actor, action="server.backup_format", obj=server, request=request, source=source,
              detail={"format": "archive"})


def backup_format_set(*, server, backup_format: str, target_name: str | None = None, actor=None, request=None,
                      source: str = "api") -> SnapshotRepository | None:
    """The one entry of the API, the page and the admin: "archive" or
    "incremental" (with the repository on a named storage target, which only
    an admin may choose: targets are the site's). Bad input changes nothing."""
    if backup_format not in ("archive", "incremental"):
        raise DomainError(ErrorCode.VALIDATION_ERROR, 'format is "archive" or "incremental"',
                          details={"format": ['"archive" or "incremental"']})
    if backup_format == "archive":
        if target_name:
            raise DomainError(ErrorCode.VALIDATION_ERROR, "A repository target goes with the incremental format",
                              details={"repository_target": ["Only with format incremental."]})
        repository_disable(server=server, actor=actor, request=request, source=source)
        return repository_of(server)
    target = None
    if target_name:
        if not getattr(actor, "is_superuser", False):
            raise DomainError(ErrorCode.PERMISSION_DENIED, "Only an admin may put a repository on a storage target")
        target = StorageTarget.objects.filter(name=target_name).first()
        if target is None:
            raise DomainError(ErrorCode.VALIDATION_ERROR, f"No storage target named {target_name!r}",
                              details={"repository_target": ["No storage target of that name."]})
    else:
        current = repository_of(server)
        target = current.target if current is not None else None  # an owner keeps the place an admin chose
    return repository_enable(server=server, target=target, actor=actor, request=request, source=source)


def repository_full_read_next(*, server, actor=None, request=None, source: str = "command") -> SnapshotRepository:
    """The next snapshot of the server reads every file, trusting no size,
    mtime or inode (after a restore from elsewhere, a clock jump, or to be
    sure). DomainError when the server's backups are not incremental."""
    row = repository_of(server)
    if row is None or not row.active:
        raise DomainError(ErrorCode.VALIDATION_ERROR, f"{server.name}'s backups are archives: every archive reads "
                                                      "every file already")
    SnapshotRepository.objects.filter(pk=row.pk).update(full_read_next=True)
    row.full_read_next = True
    audit(actor=actor, action="repository.full_read_next", obj=row, request=request, source=source,
          detail={"server": server.name})
    return row


def repository_rotate_key(*, row: SnapshotRepository, actor=None, request=None, source: str = "admin") -> None:
    """A new key-encryption key: the repository key is wrapped by it, the
    database keeps it, then the old wraps go. No blob is encrypted again.
    Safe at any crash: until the database holds the new key the old wrap is
    still there, and after it the new wrap already is."""
    new_kek = os.urandom(32)
    if not row.repo_uid:  # no snapshot has written the repository yet: nothing is wrapped
        row.kek = new_kek
        row.key_changed_at = timezone.now()
        row.save(update_fields=["kek_sealed", "key_changed_at"])
        _keys_changed()
        return
    with opened(row) as repo:
        key_id = repo.add_key(new_kek)
        row.kek = new_kek
        row.key_changed_at = timezone.now()
        row.save(update_fields=["kek_sealed", "key_changed_at"])
        _keys_changed()
        for name in repo.store.list("keys"):
            if name != f"keys/{key_id}":
                repo.store.delete(name)
    audit(actor=actor, action="repository.rotate_key", obj=row, request=request, source=source,
          detail={"server": row.server_name, "key_id": key_id})


def _keys_changed() -> None:
    """The keys export is out of date (the admin banner asks for a new one)."""
    BackupSettings.objects.filter(pk=BackupSettings.load().pk).update(keys_changed_at=timezone.now())


def _location(server, target, *, fresh: bool = False) -> str:
    """``fresh``: a new repository replacing one left on another host, which
    may be copied here later: never the same folder."""
    if target is None:
        return f"{LOCAL_FOLDER}/server-{int(server.pk)}" + (f"-{secrets.token_hex(4)}" if fresh else "")
    return f"{TARGET_FOLDER}/server-{int(server.pk)}-{secrets.token_hex(4)}"


# --- opening -------------------------------------------------------------------------

def where_readable(row: SnapshotRepository) -> bool:
    """This process can read the repository: it is on a storage target, or
    on this node's own backup root."""
    return row.target_id is not None or (row.node or settings.MCSITE_NODE) == settings.MCSITE_NODE


def readable_here(row: SnapshotRepository) -> bool:
    """This process reads the repository itself: on a storage target, or on
    this node's backup root."""
    return row.target_id is not None or (where_readable(row) and repository_present(row))


def repository_present(row: SnapshotRepository) -> bool:
    """A local repository's config is on this node's backup root."""
    try:
        return (storage.backup_root() / row.location / "config").is_file()
    except OSError:
        return False


@contextmanager
def opened(row: SnapshotRepository, *, create: bool = False):
    """The Repository of ``row``; ``create`` writes it when it is not there
    yet (the first snapshot). Store and target errors become DomainErrors."""
    target = None
    try:
        if row.target_id is None:
            folder = (storage.backup_root() / row.location).resolve()
            if not folder.is_relative_to(storage.backup_root()):
                raise DomainError(ErrorCode.INTERNAL_ERROR, "repository path leaves the backup root")
            if not create and not (folder / "config").is_file():
                raise DomainError(ErrorCode.BACKUP_NOT_FOUND,
                                  "The repository is not on this game host's backup root")
            store = LocalStore(folder)
        else:
            target = open_target(row.target.config())
            store = TargetStore(target, row.location)
        try:
            if create and not store.exists("config"):
                if row.repo_uid:  # it was written once: a vanished repository is said, never silently replaced
                    where = f"storage target {row.target.name}" if row.target_id else "this game host's backup root"
                    raise DomainError(ErrorCode.BACKUP_FAILED,
                                      f"The server's repository ({row.location}) is missing from {where}: put its "
                                      "folder back, or choose Incremental again on the backup page to start a new "
                                      "repository (the snapshots in the missing one cannot be restored)")
                repo = Repository.init(store, RepoKey.generate())
                repo.add_key(row.kek)
                uid = _config_id(store)
                SnapshotRepository.objects.filter(pk=row.pk).update(repo_uid=uid)
                row.repo_uid = uid
            else:
                repo = Repository.open_with(store, row.kek)
        except RepositoryError as exc:
            raise DomainError(ErrorCode.BACKUP_CORRUPTED, f"The repository does not open: {exc}") from None
        yield repo
    except OffsiteError as exc:
        where = row.target.name if row.target_id else "the backup root"
        raise DomainError(ErrorCode.IO_ERROR, f"Could not reach the repository on {where}: {exc.code}: {exc.message}") \
            from None
    finally:
        if target is not None:
            target.close()


def _config_id(store) -> str:
    return json.loads(store.get("config")).get("id", "")


# --- taking -----------------------------------------------------------------------

@dataclass
class SnapshotResult:
    """What runs._finish reads of a backup's result (as engine.ArchiveResult)."""

    snapshot_id: str
    size_bytes: int  # added to the repository
    total_bytes: int
    file_count: int
    files_unchanged: int
    sha256: str = ""
    md5: str = ""
    notes: list = field(default_factory=list)

    def __post_init__(self):
        self.sha256 = self.snapshot_id

    def warnings(self) -> list:
        return list(self.notes)


def snapshot_filename(record: BackupRecord) -> str:
    """snapshot_YYYYMMDD_HHMMSS (UTC), unique per server."""
    stamp = (record.started_at or timezone.now()).astimezone(dt_timezone.utc).strftime("%Y%m%d_%H%M%S")
    tag = "_safety" if record.trigger == BackupRecord.Trigger.SAFETY else ""
    taken = set(BackupRecord.objects.filter(server_id=record.server_id).exclude(pk=record.pk)
                .values_list("filename", flat=True))
    for n in range(1000):
        name = f"snapshot_{stamp}{tag}{'' if n == 0 else f'_{n}'}"
        if name not in taken:
            return name
    raise DomainError(ErrorCode.INTERNAL_ERROR, "Could not find a free snapshot name")


def parent_of(row: SnapshotRepository) -> str | None:
    """The newest snapshot of the repository that succeeded: the speed path's parent."""
    return (BackupRecord.objects.filter(repository=row, status=BackupRecord.Status.SUCCEEDED)
            .exclude(snapshot_id="").order_by("-created_at", "-id").values_list("snapshot_id", flat=True).first())


def snapshot_take(record: BackupRecord, row: SnapshotRepository, folder, *, exclude=(), progress=None,
                  force_read: bool = False) -> SnapshotResult:
    if row.target_id is None and row.node and row.node != settings.MCSITE_NODE:
        if not repository_present(row):
            raise DomainError(ErrorCode.BACKUP_FAILED,
                              f"This server's repository is on the backup root of game host {row.node}, not this one "
                              f"(the server moved): copy its folder ({row.location}) to the same place here, or "
                              "choose Incremental again on its backup page to start a new repository here")
        # The folder was copied here with the server (docs/deployment.md, "Moving a server").
        SnapshotRepository.objects.filter(pk=row.pk).update(node=settings.MCSITE_NODE)
        BackupRecord.objects.filter(repository=row).update(node=settings.MCSITE_NODE)
        row.node = settings.MCSITE_NODE
    force_read = force_read or row.full_read_next
    parent = None if force_read else parent_of(row)
    with opened(row, create=True) as repo:
        if parent is not None and parent not in set(repo.snapshots()):
            parent = None  # forgotten meanwhile: read everything
        try:
            snapshot_id, stats = repo.backup(folder, exclude=exclude, parent=parent, progress=progress,
                                             tags=_tags(record), before_snapshot=lambda sid: _named(record, sid))
        except BlobError as exc:
            raise DomainError(ErrorCode.BACKUP_CORRUPTED, f"The parent snapshot does not read: {exc}") from None
        stored = repo.stored_bytes()
    SnapshotRepository.objects.filter(pk=row.pk).update(stored_bytes=stored, **(
        {"full_read_next": False} if row.full_read_next else {}))
    return SnapshotResult(snapshot_id=snapshot_id, size_bytes=stats.bytes_new, total_bytes=stats.bytes,
                          file_count=stats.files, files_unchanged=stats.files_unchanged)


def _named(record: BackupRecord, snapshot_id: str) -> None:
    """The record knows its snapshot before the snapshot exists: a run killed
    in between leaves a record whose snapshot the reaper forgets (or finds
    absent), never a snapshot no record lists."""
    BackupRecord.objects.filter(pk=record.pk).update(snapshot_id=snapshot_id)
    record.snapshot_id = snapshot_id
    checkpoint("backup_snapshot_named")


def _tags(record: BackupRecord) -> dict:
    """What the record says, kept in the snapshot for a rebuild without the
    database (import_backups): no secret, no absolute path."""
    server = record.server
    return {"filename": record.filename, "trigger": record.trigger, "server_name": record.server_name,
            "server_directory": server.directory if server is not None else "", "node": record.node,
            "mcsite": "snapshot v1"}


def refresh_totals(row: SnapshotRepository) -> None:
    """The repository's world bytes (sum over its kept snapshots) for the dedup ratio."""
    logical = (BackupRecord.objects.filter(repository=row, status=BackupRecord.Status.SUCCEEDED)
               .exclude(snapshot_id="").aggregate(total=Sum("source_bytes"))["total"]) or 0
    SnapshotRepository.objects.filter(pk=row.pk).update(logical_bytes=logical)


# --- verifying --------------------------------------------------------------------

def snapshot_verify(record: BackupRecord, *, check_world: bool = True, sample: float | None = None):
    with opened(record.repository) as repo:
        return verify_snapshot(repo, record.snapshot_id, check_world=check_world, sample=sample)


# --- restoring -----------------------------------------------------------------------

def require_intact(record: BackupRecord) -> None:
    """Before a restore stops anything: the snapshot is in its repository,
    its document still hashes to its id and every blob it needs is indexed
    in a pack that is there. (Each blob is authenticated as it is written.)"""
    with opened(record.repository) as repo:
        try:
            document = repo.snapshot(record.snapshot_id)
        except (RepositoryError, BlobError) as exc:
            raise DomainError(ErrorCode.BACKUP_CORRUPTED, f"Backup is corrupted: the snapshot does not read ({exc})") \
                from None
        if hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest() != record.snapshot_id:
            raise DomainError(ErrorCode.BACKUP_CORRUPTED, "Backup is corrupted: the snapshot's checksum no longer matches")
        present = {name.rsplit("/", 1)[1] for name in repo.store.list("data")}
        for item in document["files"]:
            listed = repo.list_id(item)
            try:
                ids = repo.blob_ids(item) + ([listed] if listed else [])
            except BlobError as exc:
                raise DomainError(ErrorCode.BACKUP_CORRUPTED,
                                  f"Backup is corrupted: {item['path']}'s blob list does not read ({exc})") from None
            for blob_id in ids:
                pack = repo.pack_of(blob_id)
                if pack is None or pack not in present:
                    raise DomainError(ErrorCode.BACKUP_CORRUPTED,
                                      f"Backup is corrupted: {item['path']} needs data that is missing")


def extract_to_staging(record: BackupRecord, target_dir, *, progress=None, on_staging=None,
                       only=None) -> ExtractResult:
    """The snapshot (or ``only`` its chosen paths) written into a new staging
    folder beside ``target_dir``, every blob authenticated as it is written;
    the folder is removed on any failure."""
    started = time.monotonic()
    target = os.path.abspath(os.fspath(target_dir))
    parent, base = os.path.split(target)
    if not os.path.isdir(parent):
        raise DomainError(ErrorCode.SERVER_DIRECTORY_NOT_FOUND, "Folder for the restore not found")
    with opened(record.repository) as repo:
        staging = tempfile.mkdtemp(prefix=f".{base}.restore-", dir=parent)
        try:
            if on_staging is not None:
                on_staging(staging)
            try:
                count = repo.restore(record.snapshot_id, staging, only=only or None,
                                     progress=_progress_of(progress, record.source_bytes or 0))
            except RepositoryError as exc:
                if "not in this snapshot" in str(exc):
                    raise DomainError(ErrorCode.VALIDATION_ERROR, f"Not in this backup: {str(exc).split(': ', 1)[1]}",
                                      details={"paths": [str(exc)]}) from None
                raise DomainError(ErrorCode.BACKUP_CORRUPTED, f"Backup is corrupted: {exc}") from None
            except BlobError as exc:
                raise DomainError(ErrorCode.BACKUP_CORRUPTED, f"Backup is corrupted: {exc}") from None
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    total = dirs = links = 0
    for root, folders, names in os.walk(staging):
        dirs += len(folders)
        for name in names:
            path = os.path.join(root, name)
            if os.path.islink(path):
                links += 1
            else:
                total += os.path.getsize(path)
    return ExtractResult(staging_dir=staging, file_count=count, total_bytes=total, symlink_count=links,
                         directory_count=dirs, manifest_checked=True, compression="zstd", encrypted=True,
                         duration_seconds=round(time.monotonic() - started, 3))


def _progress_of(progress, total: int):
    if progress is None:
        return None
    return lambda done: progress(done, max(total, done))


# --- removing ------------------------------------------------------------------------

def snapshot_forget(record: BackupRecord) -> bool:
    """Removes the snapshot from its repository (its blobs go at the next
    prunes). True when done here; False when the repository is on another
    game host (its node does it: files.remove_on_its_node)."""
    row = record.repository
    if row is None or not record.snapshot_id:
        return False
    try:
        with opened(row) as repo:
            repo.forget([record.snapshot_id])
    except DomainError as exc:
        if exc.code == ErrorCode.BACKUP_NOT_FOUND:
            return False
        raise
    return True


def repository_prune(row: SnapshotRepository) -> dict:
    """Two-phase prune (backups/repo/repository.py): packs no snapshot uses
    are marked now and deleted by a later prune while no backup runs."""
    with opened(row) as repo:
        result = repo.prune()
        stored = repo.stored_bytes()
    SnapshotRepository.objects.filter(pk=row.pk).update(stored_bytes=stored, pruned_at=timezone.now())
    refresh_totals(row)
    logger.info("repository_pruned repository_id=%s %s", row.pk, result)
    return result


def prune_node(row: SnapshotRepository) -> str:
    """The node whose worker prunes ``row``: the one whose backup root holds it, or
    for a storage target the server's node (its worker writes there already)."""
    if row.target_id is None:
        return row.node or settings.MCSITE_NODE
    return row.server.node if row.server_id else settings.MCSITE_NODE


def repository_prune_request(*, row: SnapshotRepository, actor=None, request=None, source: str = "admin") -> str:
    """Queues a prune of ``row`` on ``prune_node(row)`` (a prune reads every
    index and pack header: minutes on a big repository, never a web request's
    work). Returns the node; raises DomainError if the broker refuses."""
    node = prune_node(row)
    try:
        send_task("prune_repository", kwargs={"repository_id": row.pk}, queue=node)
    except Exception as exc:  # noqa: BLE001 — any broker failure means nothing will run it
        logger.error("prune_enqueue_failed repository_id=%s queue=%s error=%s", row.pk, node, exc)
        raise DomainError(ErrorCode.INTERNAL_ERROR,
                          f"Could not queue the prune: the broker did not accept it ({type(exc).__name__})")
    audit(actor=actor, action="repository.prune_requested", obj=row, request=request, source=source,
          detail={"server": row.server_name, "node": node})
    return node


def repository_prune_queued(*, repository_id: int) -> dict | None:
    """The task side of ``repository_prune_request``: the prune, or None when the
    row is gone; a failure is logged (it loses nothing: the next prune tries again)."""
    row = SnapshotRepository.objects.select_related("target").filter(pk=repository_id).first()
    if row is None:
        return None
    try:
        return repository_prune(row)
    except Exception as exc:  # noqa: BLE001
        logger.error("repository_prune_failed repository_id=%s error=%s", row.pk, exc)
        return None


def prune_sweep(*, with_targets: bool = True) -> int:
    """Prunes the repositories on this node's backup root, and (once, from
    beat's own copy) those on storage targets. One that fails is logged; the
    others go on. Returns how many were pruned."""
    rows = SnapshotRepository.objects.filter(target__isnull=True, node=settings.MCSITE_NODE)
    if with_targets:
        rows = rows | SnapshotRepository.objects.filter(target__isnull=False)
    done = 0
    for row in rows.select_related("target"):
        if row.target_id is None and not repository_present(row):
            continue  # no snapshot yet
        try:
            repository_prune(row)
            done += 1
        except Exception as exc:  # noqa: BLE001 — a prune that fails loses nothing; tomorrow's tries again
            logger.error("repository_prune_failed repository_id=%s error=%s", row.pk, exc)
    return done


# --- export ---------------------------------------------------------------------------

class _QueueWriter:
    """A write-only file object handing 1 MiB pieces to a bounded queue."""

    PIECE = 1024 * 1024

    def __init__(self, out: queue.Queue):
        self.out = out
        self.buffer = bytearray()
        self.cancelled = threading.Event()

    def write(self, data) -> int:
        if self.cancelled.is_set():
            raise BrokenPipeError("the download was closed")
        self.buffer += data
        while len(self.buffer) >= self.PIECE:
            self.out.put(bytes(self.buffer[:self.PIECE]))
            del self.buffer[:self.PIECE]
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if self.buffer:
            self.out.put(bytes(self.buffer))
            self.buffer.clear()


def export_chunks(record: BackupRecord):
    """The snapshot as a .tar.gz, as an iterator of byte pieces for a
    streamed download. The repository is opened first (an error here is an
    error response); the archive is written by a thread into a bounded queue
    (at most 4 MiB ahead of the client)."""
    row = record.repository
    opener = opened(row)
    repo = opener.__enter__()
    if record.snapshot_id not in set(repo.snapshots()):
        opener.__exit__(None, None, None)
        raise DomainError(ErrorCode.BACKUP_NOT_FOUND, "The snapshot is not in its repository")
    pieces: queue.Queue = queue.Queue(maxsize=4)
    writer = _QueueWriter(pieces)
    done = object()

    def produce():
        try:
            export_tar_gz(repo, record.snapshot_id, writer)
            writer.close()
        except BrokenPipeError:
            pass
        except Exception as exc:  # noqa: BLE001 — the response has started: the client sees a short download
            logger.warning("snapshot_export_failed backup_id=%s error=%s", record.pk, exc)
        finally:
            _put_unless_cancelled(pieces, writer, done)

    thread = threading.Thread(target=produce, name=f"export-{record.pk}", daemon=True)
    thread.start()

    def chunks():
        try:
            while (piece := pieces.get()) is not done:
                yield piece
        finally:
            writer.cancelled.set()
            while thread.is_alive():  # let a blocked writer see the cancel
                try:
                    pieces.get(timeout=0.1)
                except queue.Empty:
                    pass
            opener.__exit__(None, None, None)

    return chunks()


def _put_unless_cancelled(pieces: queue.Queue, writer: _QueueWriter, item) -> None:
    while not writer.cancelled.is_set():
        try:
            pieces.put(item, timeout=0.1)
            return
        except queue.Full:
            continue
