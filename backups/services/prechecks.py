"""The checks before a run touches anything: the server folder is there and
readable, and the disk that will receive the bytes has room for them."""

import os
import shutil
from pathlib import Path

from backups import storage
from backups.engine.errors import EngineError
from backups.engine.walk import scan
from backups.services import lifecycle
from mcsite.errors import DomainError, ErrorCode
from servers import nodes
from servers.models import Node

DISK_MARGIN_BYTES = 64 * 1024 * 1024


def backup_precheck(*, server, exclude=None, needed_bytes: int | None = None) -> int:
    """The seed's pre-checks, each with its own code and message. Returns the
    size of what will be archived (the server's exclude patterns applied
    unless `exclude` says otherwise)."""
    folder = server.path
    if not folder.is_dir():
        raise DomainError(ErrorCode.SERVER_DIRECTORY_NOT_FOUND)
    if not os.access(folder, os.R_OK | os.X_OK):
        raise DomainError(ErrorCode.PERMISSION_DENIED)
    source_bytes = folder_size(folder, server.exclude_patterns if exclude is None else exclude)
    require_free_space(storage.backup_root(), needed_bytes if needed_bytes is not None else source_bytes)
    return source_bytes


def trigger_precheck(*, server) -> None:
    """The checks a trigger answers with at once. On the server's own node:
    the real ones. For a server on another game host (issue #15): from that
    node's last report — it is up, the folder is there, its backup root has
    room for about the last backup's size; the run checks exactly on the node."""
    if nodes.is_local(server.node):
        backup_precheck(server=server)
        return
    node = Node.objects.filter(name=server.node).first()
    if nodes.is_down(node):
        raise DomainError(ErrorCode.NODE_DOWN, f"Game host {server.node} is not reporting; start its worker and try again")
    entry = node.statuses.get(str(server.pk)) or {}
    if entry.get("folder") is False:
        raise DomainError(ErrorCode.SERVER_DIRECTORY_NOT_FOUND)
    from backups.models import BackupRecord

    last = (BackupRecord.objects.filter(server=server, status=BackupRecord.Status.SUCCEEDED)
            .exclude(source_bytes=None).order_by("-created_at").values_list("source_bytes", flat=True).first())
    free = node.backup_root_free
    if free is not None and free < (last or 0) + DISK_MARGIN_BYTES:
        raise DomainError(
            ErrorCode.INSUFFICIENT_DISK_SPACE,
            f"Insufficient disk space on game host {server.node}: about {(last or 0) // 2**20} MiB needed "
            f"(the last backup's size), {free // 2**20} MiB free")


def require_free_space(folder: Path, needed: int) -> None:
    free = shutil.disk_usage(folder).free
    if free < needed + DISK_MARGIN_BYTES:
        raise DomainError(
            ErrorCode.INSUFFICIENT_DISK_SPACE,
            f"Insufficient disk space: about {needed // 2**20} MiB needed, {free // 2**20} MiB free",
        )


def folder_size(folder: Path, exclude_patterns=()) -> int:
    """Bytes the archive would hold: the engine's own scan, so excluded
    paths are left out exactly as the archive leaves them out."""
    try:
        return scan(str(folder), exclude_patterns or ()).total_bytes
    except EngineError as exc:
        raise DomainError(*lifecycle.classify(exc)) from None
    except PermissionError:
        raise DomainError(ErrorCode.PERMISSION_DENIED) from None


def restore_precheck(*, server, backup, safety_backup: bool) -> None:
    """Room for what a restore writes before it can finish: the safety
    backup (the whole folder, no excludes) on the backup disk, and the
    extracted files beside the server folder. Checked before anything is
    stopped or moved."""
    extract = int(backup.source_bytes or 0)
    safety = folder_size(server.path, ()) if safety_backup and server.path.is_dir() else 0
    backup_disk, server_disk = storage.backup_root(), server.path.parent
    if os.stat(backup_disk).st_dev == os.stat(server_disk).st_dev:
        require_free_space(backup_disk, extract + safety)
    else:
        require_free_space(backup_disk, safety)
        require_free_space(server_disk, extract)
