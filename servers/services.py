"""Use cases for servers. Views, admin and commands call these; they never
change Server rows themselves."""

import os
import re
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction

from mcsite.audit import audit
from mcsite.errors import DomainError, ErrorCode
from mcsite.paths import scrub_paths
from servers.announcements import AnnouncementError, check_message, normalise_countdown
from servers import nodes
from servers.models import Server


def servers_root() -> Path:
    return Path(settings.MCSITE_SERVERS_ROOT).resolve()


UNAVAILABLE_DIRECTORY = ("Directory must be an existing folder inside the servers root that no other server uses")


def _overlaps(a: str, b: str) -> bool:
    """Two folders relative to the servers root: the same, or one inside the other."""
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def _mcsite_folders() -> tuple[list[Path], list[Path]]:
    """mcsite's own folders: ones a server folder may neither be, contain nor
    lie inside (backups, run and log folders), and ones it may not contain
    (the project itself with its var/ folder: secret key, database, broker)."""
    both = [settings.MCSITE_BACKUP_ROOT, settings.MCSITE_RUN_DIR, settings.MCSITE_LOG_DIR]
    contained = [getattr(settings, "BASE_DIR", None), getattr(settings, "STATIC_ROOT", None)]
    database = settings.DATABASES.get("default", {})
    if "sqlite" in database.get("ENGINE", "") and str(database.get("NAME", "")).startswith("/"):
        contained.append(database["NAME"])
    resolve = lambda paths: [Path(p).resolve() for p in paths if p]  # noqa: E731
    return resolve(both), resolve(contained)


def _kept_backups_block(relative: str, owner) -> bool:
    """Another user's deleted server had this folder (or one inside or around
    it) and its backups were kept: the folder still holds that user's world."""
    from backups.models import BackupRecord  # backups builds on servers

    if owner is not None and getattr(owner, "is_superuser", False):
        return False  # an administrator sees those backups anyway
    kept = (BackupRecord.objects.filter(server__isnull=True).exclude(status=BackupRecord.Status.DELETED)
            .exclude(server_directory="").values_list("server_directory", "owner_id").distinct())
    owner_id = getattr(owner, "pk", None)
    return any(_overlaps(relative, folder) for folder, kept_owner in kept if owner_id is None or kept_owner != owner_id)


def resolve_server_directory(raw: str, *, exclude_pk: int | None = None, owner=None, node: str | None = None) -> str:
    """The folder as a path relative to the servers root of the server's node
    (``node``; this process's own when None), after following every symlink.
    Refused: anything resolving outside the root, the root itself, a missing
    folder, a folder any part of whose path starts with a dot (mcsite's own
    leftovers beside a server folder, `.x.restore-…`, `.x.pre-restore-…`,
    `.x.failed-restore-…`, `.x.previous-…`, are all dot-named), mcsite's own
    folders, a folder that is, contains or lies inside another server's
    folder on the same node, and the folder of another user's deleted server
    while its kept backups exist (`owner` is who the server will belong to).
    Missing and taken get the same message, so the names of other users'
    folders cannot be probed.

    The folder is looked at on its node (issue #15): here when this process
    is that node, else by a ``check_folder`` call to the node's worker; the
    rules about other servers are the database's, checked here."""
    node = node or settings.MCSITE_NODE
    if not isinstance(raw, str) or not raw.strip() or "\x00" in raw:
        raise DomainError(ErrorCode.INVALID_DIRECTORY, "Directory is required")
    if nodes.is_local(node):
        relative = resolve_directory_on_disk(raw)
    else:
        relative = _checked_on_node(node, raw)
    check_directory_free(relative, node=node, exclude_pk=exclude_pk, owner=owner)
    return relative


_FOLDER_CHECKS: dict = {}  # (node, raw) -> (relative, monotonic time): what a node said a moment ago
_FOLDER_CHECK_SECONDS = 60


def _checked_on_node(node: str, raw: str) -> str:
    """The node's answer for the folder; a form that checked it and the
    service that saves it moments later ask the node once (the second ask
    may sit inside a transaction, where the node could not see a new call)."""
    now = time.monotonic()
    known = _FOLDER_CHECKS.get((node, raw))
    if known is not None and now - known[1] < _FOLDER_CHECK_SECONDS:
        return known[0]
    call = nodes.call_outcome(nodes.node_call(node=node, action="check_folder", arguments={"directory": raw}))
    if not call.finished:
        raise DomainError(ErrorCode.NODE_DOWN, f"Game host {node} did not answer in time; try again")
    relative = call.result["directory"]
    if len(_FOLDER_CHECKS) > 1000:
        _FOLDER_CHECKS.clear()
    _FOLDER_CHECKS[(node, raw)] = (relative, now)
    return relative


def resolve_directory_on_disk(raw: str) -> str:
    """The part of resolve_server_directory that looks at the disk: run on
    the folder's node only."""
    if not isinstance(raw, str) or not raw.strip() or "\x00" in raw:
        raise DomainError(ErrorCode.INVALID_DIRECTORY, "Directory is required")
    root = servers_root()
    candidate = Path(raw.strip())
    if not candidate.is_absolute():
        candidate = root / candidate
    try:
        resolved = candidate.resolve(strict=True)
    except (OSError, RuntimeError):
        raise DomainError(ErrorCode.INVALID_DIRECTORY, UNAVAILABLE_DIRECTORY) from None
    if resolved == root or not resolved.is_relative_to(root):
        raise DomainError(ErrorCode.INVALID_DIRECTORY, "Directory must be a folder inside the servers root")
    if not resolved.is_dir():
        raise DomainError(ErrorCode.INVALID_DIRECTORY, UNAVAILABLE_DIRECTORY)
    relative_path = resolved.relative_to(root)
    if any(part.startswith(".") for part in relative_path.parts):
        raise DomainError(ErrorCode.INVALID_DIRECTORY, UNAVAILABLE_DIRECTORY)
    both, contained = _mcsite_folders()
    if any(reserved.is_relative_to(resolved) or resolved.is_relative_to(reserved) for reserved in both):
        raise DomainError(ErrorCode.INVALID_DIRECTORY, UNAVAILABLE_DIRECTORY)
    if any(reserved.is_relative_to(resolved) for reserved in contained):
        raise DomainError(ErrorCode.INVALID_DIRECTORY, UNAVAILABLE_DIRECTORY)
    return relative_path.as_posix()


def check_directory_free(relative: str, *, node: str, exclude_pk: int | None = None, owner=None) -> None:
    """The database's rules for a folder on ``node``: no other server there
    is, contains or lies inside it; no kept backups of another user's."""
    others = Server.objects.filter(node=node).exclude(pk=exclude_pk).values_list("directory", "owner_id", "name")
    clashes = [(other, owner_id, name) for other, owner_id, name in others if _overlaps(relative, other)]
    owner_id = getattr(owner, "pk", None)
    own = [(other, name) for other, clash_owner, name in clashes if owner_id is not None and clash_owner == owner_id]
    if own:
        # The caller's own server: naming it tells them nothing they cannot see.
        other, name = own[0]
        where = ("already uses this folder" if other == relative else
                 "has its folder inside this one" if other.startswith(relative + "/") else
                 "already uses the folder this one is inside")
        raise DomainError(ErrorCode.INVALID_DIRECTORY, f"Your server “{name}” {where} ({other}); "
                                                       "each server needs a folder of its own")
    if clashes:
        raise DomainError(ErrorCode.INVALID_DIRECTORY, UNAVAILABLE_DIRECTORY)
    if _kept_backups_block(relative, owner):
        raise DomainError(ErrorCode.INVALID_DIRECTORY, UNAVAILABLE_DIRECTORY)


NEW_DIRECTORY_TAKEN = "Directory must be a new (or empty) folder inside the servers root that no other server uses"


def new_server_directory(raw: str, *, owner) -> tuple[str, bool]:
    """A folder for a server made from a backup (a copy of a world): it must
    not exist yet, or be empty, and passes every rule of
    `resolve_server_directory` once made. Its parent must exist. Returns the
    folder relative to the servers root and whether it was created here (the
    caller removes it again if what follows fails)."""
    if not isinstance(raw, str) or not raw.strip() or "\x00" in raw:
        raise DomainError(ErrorCode.INVALID_DIRECTORY, "Directory is required")
    root = servers_root()
    candidate = Path(raw.strip())
    candidate = candidate if candidate.is_absolute() else root / candidate
    try:
        parent = candidate.parent.resolve(strict=True)
    except (OSError, RuntimeError):
        raise DomainError(ErrorCode.INVALID_DIRECTORY, NEW_DIRECTORY_TAKEN) from None
    if not parent.is_dir() or not (parent == root or parent.is_relative_to(root)) or candidate.name in ("", ".", ".."):
        raise DomainError(ErrorCode.INVALID_DIRECTORY, "Directory must be a folder inside the servers root")
    folder = parent / candidate.name
    relative = folder.relative_to(root).as_posix()
    # Checked before anything is made: nothing is created inside another server's folder.
    if any(part.startswith(".") for part in relative.split("/")) or any(
            _overlaps(relative, other) for other in Server.objects.filter(node=settings.MCSITE_NODE)
            .values_list("directory", flat=True)):
        raise DomainError(ErrorCode.INVALID_DIRECTORY, NEW_DIRECTORY_TAKEN)
    created = False
    if not os.path.lexists(folder):
        try:
            folder.mkdir(mode=0o755)
        except OSError:
            raise DomainError(ErrorCode.INVALID_DIRECTORY, NEW_DIRECTORY_TAKEN) from None
        created = True
    elif folder.is_symlink() or not folder.is_dir() or any(folder.iterdir()):
        raise DomainError(ErrorCode.INVALID_DIRECTORY, NEW_DIRECTORY_TAKEN)
    try:
        return resolve_server_directory(str(folder), owner=owner), created
    except DomainError as exc:
        if created:
            folder.rmdir()
        if exc.message == UNAVAILABLE_DIRECTORY:  # one message, whoever's folder it is
            raise DomainError(ErrorCode.INVALID_DIRECTORY, NEW_DIRECTORY_TAKEN) from None
        raise


def new_folder_here(raw: str, *, owner_id) -> dict:
    """new_server_directory run by the node that will hold the folder."""
    from django.contrib.auth import get_user_model

    owner = get_user_model().objects.filter(pk=owner_id).first()
    relative, created = new_server_directory(raw, owner=owner)
    return {"directory": relative, "created": created}


def remove_new_folder_here(relative: str) -> dict:
    """Takes back a folder new_folder_here made when what followed failed:
    only an empty-or-extracted folder inside the root that no server uses."""
    import shutil

    root = servers_root()
    folder = (root / relative).resolve()
    if folder == root or not folder.is_relative_to(root) or Server.objects.filter(
            node=settings.MCSITE_NODE, directory=relative).exists():
        raise DomainError(ErrorCode.INVALID_DIRECTORY, "Not a folder this call made")
    shutil.rmtree(folder, ignore_errors=True)
    return {}


# Control characters (C0, DEL, C1) and the Unicode line/paragraph separators:
# a name ends up in log lines, task names, e-mails and file names.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
NAME_CONTROL_MESSAGE = "Name cannot contain control characters (line breaks, tabs and the like)."


def check_name(name) -> None:
    if isinstance(name, str) and _CONTROL.search(name):
        raise DomainError(ErrorCode.VALIDATION_ERROR, NAME_CONTROL_MESSAGE, details={"name": [NAME_CONTROL_MESSAGE]})


DEFAULT_RCON_HOSTS = ("127.0.0.1", "::1", "localhost")


def rcon_allowed_hosts() -> list[str]:
    """Hosts a non-administrator may point RCON at: loopback (the server's own
    node, wherever that is — not this web host's name, which is another
    machine as seen from other nodes), and the MCSITE_RCON_ALLOWED_HOSTS
    setting (a list, or one comma-separated string; exact host names or
    addresses, case-insensitive)."""
    extra = getattr(settings, "MCSITE_RCON_ALLOWED_HOSTS", ()) or ()
    if isinstance(extra, str):
        extra = extra.split(",")
    hosts = []
    for host in (*DEFAULT_RCON_HOSTS, *extra):
        host = str(host or "").strip()
        if host and host.lower() not in (h.lower() for h in hosts):
            hosts.append(host)
    return hosts


def check_rcon_host_allowed(*, actor, new, current) -> None:
    """The worker connects to the RCON host with bytes the user chooses: only
    an administrator may point it anywhere but this machine (or the hosts the
    setting adds). A host an administrator chose stays when saved unchanged."""
    if getattr(actor, "is_superuser", False) or not isinstance(new, str) or new == current:
        return
    allowed = rcon_allowed_hosts()
    if new.strip().lower() not in (h.lower() for h in allowed):
        message = (f"RCON host must be one of: {', '.join(allowed)}. "
                   "Only an administrator can set another host.")
        raise DomainError(ErrorCode.VALIDATION_ERROR, message, details={"rcon_host": [message]})


def check_start_command_allowed(*, actor, new: str, current: str) -> None:
    """The start command runs on the host as mcsite's own user: only an
    administrator may choose it. Others keep the default (or what an admin set)."""
    if new != current and not getattr(actor, "is_superuser", False):
        raise DomainError(ErrorCode.PERMISSION_DENIED,
                          "Only an administrator can set the start command: it runs on the host",
                          details={"start_command": ["Only an administrator can set the start command."]})


ANNOUNCEMENT_CHECKS = {"announce_countdown": normalise_countdown, "announce_message": check_message,
                       "announce_done_message": lambda text: check_message(text, required=False)}

_EDITABLE = {
    "name", "directory", "start_command", "memory_mb", "rcon_host", "rcon_port",
    "stop_timeout", "backup_mode", "exclude_patterns", "node",
    "announce", "announce_countdown", "announce_message", "announce_done_message", "announce_live",
}


def _apply(server: Server, data: dict, actor) -> None:
    # The owner and node first: the directory check depends on who the server will belong to and where.
    for field, value in sorted(data.items(), key=lambda item: (item[0] != "owner", item[0] != "node")):
        if field == "owner":
            if not getattr(actor, "is_superuser", False):
                raise DomainError(ErrorCode.PERMISSION_DENIED, "Only an administrator can give a server to another user")
            server.owner = value
        elif field == "rcon_password":
            server.rcon_password = value
        elif field == "directory":
            server.directory = resolve_server_directory(value, exclude_pk=server.pk, owner=server.owner,
                                                        node=data.get("node", server.node))
        elif field == "start_command":
            check_start_command_allowed(actor=actor, new=value, current=server.start_command)
            server.start_command = value
        elif field == "name":
            check_name(value)
            server.name = value
        elif field == "rcon_host":
            check_rcon_host_allowed(actor=actor, new=value, current=server.rcon_host)
            server.rcon_host = value
        elif field == "node":
            check_node_known(value)
            if value != server.node and server.pk:
                busy_check_for_move(server)
            if value != server.node and server.pk and "directory" not in data:
                # Moved to another game host: its folder must be there already (docs/deployment.md).
                server.directory = resolve_server_directory(server.directory, exclude_pk=server.pk,
                                                            owner=server.owner, node=value)
            server.node = value
        elif field in ANNOUNCEMENT_CHECKS:
            setattr(server, field, _announcement_value(field, value))
        elif field in _EDITABLE:
            setattr(server, field, value)


LIVE_NEEDS_PASSWORD = ("Live backups need an RCON password: mcsite pauses saving with save-off, save-all "
                       "and save-on over RCON. Set the server's RCON password, or use stop mode.")


def check_node_known(node: str) -> None:
    """A server goes on this process's own node or on one that has reported
    (its worker ran once); another name is a typo or a worker never started."""
    from servers.models import Node

    if not nodes.is_local(node) and not Node.objects.filter(name=node).exists():
        message = (f"No game host named {node} has reported: start its worker first "
                   f"(MCSITE_NODE={node} celery -A mcsite worker -Q {node}), see docs/deployment.md")
        raise DomainError(ErrorCode.VALIDATION_ERROR, message, details={"node": [message]})


def check_live_mode(server: Server) -> None:
    """Live mode without an RCON password cannot pause saving: refused."""
    if server.backup_mode == Server.BackupMode.LIVE and not server.has_rcon_password:
        raise DomainError(ErrorCode.VALIDATION_ERROR, LIVE_NEEDS_PASSWORD,
                          details={"backup_mode": [LIVE_NEEDS_PASSWORD]})


def jar_named(start_command: str) -> str | None:
    """The jar a start command runs (`-jar X`), or None when it names none
    (a script, Forge's @args files)."""
    try:
        words = shlex.split(start_command or "")
    except ValueError:
        return None
    for position, word in enumerate(words[:-1]):
        if word == "-jar":
            return words[position + 1]
    return None


def server_warnings(server: Server) -> list[str]:
    """What will stop the server from starting but may be fixed later (so it
    is not refused): the jar its start command runs is not in its folder.
    Looked at on the server's node; elsewhere, as its node last reported."""
    if not nodes.is_local(server.node):
        return nodes.reported_warnings(server)
    return server_warnings_here(server)


def server_warnings_here(server: Server) -> list[str]:
    folder = server.path
    if not folder.is_dir():
        return [f"The folder {server.directory} is missing."]
    jar = jar_named(server.formatted_start_command())
    if jar is not None:
        candidate = Path(jar)
        if not candidate.is_absolute() and ".." not in candidate.parts and not (folder / candidate).is_file():
            return [f"{jar} is not in the folder {server.directory}: Start will fail until the server jar is there."]
    elif not any(folder.glob("*.jar")):
        return [f"No .jar file is in the folder {server.directory}: make sure the start command can find the server."]
    return []


def _announcement_value(field: str, value):
    """The front doors check these already; this is the same rule book for any caller."""
    try:
        return ANNOUNCEMENT_CHECKS[field](value)
    except AnnouncementError as exc:
        raise DomainError(ErrorCode.VALIDATION_ERROR, f"{field}: {exc}", details={field: [str(exc)]}) from None


def _check_name_free(*, owner, name: str, exclude_pk=None) -> None:
    clash = Server.objects.filter(owner=owner, name=name)
    if exclude_pk is not None:
        clash = clash.exclude(pk=exclude_pk)
    if clash.exists():
        raise DomainError(
            ErrorCode.VALIDATION_ERROR, "You already have a server with this name",
            details={"name": ["You already have a server with this name"]},
        )


def server_create(*, owner, data: dict, actor=None, request=None, source: str = "api") -> Server:
    server = Server(owner=owner)
    # Outside the transaction: a folder on another game host is looked at by a call that node must see.
    _apply(server, data, actor or owner)
    with transaction.atomic():
        _check_name_free(owner=owner, name=server.name)
        check_live_mode(server)
        server.save()
        audit(actor=actor or owner, action="server.create", obj=server, request=request, source=source)
    return server


def server_update(*, server: Server, data: dict, actor, request=None, source: str = "api") -> Server:
    _apply(server, data, actor)  # outside the transaction, as in server_create
    with transaction.atomic():
        _save_update(server, data, actor=actor, request=request, source=source)
    return server


def _save_update(server: Server, data: dict, *, actor, request, source: str) -> None:
    if {"name", "owner"} & set(data):
        _check_name_free(owner=server.owner, name=server.name, exclude_pk=server.pk)
    if {"backup_mode", "rcon_password"} & set(data):
        check_live_mode(server)
    server.save()
    if "owner" in data:
        # Who may see the backups is read from the server itself; the copy
        # on each backup (shown in the admin, kept when the server is
        # deleted) follows in the same transaction.
        from backups.models import BackupRecord

        BackupRecord.objects.filter(server=server).exclude(owner=server.owner).update(owner=server.owner)
    schedule = getattr(server, "backup_schedule", None)
    if schedule is not None and ({"node", "name"} & set(data)):
        from backups import scheduling

        schedule.server = server
        scheduling.sync_periodic_task(schedule)  # the task's queue is the server's node
    audit(
        actor=actor, action="server.update", obj=server, request=request, source=source,
        detail={"fields": sorted(k for k in data if k != "rcon_password") + (["rcon_password"] if "rcon_password" in data else [])},
    )


def server_delete(*, server: Server, delete_backups: bool, actor, request=None, source: str = "api") -> None:
    """Deletes the server, its schedule and periodic task. Its backups are kept
    (listed under the owner, no longer tied to any server) or deleted with
    their files, as the user chose."""
    from backups.models import ACTIVE_STATUSES, BackupRecord, RestoreRequest
    from backups.services import backups_detach_or_delete  # backups builds on servers

    with transaction.atomic():
        Server.objects.select_for_update().filter(pk=server.pk).first()
        if RestoreRequest.objects.filter(server=server, status__in=ACTIVE_STATUSES).exists():
            raise DomainError(ErrorCode.RESTORE_IN_PROGRESS, "A restore of this server is in progress")
        if BackupRecord.objects.filter(server=server, status__in=ACTIVE_STATUSES).exists():
            raise DomainError(ErrorCode.BACKUP_IN_PROGRESS, "A backup of this server is in progress")
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


def _control_log(server: Server):
    import logging

    log = logging.getLogger("mcsite.servers")
    return lambda message: log.info("server_control server_id=%s %s", server.pk, message)


def busy_check_for_move(server: Server) -> None:
    """A server moves to another game host only while nothing of it runs."""
    from backups.models import ACTIVE_STATUSES, BackupRecord, RestoreRequest  # backups builds on servers

    if RestoreRequest.objects.filter(server=server, status__in=ACTIVE_STATUSES).exists():
        raise DomainError(ErrorCode.RESTORE_IN_PROGRESS, "A restore of this server is in progress; move it afterwards")
    if BackupRecord.objects.filter(server=server, status__in=ACTIVE_STATUSES).exists():
        raise DomainError(ErrorCode.BACKUP_IN_PROGRESS, "A backup of this server is in progress; move it afterwards")


def move_notes(server: Server, old_node: str) -> list[str]:
    """What the owner must know after a move: what stays on the old host."""
    from backups.models import BackupRecord, SnapshotRepository  # backups builds on servers

    left = BackupRecord.objects.filter(server=server, status__in=[BackupRecord.Status.SUCCEEDED,
                                                                 BackupRecord.Status.FAILED],
                                       local_removed_at__isnull=True).exclude(storage_path="").count()
    notes = [f"Moved to game host {server.node}. Stop using the folder on {old_node}; remove it once the server "
             "runs on the new host."]
    if left:
        notes.append(f"{left} backup file(s) stay in {old_node}'s backup root (server-{server.pk}/): restores and "
                     "downloads of them come from their off-site copies, or copy that folder to the same path "
                     f"under {server.node}'s backup root (docs/deployment.md, \"Moving a server\").")
    repository = SnapshotRepository.objects.filter(server=server, target__isnull=True).first()
    if repository is not None and repository.repo_uid:
        notes.append(f"Its incremental repository stays in {old_node}'s backup root ({repository.location}/): copy "
                     f"that folder to the same path under {server.node}'s backup root before the next backup, or "
                     "choose Incremental again on its backup page to start a new repository there (the old "
                     "snapshots stay listed, and restore once that folder is on the server's host).")
    return notes


def _busy_check(server: Server) -> None:
    from backups.models import ACTIVE_STATUSES, BackupRecord, RestoreRequest

    if RestoreRequest.objects.filter(server=server, status__in=ACTIVE_STATUSES).exists():
        raise DomainError(ErrorCode.RESTORE_IN_PROGRESS, "A restore is in progress; the server is managed by it")
    if BackupRecord.objects.filter(server=server, status=BackupRecord.Status.RUNNING,
                                   server_stopped_by_backup=True).exists():
        raise DomainError(ErrorCode.BACKUP_IN_PROGRESS,
                          "A backup has stopped the server and will start it again when it is done")


@dataclass(frozen=True)
class ControlOutcome:
    """What a start or stop came to: ``done`` with its message, or sent to
    the server's node and not answered within the wait (``call`` pending:
    the API answers 202 with it, to be polled at /api/node-calls/{id})."""

    done: bool
    message: str
    call: object = None  # servers.models.NodeCall when the node ran (or runs) it


def server_start(*, server: Server, actor, request=None, source: str = "api") -> ControlOutcome:
    """Starts the server on its node: here when this process is that node,
    else as a call to the node's worker (issue #15)."""
    if nodes.is_local(server.node):
        server_start_here(server=server, actor=actor, request=request, source=source)
        return ControlOutcome(True, "Server started")
    _busy_check(server)
    call = nodes.call_outcome(nodes.node_call(node=server.node, action="start", server=server, actor=actor))
    if not call.finished:
        return ControlOutcome(False, f"Start sent to game host {server.node}; it has not answered yet", call)
    server.refresh_from_db(fields=["pid", "pid_create_time"])
    return ControlOutcome(True, "Server started", call)


def server_stop(*, server: Server, actor, request=None, source: str = "api") -> ControlOutcome:
    if nodes.is_local(server.node):
        outcome = server_stop_here(server=server, actor=actor, request=request, source=source)
        return ControlOutcome(True, _stopped_message(outcome.was_running, outcome.step.value))
    _busy_check(server)
    call = nodes.call_outcome(nodes.node_call(node=server.node, action="stop", server=server, actor=actor))
    if not call.finished:
        return ControlOutcome(False, f"Stop sent to game host {server.node}; it has not answered yet", call)
    server.refresh_from_db(fields=["pid", "pid_create_time"])
    return ControlOutcome(True, _stopped_message(call.result.get("was_running"), call.result.get("step", "")), call)


def _stopped_message(was_running, step: str) -> str:
    return f"{'Server stopped' if was_running else 'Server was not running'} ({step})"


def server_start_here(*, server: Server, actor, request=None, source: str = "api"):
    from servers import control

    if not server.path.is_dir():
        raise DomainError(ErrorCode.SERVER_DIRECTORY_NOT_FOUND)
    _busy_check(server)
    try:
        status = control.start(server.process_spec(), _control_log(server))
    except control.ServerControlError as exc:
        audit(actor=actor, action="server.start", obj=server, request=request, source=source,
              outcome="failure", detail={"error": str(exc)[:500]})
        raise DomainError(ErrorCode.SERVER_CONTROL_FAILED, scrub_paths(str(exc))) from None
    Server.objects.filter(pk=server.pk).update(pid=status.pid, pid_create_time=status.create_time)
    server.pid, server.pid_create_time = status.pid, status.create_time
    audit(actor=actor, action="server.start", obj=server, request=request, source=source, detail={"pid": status.pid})
    return status


def server_stop_here(*, server: Server, actor, request=None, source: str = "api"):
    from servers import control

    _busy_check(server)
    try:
        outcome = control.stop(server.process_spec(), _control_log(server))
    except control.ServerControlError as exc:
        audit(actor=actor, action="server.stop", obj=server, request=request, source=source,
              outcome="failure", detail={"error": str(exc)[:500]})
        raise DomainError(ErrorCode.SERVER_CONTROL_FAILED, scrub_paths(str(exc))) from None
    Server.objects.filter(pk=server.pk).update(pid=None, pid_create_time=None)
    server.pid = server.pid_create_time = None
    audit(actor=actor, action="server.stop", obj=server, request=request, source=source,
          detail={"step": outcome.step.value, "was_running": outcome.was_running,
                  "seconds": round(outcome.elapsed_seconds, 1)})
    return outcome
