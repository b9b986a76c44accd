"""Use cases for servers. Views, admin and commands call these; they never
change Server rows themselves."""

from pathlib import Path

from django.conf import settings
from django.db import transaction

from mcsite.audit import audit
from mcsite.errors import DomainError, ErrorCode
from servers.models import Server


def servers_root() -> Path:
    return Path(settings.MCSITE_SERVERS_ROOT).resolve()


def resolve_server_directory(raw: str) -> str:
    """The folder as a path relative to the servers root, after following every
    symlink; anything resolving outside the root (or missing) is refused."""
    if not isinstance(raw, str) or not raw.strip() or "\x00" in raw:
        raise DomainError(ErrorCode.INVALID_DIRECTORY, "Directory is required")
    root = servers_root()
    candidate = Path(raw.strip())
    if not candidate.is_absolute():
        candidate = root / candidate
    try:
        resolved = candidate.resolve(strict=True)
    except (FileNotFoundError, NotADirectoryError):
        raise DomainError(ErrorCode.INVALID_DIRECTORY, "Directory does not exist inside the servers root") from None
    except (OSError, RuntimeError):
        raise DomainError(ErrorCode.INVALID_DIRECTORY, "Directory cannot be resolved") from None
    if resolved == root or not resolved.is_relative_to(root):
        raise DomainError(ErrorCode.INVALID_DIRECTORY, "Directory must be a folder inside the servers root")
    if not resolved.is_dir():
        raise DomainError(ErrorCode.INVALID_DIRECTORY, "Directory is not a folder")
    return resolved.relative_to(root).as_posix()


_EDITABLE = {
    "name", "directory", "start_command", "memory_mb", "rcon_host", "rcon_port",
    "stop_timeout", "backup_mode", "exclude_patterns", "node",
}


def _apply(server: Server, data: dict) -> None:
    for field, value in data.items():
        if field == "rcon_password":
            server.rcon_password = value
        elif field == "directory":
            server.directory = resolve_server_directory(value)
        elif field in _EDITABLE:
            setattr(server, field, value)


def _check_name_free(*, owner, name: str, exclude_pk=None) -> None:
    clash = Server.objects.filter(owner=owner, name=name)
    if exclude_pk is not None:
        clash = clash.exclude(pk=exclude_pk)
    if clash.exists():
        raise DomainError(
            ErrorCode.VALIDATION_ERROR, "You already have a server with this name",
            details={"name": ["You already have a server with this name"]},
        )


@transaction.atomic
def server_create(*, owner, data: dict, actor=None, request=None, source: str = "api") -> Server:
    server = Server(owner=owner)
    _apply(server, data)
    _check_name_free(owner=owner, name=server.name)
    server.save()
    audit(actor=actor or owner, action="server.create", obj=server, request=request, source=source)
    return server


@transaction.atomic
def server_update(*, server: Server, data: dict, actor, request=None, source: str = "api") -> Server:
    _apply(server, data)
    if "name" in data:
        _check_name_free(owner=server.owner, name=server.name, exclude_pk=server.pk)
    server.save()
    audit(
        actor=actor, action="server.update", obj=server, request=request, source=source,
        detail={"fields": sorted(k for k in data if k != "rcon_password") + (["rcon_password"] if "rcon_password" in data else [])},
    )
    return server


def server_delete(*, server: Server, delete_backups: bool, actor, request=None, source: str = "api") -> None:
    """Deletes the server, its schedule and periodic task. Its backups are kept
    (listed under the owner, no longer tied to any server) or deleted with
    their files, as the user chose."""
    from backups.services import backups_detach_or_delete  # backups builds on servers

    with transaction.atomic():
        backups_detach_or_delete(server=server, delete_files=delete_backups)
        audit(
            actor=actor, action="server.delete", obj=server, request=request, source=source,
            detail={"delete_backups": delete_backups},
        )
        schedule = getattr(server, "backup_schedule", None)
        if schedule is not None:
            from backups.services import backup_schedule_delete

            backup_schedule_delete(schedule=schedule, actor=actor, request=request, source=source)
        server.delete()
