"""The event lines of logs/app.log (SPEC §9): one line per event, starting
with the seed's key so `grep backup_failed logs/app.log` finds them, and
naming the server and the backup."""

import logging

logger = logging.getLogger("mcsite.events")

ERROR_EVENTS = {
    "backup_failed", "verification_failed", "schedule_execution_failure", "corruption_detected",
    "restore_failed",
}
WARNING_EVENTS = {"disk_usage_high", "backup_refused"}


def _value(value) -> str:
    text = str(value).replace("\n", " ").strip()
    return f'"{text}"' if (" " in text or not text) else text


def log_event(event: str, *, server=None, backup=None, **fields) -> str:
    parts = [event]
    if server is not None:
        parts.append(f"server_id={server.pk}")
        parts.append(f"server={_value(server.name)}")
    if backup is not None:
        parts.append(f"backup_id={backup.pk}")
        parts.append(f"backup={_value(backup.filename or '-')}")
    parts.extend(f"{key}={_value(value)}" for key, value in fields.items() if value is not None)
    line = " ".join(parts)
    level = logging.ERROR if event in ERROR_EVENTS else logging.WARNING if event in WARNING_EVENTS else logging.INFO
    logger.log(level, line)
    return line
