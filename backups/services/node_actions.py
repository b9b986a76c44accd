"""What a server's node looks at for the backups of a web tier that cannot
see that host (issue #15): registered with servers.nodes, run by the node's
worker as a NodeCall, and called directly when this process is the node."""

from __future__ import annotations

import shutil

from backups import engine
from backups.models import BackupRecord
from backups.services import prechecks
from mcsite.errors import DomainError, ErrorCode
from servers import control, nodes


def folder_facts_here(server, *, paths=()) -> dict:
    """What a restore preview says about the server folder as it is now."""
    folder = server.path
    has_files = folder.is_dir() and any(folder.iterdir())
    return {
        "running": control.status(server.process_spec()).running,
        "free_bytes": shutil.disk_usage(folder.parent).free,
        "existing_paths": [p for p in paths if (folder / p).exists() or (folder / p).is_symlink()],
        "has_files": has_files,
        "excluded": engine.excluded_paths(folder, server.exclude_patterns or ())[:20] if has_files and not paths else [],
    }


def folder_facts(server, *, paths=()) -> dict:
    return nodes.ask(server, "restore_facts", {"paths": list(paths)},
                     local=lambda: folder_facts_here(server, paths=paths))


def restore_precheck(server, backup: BackupRecord, *, safety_backup: bool) -> None:
    """Room for the restore, checked on the server's node (the run checks again there)."""
    nodes.ask(server, "restore_precheck", {"backup_id": backup.pk, "safety_backup": safety_backup},
              local=lambda: prechecks.restore_precheck(server=server, backup=backup, safety_backup=safety_backup))


def _restore_facts(server, call) -> dict:
    return folder_facts_here(server, paths=call.arguments.get("paths") or ())


def _restore_precheck(server, call) -> dict:
    backup = BackupRecord.objects.filter(pk=call.arguments.get("backup_id")).first()
    if backup is None:
        raise DomainError(ErrorCode.BACKUP_NOT_FOUND)
    prechecks.restore_precheck(server=server, backup=backup, safety_backup=bool(call.arguments.get("safety_backup")))
    return {}


nodes.register_action("restore_facts", _restore_facts)
nodes.register_action("restore_precheck", _restore_precheck)
