"""Reads about servers. Status always comes from the process itself."""

import logging

from servers.models import Server

logger = logging.getLogger("mcsite.servers")


def server_status(*, server: Server) -> dict:
    try:
        from servers import control

        status = control.status(server.process_spec())
    except Exception as exc:  # noqa: BLE001 — a status read must never break a page
        logger.warning("server_status_failed server=%s error=%s", server.pk, exc)
        from mcsite.paths import scrub_paths

        return {"state": "unknown", "running": None, "pid": None, "uptime_seconds": None,
                "error": scrub_paths(str(exc))}
    return {
        "state": "running" if status.running else "stopped",
        "running": status.running,
        "pid": status.pid if status.running else None,
        "uptime_seconds": round(status.uptime_seconds, 1) if status.running and status.uptime_seconds else None,
    }
