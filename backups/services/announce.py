"""Telling the players (issue #12): before a backup that stops the server,
`say` a warning over RCON at each countdown mark; after it, say it is done.

    trigger ──> list (who is online?) ──> say the first warning now
            ──> later warnings: tasks `announce_backup` with a countdown
            ──> the run task with a countdown of the longest mark
                (record queued, `not_before` = when it may start)

Nothing waits in a worker: the broker holds the tasks until they are due,
so no worker slot sits idle during a countdown. A warning task finds its
record no longer queued (ended, reaped) and says nothing.

Who is told: the server's `announce` is on and its mode is stop (live only
with `announce_live`), and the server is running. When `list` shows nobody
online (or cannot say who), nobody waits: the warning is said anyway when
RCON works, with 0 seconds. `not_before` set on a record means the players
were told (so the done message follows). RCON failures never fail a backup:
they are written on the record as warnings and logged.
"""

import logging
import re
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from backups import events
from backups.models import BackupRecord
from backups.services import lifecycle
from servers import control
from servers.announcements import AnnouncementError, parse_countdown, say_text
from servers.models import Server
from servers.rcon import RconClient, RconError

logger = logging.getLogger("mcsite.backups")

RCON_TIMEOUT = 5.0  # the RCON client's default; a busy server answers late, never wrongly
_PLAYER_COUNT = re.compile(r"There are (\d+)")  # 1.14 "2 of a max 20", Paper "2 of a max of 20", old "2/20"


def wants_announcement(server: Server) -> bool:
    if not server.announce:
        return False
    return server.backup_mode == Server.BackupMode.STOP or server.announce_live


def parse_player_list(reply: str) -> list[str] | None:
    """The players a `list` reply names (None: not a reply we can read)."""
    match = _PLAYER_COUNT.search(reply or "")
    if match is None:
        return None
    count = int(match.group(1))
    if count == 0:
        return []
    names = [name.strip() for name in reply.split(":", 1)[1].replace("\n", ",").split(",")] if ":" in reply else []
    names = [name for name in names if name]
    return names if len(names) >= count else names + ["(unnamed)"] * (count - len(names))


def players_online(server: Server) -> list[str] | None:
    """Who is online now, by RCON `list`; None when RCON cannot say."""
    spec = server.process_spec()
    if not spec.rcon_password:
        return None
    try:
        with RconClient(spec.rcon_host, spec.rcon_port, spec.rcon_password, timeout=RCON_TIMEOUT) as rcon:
            reply = rcon.command("list")
    except RconError as exc:
        logger.warning("announce_list_failed server_id=%s error=%s", server.pk, events.log_value(exc.detail))
        return None
    players = parse_player_list(reply)
    if players is None:
        logger.warning("announce_list_unreadable server_id=%s reply=%s", server.pk, events.log_value(reply[:200]))
    return players


def is_running(server: Server) -> bool:
    try:
        return control.find_process(server.process_spec()) is not None
    except Exception as exc:  # noqa: BLE001 — a status read never stops a backup
        logger.warning("announce_status_failed server_id=%s error=%s", server.pk, exc)
        return False


def say(server: Server, text: str) -> str | None:
    """Says one line to everyone on the server; the reason it failed, or None."""
    spec = server.process_spec()
    if not spec.rcon_password:
        return "no RCON password is set"
    try:
        with RconClient(spec.rcon_host, spec.rcon_port, spec.rcon_password, timeout=RCON_TIMEOUT) as rcon:
            rcon.command(f"say {say_text(text)}")
    except RconError as exc:
        logger.warning("announce_say_failed server_id=%s error=%s", server.pk, events.log_value(exc.detail))
        return str(exc)
    logger.info("announce_said server_id=%s text=%s", server.pk, events.log_value(say_text(text)))
    return None


def backup_announce(*, record: BackupRecord, server: Server) -> int:
    """Warns the players of a queued backup: says the first warning now and
    sends the later ones as tasks (after the caller's transaction commits).
    Returns the seconds the run must wait (0: it may start at once)."""
    if record.trigger == BackupRecord.Trigger.SAFETY or not wants_announcement(server) or not is_running(server):
        return 0
    try:
        marks = parse_countdown(server.announce_countdown)
    except AnnouncementError as exc:  # stored before the rule existed: warn once, at once
        logger.warning("announce_countdown_invalid server_id=%s error=%s", server.pk, exc)
        marks = []
    if not server.has_rcon_password:
        _warn(record, "Players were not warned: the server has no RCON password")
        return 0
    players = players_online(server)
    if players is None:
        _warn(record, "Players were not warned: RCON could not say who is online (list)")
        return 0
    wait = marks[0] if marks and players else 0
    failed = say(server, say_text(server.announce_message, seconds=wait))
    if failed:
        _warn(record, f"Players were not warned: {failed}")
        return 0
    not_before = timezone.now() + timedelta(seconds=wait)
    BackupRecord.objects.filter(pk=record.pk, status=BackupRecord.Status.QUEUED).update(not_before=not_before)
    record.not_before = not_before
    events.log_event("backup_announced", server=server, backup=record, players=len(players), seconds=wait)
    if wait:
        for mark in marks[1:]:
            transaction.on_commit(_sender(record.pk, mark, queue=server.node, countdown=wait - mark))
    return wait


def _sender(backup_id: int, seconds: int, *, queue: str, countdown: int):
    def send():
        try:
            lifecycle.send_task("announce_backup", kwargs={"backup_id": backup_id, "seconds": seconds},
                                queue=queue, countdown=countdown)
        except Exception as exc:  # noqa: BLE001 — a lost warning never stops the backup
            logger.warning("announce_send_failed backup_id=%s seconds=%s error=%s", backup_id, seconds, exc)
    return send


def backup_announce_warning(*, backup_id: int, seconds: int) -> bool:
    """A later countdown mark (task): said only while the backup still waits
    to start and the server runs. True when it was said."""
    record = (BackupRecord.objects.select_related("server")
              .filter(pk=backup_id, status=BackupRecord.Status.QUEUED).first())
    if record is None or record.server is None:
        logger.info("announce_skipped backup_id=%s seconds=%s (not waiting any more)", backup_id, seconds)
        return False
    server = record.server
    if not is_running(server):
        return False
    failed = say(server, say_text(server.announce_message, seconds=seconds))
    if failed:
        _warn(record, f"The {seconds} s warning was not said: {failed}")
    return failed is None


DONE_RETRY_SECONDS = 10
DONE_ATTEMPTS = 12  # a server started again may take a while before its RCON answers


def backup_announce_done(*, backup_id: int, attempt: int = 1) -> bool:
    """After a run whose players were told: the done message, once the server
    runs again. While its RCON does not answer yet (a stop-mode backup has
    just started it), tried again later as a task, never in a waiting
    worker. True when it was said. Never raises."""
    try:
        record = BackupRecord.objects.select_related("server").filter(pk=backup_id).first()
        server = record.server if record is not None else None
        if (record is None or record.is_active or record.not_before is None or server is None
                or not server.announce_done_message or not wants_announcement(server) or not is_running(server)):
            return False
        failed = say(server, server.announce_done_message)
        if failed is None:
            return True
        if attempt < DONE_ATTEMPTS:
            lifecycle.send_task("announce_backup_done", kwargs={"backup_id": backup_id, "attempt": attempt + 1},
                                queue=server.node, countdown=DONE_RETRY_SECONDS)
        else:
            _warn(record, f"The players were not told the backup is done: {failed}")
        return False
    except Exception:  # noqa: BLE001 — the backup is over; this is a courtesy
        logger.exception("announce_done_failed backup_id=%s", backup_id)
        return False


def _warn(record: BackupRecord, message: str) -> None:
    """A warning on the record (kept when the run writes its own)."""
    logger.warning("announce_warning backup_id=%s %s", record.pk, events.log_value(message))
    with transaction.atomic():
        row = BackupRecord.objects.select_for_update().filter(pk=record.pk).first()
        if row is not None:
            row.warnings = [*(row.warnings or []), message]
            row.save(update_fields=["warnings"])
            record.warnings = row.warnings
