"""Where a restore or a download reads a backup from (issue #13 item 4).

The local file when it is there; otherwise a verified off-site copy (the
local file dropped by emergency cleanup, deleted, or a record rebuilt by
``import_backups``). A copy is never downloaded to the local disk first: a
restore streams it straight into the staging extraction
(``engine.extract_stream_to_staging``), which checks the count and SHA-256
of the bytes read against the record before anything is swapped; a download
is a redirect to a short-lived signed URL (S3) or a streamed proxy.

Preference among verified copies: a local/mounted path first (fastest, no
network), then SFTP, then S3; the most recently verified within a kind.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings

from backups import engine, events, storage
from backups.alerts import alert_open, owner_emails
from backups.engine.errors import BACKUP_CORRUPTED, EngineError
from backups.models import BackupRecord, OffsiteCopy
from backups.offsite import OffsiteError, open_target
from backups.services import snapshots
from mcsite.errors import DomainError, ErrorCode

logger = logging.getLogger("mcsite.backups")

SIGNED_URL_SECONDS = 300
_KIND_ORDER = {"local": 0, "sftp": 1, "s3": 2}


@dataclass(frozen=True)
class Source:
    """``copy`` is None when the local file is read."""

    record: BackupRecord
    copy: OffsiteCopy | None = None
    snapshot: bool = False  # a snapshot in the server's repository (issue #14)

    @property
    def is_local(self) -> bool:
        return self.copy is None

    def describe(self) -> dict:
        if self.snapshot:
            row = self.record.repository
            return {"kind": "repository", "target": row.target.name if row.target_id else None}
        if self.copy is None:
            return {"kind": "local"}
        return {"kind": "copy", "target": self.copy.target.name, "target_kind": self.copy.target.kind,
                "remote_name": self.copy.remote_name}


def verified_copies(record: BackupRecord) -> list[OffsiteCopy]:
    copies = list(OffsiteCopy.objects.filter(backup=record, status=OffsiteCopy.Status.VERIFIED, target__enabled=True)
                  .exclude(remote_name="").select_related("target"))
    copies.sort(key=lambda c: (_KIND_ORDER.get(c.target.kind, 9), -(c.verified_at.timestamp() if c.verified_at else 0)))
    return copies


def local_file(record: BackupRecord) -> bool:
    """The backup's own file can be read where the work happens: looked at
    when this process is the record's node; for a record on another game
    host (issue #15) the database says so, and that node checks again when
    it reads the file."""
    if not record.storage_path:
        return False
    node = storage.node_of(record)
    if node == settings.MCSITE_NODE:
        return storage.file_present(record)
    # Read on its node only: a server moved to another host since restores from a copy.
    read_there = record.server_id is None or record.server.node == node
    return read_there and record.local_removed_at is None and record.status in (
        BackupRecord.Status.SUCCEEDED, BackupRecord.Status.FAILED)


def snapshot_readable(record: BackupRecord) -> bool:
    """A snapshot whose repository can be read where the work happens: on a
    storage target (anywhere), or on the backup root of its node (there)."""
    row = record.repository
    if row.target_id is not None:
        return True
    node = row.node or storage.node_of(record)
    if node == settings.MCSITE_NODE:
        return snapshots.repository_present(row)
    return record.server_id is None or record.server.node == node


def source_for(record: BackupRecord) -> Source | None:
    """The local file if present, else the best verified copy, else None.
    A snapshot: its repository."""
    if record.is_snapshot:
        return Source(record, snapshot=True) if snapshot_readable(record) else None
    if local_file(record):
        return Source(record)
    copies = verified_copies(record)
    return Source(record, copies[0]) if copies else None


def no_download_reason(record: BackupRecord) -> str:
    """Why a backup without a verified copy cannot be downloaded from here."""
    node = storage.node_of(record)
    if record.is_snapshot and record.repository.target_id is None and node != settings.MCSITE_NODE:
        return (f"This snapshot's repository is on game host {node}, which this web server cannot read. "
                "Put the repository of an incremental server on a storage target to download from here.")
    if record.storage_path and record.local_removed_at is None and node != settings.MCSITE_NODE:
        return (f"The backup file is on game host {node}, which this web server cannot read, and it has no "
                "verified off-site copy. Add a storage target (Admin → Storage targets) so that backups are "
                "copied there; downloads then come from the copy.")
    return "The backup file is not there"


def available(record: BackupRecord) -> bool:
    return source_for(record) is not None


def domain_error(exc: OffsiteError, copy: OffsiteCopy) -> DomainError:
    """An OffsiteError while reading a copy, as the user is told it."""
    where = f"the copy on target {copy.target.name}"
    if exc.code == "NOT_FOUND":
        return DomainError(ErrorCode.BACKUP_NOT_FOUND, f"The backup file is not here and {where} is missing")
    if exc.code in ("SIZE_MISMATCH", "CHECKSUM_MISMATCH"):
        return DomainError(ErrorCode.BACKUP_CORRUPTED, f"Backup is corrupted: {where} differs ({exc.message})")
    return DomainError(ErrorCode.IO_ERROR, f"Could not read {where}: {exc.code}: {exc.message}")


@contextmanager
def opened_copy(copy: OffsiteCopy, offset: int = 0):
    """(target, stream) of a copy; both closed on the way out. OffsiteErrors
    raised while opening become DomainErrors."""
    try:
        target = open_target(copy.target.config())
    except OffsiteError as exc:
        raise domain_error(exc, copy) from None
    try:
        try:
            stream = target.open_read(copy.remote_name, offset=offset)
        except OffsiteError as exc:
            raise domain_error(exc, copy) from None
        try:
            yield target, stream
        finally:
            stream.close()
    finally:
        target.close()


def require_copy_present(copy: OffsiteCopy) -> None:
    """A cheap look (no download) before a restore is queued: the copy is
    still on its target. Its bytes are checked while they stream."""
    try:
        with open_target(copy.target.config()) as target:
            if not target.exists(copy.remote_name):
                raise OffsiteError("NOT_FOUND", f"{copy.remote_name} is not on the target")
    except OffsiteError as exc:
        raise domain_error(exc, copy) from None


def extract(source: Source, target_dir, *, keyring, progress=None, on_staging=None, only=None):
    """The engine's staged extraction from the source: the local file, or the
    copy streamed (count and SHA-256 of the bytes checked against the
    record). A copy whose bytes differ is marked failed, logged and alerted,
    and the error raised is BACKUP_CORRUPTED."""
    record = source.record
    if source.snapshot:
        return snapshots.extract_to_staging(record, target_dir, progress=progress, on_staging=on_staging, only=only)
    if source.is_local:
        return engine.extract_to_staging(storage.absolute_path(record.storage_path), target_dir, keyring=keyring,
                                         progress=progress, on_staging=on_staging, only=only)
    copy = source.copy
    try:
        with opened_copy(copy) as (_target, stream):
            return engine.extract_stream_to_staging(
                stream, target_dir, size=record.size_bytes, sha256=record.sha256 or None,
                name=f"{copy.target.name}:{copy.remote_name}", keyring=keyring, progress=progress,
                on_staging=on_staging, only=only)
    except OffsiteError as exc:
        raise domain_error(exc, copy) from None
    except EngineError as exc:
        if exc.code == BACKUP_CORRUPTED:
            copy_corrupted(copy, exc.message)
        raise


def copy_corrupted(copy: OffsiteCopy, why: str) -> None:
    """The copy no longer matches its backup: not used again, said once."""
    record = copy.backup
    OffsiteCopy.objects.filter(pk=copy.pk).update(status=OffsiteCopy.Status.FAILED, error_code="CHECKSUM_MISMATCH",
                                                  error_message=f"Read back for a restore: {why}"[:2000])
    events.log_event("corruption_detected", server=record.server, backup=record, method="offsite_stream",
                     target=copy.target.name)
    alert_open(kind="corruption", subject=f"offsite-copy:{copy.pk}",
               title=f"Corrupt off-site copy of {record.filename}",
               body=f"The copy of {record.filename} on target {copy.target.name} does not match the backup ({why}); "
                    "it cannot be restored from.",
               recipients_extra=owner_emails(record.server) if record.server else ())


def signed_url(copy: OffsiteCopy, *, filename: str) -> str | None:
    """A SIGNED_URL_SECONDS URL that downloads the copy as ``filename`` (S3),
    or None for a target that has none (a folder, SFTP: streamed instead)."""
    if copy.target.kind != "s3":
        return None
    try:
        with open_target(copy.target.config()) as target:
            return target.signed_url(copy.remote_name, SIGNED_URL_SECONDS, filename=filename)
    except OffsiteError as exc:
        raise domain_error(exc, copy) from None


class CopyStream:
    """A copy as an iterable of 1 MiB chunks for a streamed download. Opened
    at once (a missing copy or an unreachable target is an error response,
    not a cut-off download); the target is closed when the response is."""

    CHUNK = 1024 * 1024

    def __init__(self, copy: OffsiteCopy):
        self.copy = copy
        self.size = int(copy.size_bytes if copy.size_bytes is not None else copy.backup.size_bytes or 0)
        try:
            self._target = open_target(copy.target.config())
        except OffsiteError as exc:
            raise domain_error(exc, copy) from None
        try:
            self._stream = self._target.open_read(copy.remote_name)
        except OffsiteError as exc:
            self._target.close()
            raise domain_error(exc, copy) from None

    def __iter__(self):
        try:
            while chunk := self._stream.read(self.CHUNK):
                yield chunk
        except OffsiteError as exc:  # the response has started: the client sees a short download
            logger.warning("offsite_download_cut copy_id=%s code=%s", self.copy.pk, exc.code)
        finally:
            self.close()

    def close(self) -> None:
        stream, self._stream = getattr(self, "_stream", None), None
        if stream is not None:
            stream.close()
        target, self._target = getattr(self, "_target", None), None
        if target is not None:
            target.close()
