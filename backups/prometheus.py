"""GET /metrics in the Prometheus text format, for admins (session) or a
bearer token (a superuser's API token, or MCSITE_METRICS_TOKEN)."""

import hmac

from django.conf import settings
from django.db.models import Count, Max, OuterRef, Q, Subquery, Sum
from django.http import HttpResponse

from backups.models import ACTIVE_STATUSES, BackupRecord
from backups.selectors import WINDOWS, backup_metrics, disk_usage
from servers.models import Server


def _authorized(request) -> bool:
    if request.user.is_authenticated and request.user.is_superuser:
        return True
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() not in ("bearer", "token") or not token:
        return False
    expected = getattr(settings, "MCSITE_METRICS_TOKEN", "")
    if expected and hmac.compare_digest(token, expected):
        return True
    from mcsite.models import ApiToken

    user, _ = ApiToken.user_for(token)
    return bool(user and user.is_superuser)


def _label(value) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def metrics_view(request):
    if not _authorized(request):
        if request.user.is_authenticated:
            return HttpResponse("metrics are for administrators\n", status=403, content_type="text/plain")
        response = HttpResponse("authentication required\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = "Bearer"
        return response
    lines = []

    def metric(name, kind, help_text, samples):
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            if value is None:
                continue
            label_text = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
            lines.append(f"{name}{{{label_text}}} {value}" if label_text else f"{name} {value}")

    site = backup_metrics()
    metric("mcsite_backup_success_ratio", "gauge", "Share of finished backups that succeeded",
           [({"window": w}, _ratio(site[f"success_rate_{w}"])) for w in WINDOWS])
    metric("mcsite_backup_verification_ratio", "gauge", "Share of verified backups that passed every check",
           [({"window": w}, _ratio(site[f"verification_rate_{w}"])) for w in WINDOWS])
    metric("mcsite_backups_finished", "gauge", "Backups finished in the window",
           [({"window": w}, site[f"backups_{w}"]) for w in WINDOWS])
    counts = BackupRecord.objects.values("status").annotate(n=Count("id"))
    metric("mcsite_backup_records", "gauge", "Backup records by status", [({"status": r["status"]}, r["n"]) for r in counts])

    last_ok = BackupRecord.objects.filter(server=OuterRef("pk"), status=BackupRecord.Status.SUCCEEDED).order_by("-created_at")
    servers = Server.objects.annotate(
        last_success=Max("backups__finished_at", filter=Q(backups__status=BackupRecord.Status.SUCCEEDED)),
        stored=Sum("backups__size_bytes", filter=Q(backups__status__in=["succeeded", "failed"])),
        running=Count("backups", filter=Q(backups__status__in=ACTIVE_STATUSES)),
        last_duration=Subquery(last_ok.values("duration_seconds")[:1]),
        last_size=Subquery(last_ok.values("size_bytes")[:1]),
        last_quality=Subquery(last_ok.values("quality_score")[:1]),
    ).values("pk", "name", "last_success", "stored", "running", "last_duration", "last_size", "last_quality")
    rows = list(servers)

    def per_server(field, transform=lambda v: v):
        return [({"server_id": r["pk"], "server": r["name"]}, transform(r[field]) if r[field] is not None else None)
                for r in rows]

    metric("mcsite_backup_last_success_timestamp_seconds", "gauge", "When the last successful backup finished",
           per_server("last_success", lambda v: int(v.timestamp())))
    metric("mcsite_backup_last_duration_seconds", "gauge", "Duration of the last successful backup",
           per_server("last_duration"))
    metric("mcsite_backup_last_size_bytes", "gauge", "Size of the last successful backup", per_server("last_size"))
    metric("mcsite_backup_last_quality_score", "gauge", "Quality score (0-100) of the last successful backup",
           per_server("last_quality"))
    metric("mcsite_backup_stored_bytes", "gauge", "Bytes of backup files kept per server", per_server("stored"))
    metric("mcsite_backup_running", "gauge", "Backups queued or running per server", per_server("running"))
    disk = disk_usage()
    metric("mcsite_backup_disk_total_bytes", "gauge", "Size of the backup disk", [({}, disk["total_bytes"])])
    metric("mcsite_backup_disk_used_bytes", "gauge", "Used bytes on the backup disk", [({}, disk["used_bytes"])])
    metric("mcsite_backup_disk_free_bytes", "gauge", "Free bytes on the backup disk", [({}, disk["free_bytes"])])
    return HttpResponse("\n".join(lines) + "\n", content_type="text/plain; version=0.0.4; charset=utf-8")


def _ratio(percent):
    return None if percent is None else round(percent / 100.0, 4)
