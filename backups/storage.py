"""Where backup files live: <MCSITE_BACKUP_ROOT>/server-<id>/<filename>.
Every path is built here and checked to stay inside the backup root."""

import logging
import os
from pathlib import Path

from django.conf import settings

logger = logging.getLogger("mcsite.backups")


def backup_root() -> Path:
    root = Path(settings.MCSITE_BACKUP_ROOT).resolve()
    root.mkdir(parents=True, exist_ok=True)
    return root


def server_backup_dir(server_id: int) -> Path:
    folder = backup_root() / f"server-{int(server_id)}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def absolute_path(storage_path: str) -> Path:
    """The file of a record; refuses anything that would leave the backup root."""
    if not storage_path:
        raise ValueError("backup has no file")
    root = backup_root()
    path = (root / storage_path).resolve()
    if not path.is_relative_to(root) or path == root:
        raise ValueError("backup path leaves the backup root")
    return path


def relative_path(path: Path) -> str:
    return Path(path).resolve().relative_to(backup_root()).as_posix()


def node_of(record) -> str:
    """The game host whose backup root holds the record's file (issue #15)."""
    if record.node:
        return record.node
    if record.server_id:
        return record.server.node
    return settings.MCSITE_NODE


def file_visible_here(record) -> bool:
    """The file is in this process's backup root: this process is the
    record's node (another host's backup root is never looked at) and the
    file is there."""
    return node_of(record) == settings.MCSITE_NODE and file_present(record)


def file_present(record) -> bool:
    try:
        return absolute_path(record.storage_path).is_file()
    except ValueError:
        return False


def remove_backup_file(record) -> bool:
    try:
        path = absolute_path(record.storage_path)
    except ValueError:
        return False
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False
