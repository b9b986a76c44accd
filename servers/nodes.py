"""Game hosts (SPEC §12, issue #15): each node reports itself, and the web
tier acts on a server only through its node.

A process *is* a node when its MCSITE_NODE names it: it may then touch the
folders under its own MCSITE_SERVERS_ROOT / MCSITE_BACKUP_ROOT and the
processes of the servers on that node. Anything else (the web tier of a
multi-host site sets MCSITE_NODE to a name no server uses, e.g. ``web``)
reads what the node reported and sends it work:

* the **heartbeat** (``servers.tasks.node_heartbeat``), sent by beat's
  ``system:node-heartbeats`` to every node's queue every
  MCSITE_NODE_HEARTBEAT_SECONDS (30 s) and run when a worker starts, writes
  the node's row: host name, version, workers, free and total disk of its
  servers root and backup root, and the status of each of its servers;
* a node silent for DOWN_AFTER_BEATS heartbeats is **down**: its servers
  show ``node_down`` instead of a stale status (at once, computed when read)
  and the periodic check alerts once (``node_down``), and once more when it
  is back (the incident resolved);
* **calls** (:func:`node_call`): start, stop and folder checks run by the
  node's worker; the NodeCall row carries the request and the answer (there
  is no Celery result backend), the caller waits up to
  MCSITE_NODE_CALL_WAIT_SECONDS and otherwise answers with the pending call.

On a single host (``make run``) web and worker share the node ``default``:
the web process acts directly, as it always did.
"""

from __future__ import annotations

import logging
import shutil
import socket
import time
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from mcsite.errors import DomainError, ErrorCode
from mcsite.paths import scrub_paths
from servers.models import Node, NodeCall, Server

logger = logging.getLogger("mcsite.nodes")

HEARTBEAT_TASK = "servers.tasks.node_heartbeat"
CALL_TASK = "servers.tasks.run_node_call"
DOWN_AFTER_BEATS = 3


def heartbeat_seconds() -> int:
    return int(getattr(settings, "MCSITE_NODE_HEARTBEAT_SECONDS", 30))


def is_local(node: str) -> bool:
    """This process sits on the node's host (its folders and processes)."""
    return node == settings.MCSITE_NODE


def mcsite_version() -> str:
    return str(getattr(settings, "SPECTACULAR_SETTINGS", {}).get("VERSION") or "1.0.0")


# --- on the node ------------------------------------------------------------------------

def _disk(path) -> tuple[int | None, int | None]:
    try:
        usage = shutil.disk_usage(path)
    except OSError:
        return None, None
    return usage.free, usage.total


def local_status(server: Server) -> dict:
    """A server's process as this host sees it (only ever called on its node)."""
    from servers import control

    try:
        status = control.status(server.process_spec())
    except Exception as exc:  # noqa: BLE001 — a status read must never break a page or a heartbeat
        logger.warning("server_status_failed server=%s error=%s", server.pk, exc)
        return {"state": "unknown", "running": None, "pid": None, "uptime_seconds": None,
                "error": scrub_paths(str(exc))}
    return {
        "state": "running" if status.running else "stopped",
        "running": status.running,
        "pid": status.pid if status.running else None,
        "uptime_seconds": round(status.uptime_seconds, 1) if status.running and status.uptime_seconds else None,
    }


def _server_entry(server: Server) -> dict:
    from servers.services import server_warnings_here  # services builds on this module

    return {**local_status(server), "folder": server.path.is_dir(), "warnings": server_warnings_here(server)}


def local_report() -> dict:
    """What this node says about itself and its servers."""
    servers_free, servers_total = _disk(settings.MCSITE_SERVERS_ROOT)
    backup_free, backup_total = _disk(settings.MCSITE_BACKUP_ROOT)
    statuses = {str(server.pk): _server_entry(server) for server in Server.objects.filter(node=settings.MCSITE_NODE)}
    return {"hostname": socket.gethostname()[:255], "version": mcsite_version(),
            "servers_root_free": servers_free, "servers_root_total": servers_total,
            "backup_root_free": backup_free, "backup_root_total": backup_total, "statuses": statuses}


def node_heartbeat(*, started: bool = False, worker_count: int | None = None) -> Node:
    """Writes this node's row (run by its worker on its own queue). A node
    that was down and reports again is up, and its incident is resolved."""
    now = timezone.now()
    fields = {**local_report(), "last_heartbeat": now}
    if started:
        fields["started_at"] = now
    if worker_count is not None:
        fields["worker_count"] = worker_count
    with transaction.atomic():
        node, _ = Node.objects.select_for_update().get_or_create(name=settings.MCSITE_NODE)
        was_down = node.down_since is not None
        for key, value in fields.items():
            setattr(node, key, value)
        node.down_since = None
        node.save()
    if was_down:
        _node_back(node)
    return node


def _node_back(node: Node) -> None:
    from backups.alerts import alert_resolve  # backups builds on servers
    from backups.events import log_event

    log_event("node_up", node=node.name)
    alert_resolve(kind="node_down", subject=f"node:{node.name}")


# --- reading what nodes reported -------------------------------------------------------

def known_nodes() -> list[str]:
    """Every node a heartbeat goes to: those that reported once and those servers name."""
    return sorted(set(Node.objects.values_list("name", flat=True)) | set(Server.objects.values_list("node", flat=True)))


def is_down(node: Node | None, now=None) -> bool:
    """Silent for DOWN_AFTER_BEATS heartbeats (or never heard of)."""
    if node is None or node.last_heartbeat is None:
        return True
    now = now or timezone.now()
    return now - node.last_heartbeat > timedelta(seconds=DOWN_AFTER_BEATS * heartbeat_seconds())


def down_nodes(now=None) -> list[str]:
    """Names of the nodes that reported once and have been silent for DOWN_AFTER_BEATS heartbeats."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=DOWN_AFTER_BEATS * heartbeat_seconds())
    return list(Node.objects.filter(last_heartbeat__lt=cutoff).values_list("name", flat=True))


def node_state(node: Node | None, now=None) -> str:
    if node is None or node.last_heartbeat is None:
        return "unknown"
    return "down" if is_down(node, now) else "up"


def server_status(server: Server, *, nodes: dict | None = None) -> dict:
    """The status the pages and the API show. On the server's own node: the
    process itself. Elsewhere: the node's last report (``reported_at``), or
    ``node_down`` when the node is silent, ``unknown`` when it never
    reported this server. ``nodes``: Node rows by name, to read many at once."""
    if is_local(server.node):
        return local_status(server)
    node = nodes.get(server.node) if nodes is not None else Node.objects.filter(name=server.node).first()
    base = {"running": None, "pid": None, "uptime_seconds": None, "node": server.node}
    if node is None or node.last_heartbeat is None:
        return {**base, "state": "unknown", "error": f"Game host {server.node} has not reported yet"}
    base["reported_at"] = node.last_heartbeat.isoformat()
    if is_down(node):
        return {**base, "state": "node_down",
                "error": f"Game host {server.node} has not reported since {node.last_heartbeat:%Y-%m-%d %H:%M %Z}"}
    entry = node.statuses.get(str(server.pk))
    if entry is None:
        return {**base, "state": "unknown", "error": f"Not in game host {server.node}'s last report yet"}
    return {**base, **{k: entry.get(k) for k in ("state", "running", "pid", "uptime_seconds", "error") if k in entry}}


def reported_warnings(server: Server) -> list[str]:
    node = Node.objects.filter(name=server.node).first()
    entry = (node.statuses.get(str(server.pk)) if node is not None else None) or {}
    return list(entry.get("warnings") or [])


def nodes_by_name(names) -> dict:
    return {n.name: n for n in Node.objects.filter(name__in=set(names))}


# --- beat: heartbeats out, silent nodes found ------------------------------------------

def heartbeats_send() -> list[str]:
    """One heartbeat task to each node's queue; it expires after one period
    (a node that is down does not find a pile of them when it returns)."""
    from mcsite.celery import app

    every = heartbeat_seconds()
    sent = []
    for name in known_nodes():
        try:
            app.send_task(HEARTBEAT_TASK, queue=name, expires=every)
            sent.append(name)
        except Exception as exc:  # noqa: BLE001 — the broker is down: the next period tries again
            logger.error("node_heartbeat_send_failed node=%s error=%s", name, type(exc).__name__)
    return sent


def nodes_check(*, now=None) -> list[str]:
    """Nodes newly found silent for DOWN_AFTER_BEATS heartbeats: marked down,
    logged and alerted once (their servers already show node_down)."""
    from backups.alerts import alert_open  # backups builds on servers
    from backups.events import log_event

    now = now or timezone.now()
    cutoff = now - timedelta(seconds=DOWN_AFTER_BEATS * heartbeat_seconds())
    newly = []
    for node in Node.objects.filter(down_since__isnull=True, last_heartbeat__lt=cutoff):
        if not Node.objects.filter(pk=node.pk, down_since__isnull=True, last_heartbeat__lt=cutoff).update(
                down_since=now):
            continue  # it reported meanwhile, or another check marked it
        count = Server.objects.filter(node=node.name).count()
        log_event("node_down", node=node.name, last_heartbeat=node.last_heartbeat.isoformat(), servers=count)
        alert_open(kind="node_down", subject=f"node:{node.name}", title=f"Game host {node.name} is down",
                   body=f"Game host {node.name} ({node.hostname or 'unknown host'}) has not reported since "
                        f"{node.last_heartbeat:%Y-%m-%d %H:%M:%S %Z}. Its {count} server(s) show \"node down\"; "
                        "nothing of theirs can be started, stopped, backed up or restored until its worker "
                        "runs again.")
        newly.append(node.name)
    calls_tidy(now=now)
    return newly


CALL_GIVE_UP = timedelta(minutes=10)
CALL_KEEP = timedelta(days=7)


def calls_tidy(*, now=None) -> int:
    """Calls no node ever answered (its worker died with it) end failed after
    CALL_GIVE_UP, so a poller hears so; finished calls go after CALL_KEEP."""
    now = now or timezone.now()
    given_up = NodeCall.objects.filter(status__in=[NodeCall.Status.PENDING, NodeCall.Status.RUNNING],
                                       created_at__lt=now - CALL_GIVE_UP).update(
        status=NodeCall.Status.FAILED, finished_at=now, error_code=ErrorCode.NODE_DOWN.value,
        error_message="The game host did not answer within 10 minutes (its worker was down or died)")
    NodeCall.objects.filter(created_at__lt=now - CALL_KEEP).delete()
    return given_up


# --- calls: the web tier asks a node --------------------------------------------------

_REGISTERED: dict = {}


def register_action(name: str, function) -> None:
    """An action other apps let nodes run: ``function(server, call) -> dict``
    (backups registers the restore preview's look at the folder)."""
    _REGISTERED[name] = function


def _local_actions() -> dict:
    from servers import services  # services builds on this module

    return {
        "start": lambda server, call: services.server_start_here(server=server, actor=call.actor, source="node"),
        "stop": lambda server, call: services.server_stop_here(server=server, actor=call.actor, source="node"),
        "check_folder": lambda server, call: {"directory": services.resolve_directory_on_disk(
            call.arguments.get("directory", ""))},
        "new_folder": lambda server, call: services.new_folder_here(call.arguments.get("directory", ""),
                                                                    owner_id=call.arguments.get("owner_id")),
        "remove_new_folder": lambda server, call: services.remove_new_folder_here(call.arguments.get("directory", "")),
        **_REGISTERED,
    }


def ask_node(node: str, action: str, arguments: dict | None = None) -> dict:
    """A call about no particular server; its answer, or the node's error (NODE_DOWN when it did not answer)."""
    call = call_outcome(node_call(node=node, action=action, arguments=arguments or {}))
    if not call.finished:
        raise DomainError(ErrorCode.NODE_DOWN, f"Game host {node} did not answer in time; try again")
    return call.result


def ask(server: Server, action: str, arguments: dict | None = None, *, local) -> dict:
    """The result of ``action`` for ``server``: ``local()`` when this process
    is its node, else the node's answer (NODE_DOWN when it is down or did not
    answer within the wait; the node's own error when it failed)."""
    if is_local(server.node):
        return local()
    call = call_outcome(node_call(node=server.node, action=action, server=server, arguments=arguments or {}))
    if not call.finished:
        raise DomainError(ErrorCode.NODE_DOWN, f"Game host {server.node} did not answer in time; try again")
    return call.result


def call_wait_seconds() -> float:
    return float(getattr(settings, "MCSITE_NODE_CALL_WAIT_SECONDS", 10))


def node_call(*, node: str, action: str, server: Server | None = None, arguments: dict | None = None,
              actor=None, wait: float | None = None) -> NodeCall:
    """Asks ``node`` to run ``action``; waits up to ``wait`` seconds for the
    answer and returns the call, finished or not. Refused at once when the
    node is down (nothing would run it)."""
    from mcsite.celery import app

    row = Node.objects.filter(name=node).first()
    if is_down(row):
        where = "has never reported" if row is None or row.last_heartbeat is None else \
            f"has not reported since {row.last_heartbeat:%Y-%m-%d %H:%M %Z}"
        raise DomainError(ErrorCode.NODE_DOWN, f"Game host {node} {where}; start its worker and try again")
    call = NodeCall.objects.create(node=node, server=server, action=action, arguments=arguments or {},
                                   actor=actor if getattr(actor, "pk", None) else None)
    try:
        app.send_task(CALL_TASK, kwargs={"call_id": call.pk}, queue=node)
    except Exception as exc:  # noqa: BLE001 — nothing will run it: say so now
        NodeCall.objects.filter(pk=call.pk).update(status=NodeCall.Status.FAILED, finished_at=timezone.now(),
                                                   error_code=ErrorCode.NODE_DOWN.value,
                                                   error_message=f"The broker did not accept the call ({type(exc).__name__})")
        call.refresh_from_db()
        return call
    deadline = time.monotonic() + (call_wait_seconds() if wait is None else wait)
    delay = 0.05
    while True:
        call.refresh_from_db()
        if call.finished or time.monotonic() >= deadline:
            return call
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


def node_call_run(*, call_id: int) -> NodeCall | None:
    """The node's side: runs the call once and writes the answer."""
    now = timezone.now()
    if not NodeCall.objects.filter(pk=call_id, status=NodeCall.Status.PENDING).update(
            status=NodeCall.Status.RUNNING, started_at=now):
        return None  # done already, or another worker took it
    call = NodeCall.objects.select_related("server", "actor").get(pk=call_id)
    if not is_local(call.node):
        logger.error("node_call_wrong_node call_id=%s node=%s here=%s", call.pk, call.node, settings.MCSITE_NODE)
    action = _local_actions().get(call.action)
    fields = {"finished_at": None}
    try:
        if action is None:
            raise DomainError(ErrorCode.VALIDATION_ERROR, f"Unknown node action {call.action!r}")
        if call.server_id and call.server is None:
            raise DomainError(ErrorCode.NOT_FOUND, "The server was deleted")
        result = action(call.server, call)
        fields.update(status=NodeCall.Status.SUCCEEDED, result=_jsonable(result))
    except DomainError as exc:
        fields.update(status=NodeCall.Status.FAILED, error_code=exc.code.value, error_message=exc.message[:2000])
    except Exception as exc:  # noqa: BLE001 — the caller must hear of any failure
        logger.exception("node_call_failed call_id=%s action=%s", call.pk, call.action)
        fields.update(status=NodeCall.Status.FAILED, error_code=ErrorCode.INTERNAL_ERROR.value,
                      error_message=scrub_paths(f"{type(exc).__name__}: {exc}")[:2000])
    fields["finished_at"] = timezone.now()
    NodeCall.objects.filter(pk=call.pk).update(**fields)
    call.refresh_from_db()
    if call.server_id and call.action in ("start", "stop"):
        _refresh_status(call.server)
    return call


def _refresh_status(server: Server) -> None:
    """After a start or stop, the node's report says so at once (not at the next heartbeat)."""
    entry = _server_entry(server)
    with transaction.atomic():
        node = Node.objects.select_for_update().filter(name=server.node).first()
        if node is not None:
            node.statuses = {**node.statuses, str(server.pk): entry}
            node.save(update_fields=["statuses"])


def _jsonable(result) -> dict:
    if result is None:
        return {}
    if isinstance(result, dict):
        return result
    if hasattr(result, "_asdict"):
        return {k: (v.value if hasattr(v, "value") else v) for k, v in result._asdict().items()}
    if hasattr(result, "__dataclass_fields__"):
        import dataclasses

        return {k: (v.value if hasattr(v, "value") else v if isinstance(v, (int, float, str, bool, type(None)))
                    else str(v)) for k, v in dataclasses.asdict(result).items()}
    return {"value": str(result)}


def call_outcome(call: NodeCall) -> NodeCall:
    """A finished call that failed becomes the DomainError the node raised;
    anything else is returned (succeeded, or still pending: the caller
    answers 202 with it)."""
    if call.status == NodeCall.Status.FAILED:
        try:
            code = ErrorCode(call.error_code)
        except ValueError:
            code = ErrorCode.INTERNAL_ERROR
        raise DomainError(code, call.error_message or code.value)
    return call

