"""Health of the site's processes (docs/deployment.md): what a load
balancer, systemd or a container orchestrator asks.

* the web tier: ``GET /healthz`` — the database answers (200, else 503);
* a node: its heartbeat is fresh (``manage.py health --node NAME``);
* beat: node heartbeats keep arriving (``--beat``), which they do only
  while beat sends them.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import connection
from django.http import JsonResponse
from django.utils import timezone

from servers import nodes
from servers.models import Node

def database_ok() -> tuple[bool, str]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # noqa: BLE001 — a health check reports, it does not raise
        return False, f"database: {type(exc).__name__}"
    return True, "database: ok"


def node_ok(name: str) -> tuple[bool, str]:
    row = Node.objects.filter(name=name).first()
    if row is None or row.last_heartbeat is None:
        return False, f"node {name}: never reported"
    age = (timezone.now() - row.last_heartbeat).total_seconds()
    if nodes.is_down(row):
        return False, f"node {name}: down, last heartbeat {age:.0f} s ago"
    return True, f"node {name}: up, last heartbeat {age:.0f} s ago ({row.hostname})"


def beat_ok() -> tuple[bool, str]:
    """Heartbeats reach the nodes only when beat sends them: the newest
    heartbeat of any node is fresh (a worker's start reports once on its own,
    so a node started after beat died shows up here for one period only)."""
    newest = Node.objects.exclude(last_heartbeat=None).order_by("-last_heartbeat").first()
    if newest is None:
        return False, "beat: no node has ever reported"
    age = timezone.now() - newest.last_heartbeat
    if age > timedelta(seconds=nodes.DOWN_AFTER_BEATS * nodes.heartbeat_seconds()):
        return False, (f"beat: no node heartbeat for {age.total_seconds():.0f} s "
                       "(beat, the broker or every worker is down)")
    return True, f"beat: node heartbeats arriving (newest {age.total_seconds():.0f} s ago, {newest.name})"


def healthz(request):
    ok, detail = database_ok()
    return JsonResponse({"ok": ok, "checks": [detail]}, status=200 if ok else 503)
