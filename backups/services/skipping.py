"""Skipping a scheduled backup nobody needs (issue #12, BackupSchedule.skip_unchanged).

A scheduled run is skipped when, since the last successful backup of the
server started, no player is online now (RCON `list`; a stopped server has
nobody) and no file a backup would hold changed (engine.changes: times,
new and deleted files, the exclude patterns respected, nothing read). The
record then ends `skipped` with the reason in words, the event
`backup_skipped`, and no file. Without a previous successful backup, or
when RCON cannot say who is online, the backup runs.
"""

import logging
from datetime import timedelta

from django.utils import timezone

from backups import events, scheduling
from backups.engine.changes import first_change
from backups.models import BackupRecord
from backups.services import announce
from servers.models import Server

logger = logging.getLogger("mcsite.backups")

# File systems that keep whole seconds: a write in the second the backup
# started may carry a time just before it. Counting that second as "after"
# can only make a backup run, never skip one wrongly.
TIME_SLACK = timedelta(seconds=1)


def last_good_backup(server: Server) -> BackupRecord | None:
    """The newest successful backup of the server whose file is still kept
    (not a restore's safety backup: it holds excluded files too)."""
    return (BackupRecord.objects.filter(server=server, status=BackupRecord.Status.SUCCEEDED,
                                        started_at__isnull=False, file_count__isnull=False)
            .exclude(trigger=BackupRecord.Trigger.SAFETY).order_by("-started_at", "-id").first())


def skip_reason(*, server: Server) -> str | None:
    """Why this scheduled backup is not needed, in words; None: take it."""
    last = last_good_backup(server)
    if last is None:
        return None
    running = announce.is_running(server)
    if running:
        players = announce.players_online(server)
        if players is None or players:
            logger.info("skip_not_possible server_id=%s players=%s", server.pk,
                        "unknown" if players is None else len(players))
            return None
    change = first_change(server.path, server.exclude_patterns or (),
                          since=(last.started_at - TIME_SLACK).timestamp(), file_count=last.file_count)
    if change is not None:
        logger.info("skip_not_possible server_id=%s change=%s", server.pk, events.log_value(change))
        return None
    when = last.started_at.astimezone(scheduling.site_zone()).strftime("%Y-%m-%d %H:%M")
    who = "no player was online" if running else "the server was stopped (no player online)"
    return f"Nothing changed since the backup of {when} and {who}"


def backup_skip(*, record: BackupRecord, server: Server, reason: str) -> bool:
    """Ends a queued scheduled record as skipped (no file). False if it had
    already left queued."""
    now = timezone.now()
    ended = BackupRecord.objects.filter(pk=record.pk, status=BackupRecord.Status.QUEUED).update(
        status=BackupRecord.Status.SKIPPED, phase="skipped", skip_reason=reason[:300], started_at=now,
        finished_at=now, heartbeat_at=now, duration_seconds=0.0)
    record.refresh_from_db()
    if ended:
        events.log_event("backup_skipped", server=server, backup=record, reason=reason)
    return bool(ended)
