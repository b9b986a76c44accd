"""Restore (SPEC §7), the front door: preview, confirm and rollback. They
check everything a user can be told at once (the backup is theirs and
intact, its key is known, there is room) and queue the run, which lives in
restore_run.py."""

import logging
import shutil
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from backups import engine, events, storage, verification_display
from backups.alerts import alert_open, owner_emails
from backups.engine.errors import EngineError
from backups.models import ACTIVE_STATUSES, BackupRecord, RestoreRequest
from backups.services import config as config_service
from backups.services import copy_source, lifecycle, node_actions, snapshots
from backups.services.contents import contents_select
from backups.services.prechecks import restore_precheck
from mcsite.audit import audit
from mcsite.errors import DomainError, ErrorCode
from servers import nodes
from servers import services as server_services
from servers.models import Server

logger = logging.getLogger("mcsite.backups")
OLD_BACKUP_DAYS = 7
_RESTORABLE = (BackupRecord.Status.SUCCEEDED,)


def restorable_backup(*, server: Server, backup_filename) -> BackupRecord:
    """One of this server's own backups, by its file name; anything else —
    a path, `..`, another server's file, a deleted one — is BACKUP_NOT_FOUND."""
    if not isinstance(backup_filename, str) or not backup_filename or "/" in backup_filename or "\\" in backup_filename:
        raise DomainError(ErrorCode.BACKUP_NOT_FOUND)
    record = BackupRecord.objects.filter(server=server, filename=backup_filename, status__in=_RESTORABLE).first()
    if record is None or not copy_source.available(record):  # the local file, or a verified off-site copy
        raise DomainError(ErrorCode.BACKUP_NOT_FOUND)
    return record


def restore_preview(*, server: Server, backup_filename, keep_excluded: bool = True, paths=None) -> dict:
    """What a restore would do, reading the backup's real contents. Changes
    nothing. With `paths` (a partial restore) it names what will be
    replaced, with sizes and counts from the backup's file list."""
    record = restorable_backup(server=server, backup_filename=backup_filename)
    _require_key(record)
    parts = contents_select(record=record, paths=paths)
    source = copy_source.source_for(record)
    contents = _contents(record, local=source.is_local and not source.snapshot
                         and storage.node_of(record) == settings.MCSITE_NODE)
    # The folder as it is now, looked at on the server's node (issue #15).
    facts = node_actions.folder_facts(server, paths=[p["path"] for p in parts])
    running = facts["running"]
    needed = sum(p["size_bytes"] for p in parts) if parts else contents["total_bytes"]
    free = facts["free_bytes"]
    warnings = []
    if not source.is_local:
        warnings.append(f"The local file of this backup is gone: it will be read from its verified copy on target "
                        f"{source.copy.target.name} ({source.copy.target.get_kind_display()}), streamed straight "
                        "into the restore and checked against the backup's SHA-256.")
    if running:
        warnings.append("The server is running and will be stopped during the restore, then started again.")
    if parts:
        here = facts["existing_paths"]
        warnings.append(f"Only {', '.join(p['path'] for p in parts)} will be replaced from the backup"
                        + (f" (the current {', '.join(here)} goes into the safety backup first)" if here else "")
                        + "; everything else in the server folder stays as it is.")
    elif facts["has_files"]:
        warnings.append("The current files in the server folder will be replaced. A safety backup is taken first, "
                        "so the restore can be rolled back.")
        skipped = facts["excluded"]
        if skipped and keep_excluded:
            warnings.append(f"Excluded from backups, so not in this one, and kept from the current folder: "
                            f"{', '.join(skipped[:20])}. Restore with keep_excluded false to replace everything.")
        elif skipped:
            warnings.append(f"Excluded from backups, so not in this one: {', '.join(skipped[:20])}. With "
                            "keep_excluded false they are removed; they stay in the safety backup.")
    age = timezone.now() - record.taken_at
    if age > timedelta(days=OLD_BACKUP_DAYS):
        warnings.append(f"This backup is {age.days} days old: changes made since then will be lost.")
    if record.verification_passed is None:
        warnings.append("This backup has not been verified.")
    elif record.verification_passed is False:
        why = verification_display.failure_summary(record.verification)
        warnings.append(f"This backup failed verification (quality {record.quality_score}, {record.quality_level})"
                        + (f": {why}." if why else "."))
    if needed + 64 * 2**20 > free:
        warnings.append(f"Not enough free space: about {needed // 2**20} MiB needed, {free // 2**20} MiB free.")
    if not contents["world_name"]:
        # Verification tells a world it could not read from one that is not there.
        unreadable = verification_display.world_read_error(record.verification)
        damaged = verification_display.world_check_error(record.verification)
        if unreadable:
            warnings.append(f"The world's level.dat could not be read: {unreadable}")
        elif damaged:
            warnings.append(f"The world could not be read: {damaged}")
        else:
            warnings.append("No Minecraft world (level.dat) was found in this backup.")
    return {
        "backup": record,
        "paths": parts,
        "contents": contents,
        "space": {"needed_bytes": needed, "free_bytes": free},
        "source": source.describe(),
        "server_running": running,
        "warnings": warnings,
    }


def _contents(record: BackupRecord, *, local: bool = True) -> dict:
    """What the backup holds. Verification read the archived copy (level.dat
    included) and recorded it; only a backup without that record is read
    again now — a preview should not decompress a whole world each time.
    A backup read from an off-site copy is described from what is stored
    (the record's fields, as import_backups rebuilt them from the sidecar)."""
    worlds = (record.verification or {}).get("worlds")
    if not local:
        return {"file_count": record.file_count or 0, "total_bytes": int(record.source_bytes or 0),
                "world_name": record.world_name or None, "minecraft_version": record.minecraft_version or None,
                "worlds": list(worlds or ([record.world_name] if record.world_name else []))}
    if record.file_count is not None and worlds is not None and record.source_bytes is not None:
        return {"file_count": record.file_count, "total_bytes": record.source_bytes,
                "world_name": record.world_name or None, "minecraft_version": record.minecraft_version or None,
                "worlds": worlds}
    try:
        info = engine.inspect_archive(storage.absolute_path(record.storage_path),
                                      keyring=config_service.decryption_keyring())
    except EngineError as exc:
        raise DomainError(*lifecycle.classify(exc, restore=True)) from None
    return {"file_count": info.file_count, "total_bytes": int(info.total_bytes or 0),
            "world_name": info.world_name or None, "minecraft_version": info.minecraft_version or None,
            "worlds": list(info.worlds or [])}


def _require_key(record: BackupRecord) -> None:
    """An encrypted backup whose key or password is no longer configured
    cannot be restored: say so before anything is stopped."""
    if record.encrypted and record.key_fingerprint and not record.is_snapshot:
        known = {spec.fingerprint for spec in config_service.decryption_keyring().specs}
        if record.key_fingerprint not in known:
            raise DomainError(ErrorCode.DECRYPTION_FAILED,
                              "This backup was encrypted with a key or password that is no longer configured")


def restore_request(*, server: Server, backup_filename, actor, request=None, source: str = "api",
                    enqueue: bool = True, keep_excluded: bool = True, paths=None) -> RestoreRequest:
    """Confirms a restore: refuses a corrupt backup before touching anything,
    claims the server (one backup or restore at a time) and queues the run.
    With `keep_excluded` (the default) what backups leave out (the server's
    exclude patterns: logs/, crash-reports/, …) is kept from the current
    folder; without it the folder becomes exactly the backup. With `paths`
    only those (checked against the backup's file list) are replaced and
    everything else stays; the safety backup is still of the whole folder."""
    record = restorable_backup(server=server, backup_filename=backup_filename)
    _require_key(record)
    chosen = [p["path"] for p in contents_select(record=record, paths=paths)]
    _checks_before_queueing(record, server)
    return _claim_and_queue(server=server, backup=record, kind=RestoreRequest.Kind.RESTORE, actor=actor,
                            request=request, source=source, enqueue=enqueue, keep_excluded=bool(keep_excluded),
                            paths=chosen)


def restore_rollback(*, restore: RestoreRequest, actor, request=None, source: str = "api",
                     enqueue: bool = True) -> RestoreRequest:
    """Undoes a finished restore by restoring its safety backup (after taking
    one of the folder as it is now, so the rollback can be undone too)."""
    if restore.kind != RestoreRequest.Kind.RESTORE or restore.status != RestoreRequest.Status.SUCCEEDED:
        raise DomainError(ErrorCode.VALIDATION_ERROR, "Only a finished restore can be rolled back")
    safety = restore.safety_backup
    if safety is None or safety.status != BackupRecord.Status.SUCCEEDED or not copy_source.available(safety):
        raise DomainError(ErrorCode.BACKUP_NOT_FOUND, "The safety backup of this restore is not available")
    _checks_before_queueing(safety, restore.server)
    return _claim_and_queue(server=restore.server, backup=safety, kind=RestoreRequest.Kind.ROLLBACK, actor=actor,
                            request=request, source=source, rollback_of=restore, enqueue=enqueue)


# What a copy takes from the server the backup is of (name and folder are its own).
COPIED_SETTINGS = ("memory_mb", "rcon_port", "stop_timeout", "backup_mode", "exclude_patterns", "node", "announce",
                   "announce_countdown", "announce_message", "announce_done_message", "announce_live")
# Chosen by an administrator for the source server (only they may set them): carried as they are.
CARRIED_AS_IS = ("start_command", "rcon_host")


def restore_copy(*, record: BackupRecord, name, directory, actor, request=None, source: str = "api",
                 enqueue: bool = True) -> RestoreRequest:
    """Restores a backup into a new folder: a new server owned by `actor`
    (stopped, the source server's settings but its own name and folder, no
    schedule) whose folder does not exist yet or is empty, confined to the
    servers root like any server folder; then a restore of kind `copy`
    extracts the backup into it (nothing to stop, no safety backup)."""
    if record.status != BackupRecord.Status.SUCCEEDED or not copy_source.available(record):
        raise DomainError(ErrorCode.BACKUP_NOT_FOUND)
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > 100:
        raise DomainError(ErrorCode.VALIDATION_ERROR, "A name of 1 to 100 characters is required",
                          details={"name": ["A name of 1 to 100 characters is required."]})
    _require_key(record)
    origin = record.server
    node = origin.node if origin is not None else storage.node_of(record)
    if not nodes.is_local(node):
        return _restore_copy_on_node(record=record, origin=origin, node=node, name=name.strip(),
                                     directory=directory, actor=actor, request=request, source=source,
                                     enqueue=enqueue)
    if origin is not None:
        require_intact(record, origin)
    relative, created = server_services.new_server_directory(directory, owner=actor)
    try:
        with transaction.atomic():
            data = _copy_data(origin, name.strip(), relative)
            server = server_services.server_create(owner=actor, data=data, actor=actor, request=request, source=source)
            if origin is not None:
                carried = {field: getattr(origin, field) for field in CARRIED_AS_IS}
                Server.objects.filter(pk=server.pk).update(**carried)
                for field, value in carried.items():
                    setattr(server, field, value)
            restore_precheck(server=server, backup=record, safety_backup=False)
            return _claim_and_queue(server=server, backup=record, kind=RestoreRequest.Kind.COPY, actor=actor,
                                    request=request, source=source, enqueue=enqueue, keep_excluded=False)
    except BaseException:
        if created:
            shutil.rmtree(server_services.servers_root() / relative, ignore_errors=True)
        raise


def _copy_data(origin, name: str, relative: str) -> dict:
    data = {"name": name, "directory": relative}
    if origin is not None:
        data.update({field: getattr(origin, field) for field in COPIED_SETTINGS})
        if origin.has_rcon_password:
            data["rcon_password"] = origin.rcon_password
    return data


def _restore_copy_on_node(*, record, origin, node: str, name: str, directory, actor, request, source,
                          enqueue: bool) -> RestoreRequest:
    """restore_copy for a server on another game host (issue #15): that node
    makes the new folder; the server is saved (committed, so the node sees
    it) and the node checks the room; if anything is refused the server and
    the folder it made go again."""
    made = nodes.ask_node(node, "new_folder", {"directory": directory, "owner_id": getattr(actor, "pk", None)})
    relative, created = made["directory"], made["created"]
    server = None
    try:
        data = _copy_data(origin, name, relative)
        data["node"] = node
        server = server_services.server_create(owner=actor, data=data, actor=actor, request=request, source=source)
        if origin is not None:
            Server.objects.filter(pk=server.pk).update(**{field: getattr(origin, field) for field in CARRIED_AS_IS})
            server.refresh_from_db()
        node_actions.restore_precheck(server, record, safety_backup=False)  # an empty folder: no safety backup
        return _claim_and_queue(server=server, backup=record, kind=RestoreRequest.Kind.COPY, actor=actor,
                                request=request, source=source, enqueue=enqueue, keep_excluded=False)
    except BaseException:
        if server is not None:
            Server.objects.filter(pk=server.pk).delete()
        if created:
            try:
                nodes.ask_node(node, "remove_new_folder", {"directory": relative})
            except DomainError:
                logger.warning("copy_folder_left node=%s directory=%s", node, relative)
        raise


def _checks_before_queueing(record: BackupRecord, server: Server) -> None:
    """The backup still matches its checksum and the disks have room. On the
    server's own node both are checked here; for a server on another game
    host (issue #15) the room is checked by that node now, and the checksum
    by the restore run on that node, before anything is stopped or moved."""
    if nodes.is_local(server.node):
        require_intact(record, server)
        restore_precheck(server=server, backup=record, safety_backup=True)
        return
    source = copy_source.source_for(record)
    if source is None:
        raise DomainError(ErrorCode.BACKUP_NOT_FOUND)
    if not source.is_local:
        copy_source.require_copy_present(source.copy)
    node_actions.restore_precheck(server, record, safety_backup=True)


def require_intact(record: BackupRecord, server: Server) -> None:
    """The local file still matches its SHA-256. A backup read from an
    off-site copy is checked while it streams (copy_source.extract); here
    only that the copy is still on its target."""
    source = copy_source.source_for(record)
    if source is None:
        raise DomainError(ErrorCode.BACKUP_NOT_FOUND)
    if not source.is_local:
        copy_source.require_copy_present(source.copy)
        return
    if source.snapshot:
        try:
            snapshots.require_intact(record)
        except DomainError as exc:
            if exc.code == ErrorCode.BACKUP_CORRUPTED:
                _corrupt(record, server, "is damaged in its repository")
            raise
        return
    sha256, _ = engine.file_digests(storage.absolute_path(record.storage_path))
    if record.sha256 and sha256 != record.sha256:
        _corrupt(record, server, "no longer matches its SHA-256")
        raise DomainError(ErrorCode.BACKUP_CORRUPTED, "Backup is corrupted: its checksum no longer matches")


def _corrupt(record: BackupRecord, server: Server, why: str) -> None:
    events.log_event("corruption_detected", server=server, backup=record, method="checksum")
    alert_open(kind="corruption", subject=f"backup:{record.pk}", title=f"Corrupt backup {record.filename}",
               body=f"{record.filename} of {server.name} {why}; it cannot be restored.",
               recipients_extra=owner_emails(server))


def _claim_and_queue(*, server, backup, kind, actor, request, source, rollback_of=None, enqueue=True,
                     keep_excluded=True, paths=()) -> RestoreRequest:
    try:
        with transaction.atomic():
            Server.objects.select_for_update().filter(pk=server.pk).first()
            if BackupRecord.objects.filter(server=server, status__in=ACTIVE_STATUSES).exists():
                raise DomainError(ErrorCode.BACKUP_IN_PROGRESS)
            restore = RestoreRequest.objects.create(
                server=server, kind=kind, backup=backup, backup_filename=backup.filename, rollback_of=rollback_of,
                requested_by=actor if getattr(actor, "is_authenticated", False) else None, phase="queued",
                keep_excluded=keep_excluded, paths=list(paths),
            )
    except IntegrityError:
        raise DomainError(ErrorCode.RESTORE_IN_PROGRESS) from None
    detail = {"server_id": server.pk, "backup": backup.filename, "keep_excluded": keep_excluded}
    if paths:
        detail["paths"] = list(paths)[:20]
    audit(actor=actor, action=f"restore.{kind}", obj=restore, request=request, source=source, detail=detail)
    if enqueue:
        lifecycle.queue_after_commit(restore, "run_restore", event="restore_failed")
    return restore
