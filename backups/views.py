"""The seed's `/backup/<server_id>` page and what it drives: schedule,
"Backup Now" with live progress, history, verify/lock, restore with preview,
confirmation, progress and rollback. Ownership is `visible_server` (404 for
anyone else); changes go through the services the API uses, source="web".
Progress endpoints only read the records a worker updates; they never run
the engine in the web process."""

import math

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Prefetch
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from backups import selectors
from backups.forms import ScheduleForm
from backups.models import BackupRecord, BackupSettings, OffsiteCopy, RestoreRequest, StorageTarget
from backups.progress_display import backup_progress, restore_progress, restore_step_labels
from backups.services import actions, restores, retention, schedules, snapshots
from backups.services.runs import backup_trigger
from mcsite.errors import DomainError
from servers.selectors import server_status
from servers.views import visible_server

HISTORY_LIMIT = 50


def _nice_ceiling(value: float) -> float:
    """The smallest "round" number (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 × 10^n) at least `value`."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if step * magnitude >= value * (1 - 1e-9):
            return round(step * magnitude, 10)
    return 10 * magnitude


def _axis_label(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") or "0"


def line_chart(points: list[tuple], *, unit: str, width: int = 380, height: int = 200) -> dict:
    """Geometry of a small SVG line chart (drawn by templates/backups/_line_chart.html):
    one point per backup, evenly spaced, y from zero to a round number at or
    above the largest value. The unit is in the chart's title, so the y-axis
    labels are plain numbers and the left margin is as wide as the longest."""
    right, top, bottom = 12, 12, 26
    if not points:
        return {"empty": True, "unit": unit, "width": width, "height": height}
    peak = max(value for _, value in points)
    ceiling = _nice_ceiling(peak)
    top_label, mid_label = _axis_label(ceiling), _axis_label(ceiling / 2)
    # 12 px labels: at most ~7.5 px a character, 6 px from the axis, 4 px from the edge.
    left = 10 + math.ceil(7.5 * max(len(top_label), len(mid_label)))
    span_x, span_y = width - left - right, height - top - bottom
    step = span_x / max(1, len(points) - 1)
    dots = []
    for i, (when, value) in enumerate(points):
        x = left + (i * step if len(points) > 1 else span_x / 2)
        y = top + span_y * (1 - value / ceiling)
        dots.append({"x": round(x, 1), "y": round(y, 1), "when": when, "value": value})
    line = " ".join(f"{d['x']},{d['y']}" for d in dots)
    base = top + span_y
    return {
        "empty": False, "unit": unit, "width": width, "height": height, "dots": dots, "line": line,
        "area": f"{dots[0]['x']},{base} {line} {dots[-1]['x']},{base}",
        "left": left, "label_x": left - 6, "right_x": width - right, "top": top, "base": base,
        "mid": top + span_y / 2, "peak": peak, "ceiling": ceiling, "top_label": top_label, "mid_label": mid_label,
        "first": points[0][0], "last": points[-1][0],
    }


def _wants_json(request) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _backup_of(request, server, backup_id) -> BackupRecord:
    return get_object_or_404(BackupRecord.objects.for_user(request.user), server=server, pk=backup_id)


def _restore_of(request, server, restore_id) -> RestoreRequest:
    return get_object_or_404(RestoreRequest.objects.for_user(request.user).select_related("backup", "safety_backup"),
                             server=server, pk=restore_id)


def _back(server, anchor: str = ""):
    return redirect(reverse("server-backups", args=[server.pk]) + anchor)


# --- the page -----------------------------------------------------------------

def _page_context(request, server, schedule_form=None) -> dict:
    status = selectors.backup_status(server=server)
    records = BackupRecord.objects.filter(server=server)
    trend = selectors.backup_trend(records=records)
    metrics = status["metrics"]
    return {
        "server": server,
        "server_status": server_status(server=server),
        "status": status,
        "schedule": status["schedule"],
        "schedule_form": schedule_form or ScheduleForm.for_schedule(status["schedule"]),
        "time_zone": settings.MCSITE_TIME_ZONE,
        "active_backup": status["running_backup"],
        "active_progress": backup_progress(status["running_backup"]) if status["running_backup"] else None,
        "active_restore": status["running_restore"],
        "history": records.select_related("requested_by").prefetch_related(Prefetch(
            "copies", queryset=OffsiteCopy.objects.select_related("target").order_by("target__name")
        ))[:HISTORY_LIMIT],
        "restores": RestoreRequest.objects.filter(server=server).select_related("backup")[:10],
        "size_chart": line_chart([(r["created_at"], (r["size_bytes"] or 0) / 2**20) for r in trend], unit="MiB"),
        "duration_chart": line_chart([(r["created_at"], r["duration_seconds"] or 0) for r in trend], unit="s"),
        # The rates the API's status reports (selectors.backup_metrics), side by side.
        "rates": [{"key": key, "label": label, "count": metrics[f"backups_{key}"],
                   "success": metrics[f"success_rate_{key}"], "verified": metrics[f"verification_rate_{key}"]}
                  for key, label in (("24h", "24 hours"), ("7d", "7 days"), ("30d", "30 days"))],
        "disk": status["disk_usage"],
        **_format_context(request, server),
    }


def _format_context(request, server) -> dict:
    row = snapshots.repository_of(server)
    return {
        "backup_format": "incremental" if row is not None and row.active else "archive",
        "repository": row,
        "repository_snapshots": row.snapshots.filter(status=BackupRecord.Status.SUCCEEDED).exclude(
            snapshot_id="").count() if row else 0,
        "repository_saved": max(0, row.logical_bytes - row.stored_bytes) if row else 0,
        "storage_targets": StorageTarget.objects.filter(enabled=True) if request.user.is_superuser else [],
    }


@login_required
@require_POST
def backup_format(request, server_id):
    """Archive or incremental (issue #14)."""
    server = visible_server(request, server_id)
    try:
        snapshots.backup_format_set(server=server, backup_format=request.POST.get("format", ""),
                                    target_name=request.POST.get("repository_target") or None, actor=request.user,
                                    request=request, source="web")
    except DomainError as exc:
        messages.error(request, exc.message)
        return _back(server, "#format")
    if request.POST.get("format") == "incremental":
        messages.success(request, "Backups of this server are now incremental snapshots, from the next backup on.")
    else:
        messages.success(request, "Backups of this server are archives again. Its snapshots stay restorable.")
    return _back(server, "#format")


@login_required
@require_GET
def backup_page(request, server_id):
    server = visible_server(request, server_id)
    return render(request, "backups/backup_page.html", _page_context(request, server))


@login_required
@require_POST
def schedule_save(request, server_id):
    """Create, update, enable/disable or delete the server's schedule."""
    server = visible_server(request, server_id)
    schedule = getattr(server, "backup_schedule", None)
    action = request.POST.get("action", "save")
    try:
        if action == "delete" and schedule is not None:
            schedules.backup_schedule_delete(schedule=schedule, actor=request.user, request=request, source="web")
            messages.success(request, "Schedule deleted. No automated backups will run.")
            return _back(server, "#schedule")
        if action in ("enable", "disable") and schedule is not None:
            schedules.backup_schedule_update(schedule=schedule, data={"enabled": action == "enable"},
                                             actor=request.user, request=request, source="web")
            messages.success(request, f"Schedule {action}d.")
            return _back(server, "#schedule")
        form = ScheduleForm(request.POST)
        if not form.is_valid():
            messages.error(request, "The schedule was not saved: please correct the fields marked below.")
            return render(request, "backups/backup_page.html", _page_context(request, server, form), status=400)
        # A retention change that would delete backups the current one keeps is
        # shown first, and saved only by a second POST confirming those backups.
        policy = retention.RetentionPolicy(**form.retention_data())
        _, newly_deleted = retention.retention_change_preview(server=server, policy=policy)
        confirmed = {int(n) for n in request.POST.get("confirm_deletions", "").split(",") if n.strip().isdigit()}
        if newly_deleted and not {d.record.pk for d in newly_deleted} <= confirmed:
            n = len(newly_deleted)
            messages.warning(request, f"Not saved yet: this retention would delete {n} backup{'s' if n != 1 else ''} "
                                      "the current one keeps. Check the list under Schedule, then confirm or cancel.")
            context = _page_context(request, server, form)
            context["retention_confirm"] = {
                "deletions": newly_deleted, "ids": ",".join(str(d.record.pk) for d in newly_deleted),
                "bytes": sum(d.record.size_bytes or 0 for d in newly_deleted), "description": policy.describe(),
            }
            return render(request, "backups/backup_page.html", context)
        if schedule is None:
            schedules.backup_schedule_create(server=server, data=form.schedule_data(), actor=request.user,
                                             request=request, source="web")
            messages.success(request, "Schedule created." + _deletion_note(newly_deleted))
        else:
            schedules.backup_schedule_update(schedule=schedule, data=form.schedule_data(), actor=request.user,
                                             request=request, source="web")
            messages.success(request, "Schedule updated." + _deletion_note(newly_deleted))
    except DomainError as exc:
        messages.error(request, exc.message)
    return _back(server, "#schedule")


def _deletion_note(deletions: list) -> str:
    if not deletions:
        return ""
    n = len(deletions)
    return (f" {n} backup{'s' if n != 1 else ''} will be deleted by the next retention run "
            "(after the next backup, or within the hour).")


# --- backups --------------------------------------------------------------------

@login_required
@require_POST
def backup_now(request, server_id):
    server = visible_server(request, server_id)
    try:
        record = backup_trigger(server=server, actor=request.user, request=request, source="web")
    except DomainError as exc:
        if _wants_json(request):
            return JsonResponse({"error": exc.message, "code": exc.code.value}, status=exc.http_status)
        messages.error(request, exc.message)
        return _back(server)
    if _wants_json(request):
        return JsonResponse({"progress_url": reverse("backup-progress", args=[server.pk, record.pk]),
                             **backup_progress(record)}, status=202)
    messages.success(request, "Backup started.")
    return _back(server, "#progress")


@login_required
@require_GET
def backup_progress_view(request, server_id, backup_id):
    record = _backup_of(request, visible_server(request, server_id), backup_id)
    return JsonResponse(backup_progress(record))


@login_required
@require_POST
def backup_verify(request, server_id, backup_id):
    """Queues a verification, as the API does: it reads the whole archive, so
    it runs on the worker that sits on the disk, not in the web process."""
    server = visible_server(request, server_id)
    record = _backup_of(request, server, backup_id)
    try:
        actions.backup_verify_request(record=record, actor=request.user, request=request, source="web")
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Verification of {record.filename} queued; refresh in a moment for the result.")
    return _back(server, "#history")


@login_required
@require_POST
def backup_lock(request, server_id, backup_id):
    server = visible_server(request, server_id)
    record = _backup_of(request, server, backup_id)
    locked = request.POST.get("locked") == "1"
    try:
        actions.backup_lock(record=record, locked=locked, actor=request.user, request=request, source="web")
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{record.filename} {'locked: retention will keep it' if locked else 'unlocked'}.")
    return _back(server, "#history")


# --- restores -------------------------------------------------------------------

@login_required
def restore(request, server_id):
    """GET: the preview of `?backup=<filename>`. POST: the confirmation."""
    server = visible_server(request, server_id)
    params = request.POST if request.method == "POST" else request.GET
    filename = params.get("backup", "")
    # Checked by default: what backups leave out (logs/, …) stays; "0" replaces everything.
    keep_excluded = params.get("keep_excluded", "1") != "0"
    paths = params.getlist("path")  # a partial restore (the backup's Files page): only these are replaced
    if request.method == "POST":
        try:
            restore_row = restores.restore_request(server=server, backup_filename=filename, actor=request.user,
                                                   request=request, source="web", keep_excluded=keep_excluded,
                                                   paths=paths)
        except DomainError as exc:
            messages.error(request, exc.message)
            return _back(server, "#history")
        messages.success(request, f"Restore of {filename} started.")
        return redirect("restore-detail", server_id=server.pk, restore_id=restore_row.pk)
    try:
        preview = restores.restore_preview(server=server, backup_filename=filename, keep_excluded=keep_excluded,
                                           paths=paths)
    except DomainError as exc:
        messages.error(request, exc.message)
        return _back(server, "#history")
    preview["warnings"] = [w.replace("Restore with keep_excluded false to replace everything.",
                                     "Untick “Keep what backups leave out” below to replace everything.")
                           .replace("With keep_excluded false they are removed", "They will be removed")
                           for w in preview["warnings"]]
    return render(request, "backups/restore_preview.html", {"server": server, "preview": preview,
                                                            "backup": preview["backup"],
                                                            "keep_excluded": keep_excluded})


@login_required
@require_GET
def restore_detail(request, server_id, restore_id):
    server = visible_server(request, server_id)
    row = _restore_of(request, server, restore_id)
    steps = restore_step_labels(row)
    return render(request, "backups/restore_detail.html", {
        "server": server, "restore": row, "steps": steps, "progress": restore_progress(row),
        "safety_backup_days": BackupSettings.load().safety_backup_days})


@login_required
@require_GET
def restore_progress_view(request, server_id, restore_id):
    row = _restore_of(request, visible_server(request, server_id), restore_id)
    return JsonResponse(restore_progress(row))


@login_required
@require_POST
def restore_rollback(request, server_id, restore_id):
    server = visible_server(request, server_id)
    row = _restore_of(request, server, restore_id)
    try:
        rollback = restores.restore_rollback(restore=row, actor=request.user, request=request, source="web")
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("restore-detail", server_id=server.pk, restore_id=row.pk)
    messages.success(request, "Rollback started: the files from before the restore are being put back.")
    return redirect("restore-detail", server_id=server.pk, restore_id=rollback.pk)


@login_required
@require_POST
def kept_backup_delete(request, backup_id):
    """Deletes a backup kept when its server was deleted (file removed, record kept)."""
    record = get_object_or_404(BackupRecord.objects.for_user(request.user), server__isnull=True, pk=backup_id)
    try:
        actions.backup_delete(record=record, actor=request.user, request=request, source="web")
        messages.success(request, f"Deleted {record.filename}.")
    except DomainError as exc:
        messages.error(request, exc.message)
    return redirect(reverse("server-list") + "#kept-backups")
