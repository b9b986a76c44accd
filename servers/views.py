"""Web pages for servers (SPEC §11). Every page reads through
`Server.objects.for_user` (another owner's server is a 404) and every change
goes through the same services as the API, with source="web"."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.db.models import OuterRef, Q, Subquery, Sum
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from backups import scheduling
from backups.forms import AutomatedBackupsForm
from backups.models import BackupRecord
from backups.selectors import disk_usage
from backups.services import backup_schedule_create
from mcsite.errors import DomainError
from servers import services
from servers.forms import ServerForm
from servers.models import Server
from servers.nodes import nodes_by_name
from servers.selectors import server_status

_STORED = [BackupRecord.Status.SUCCEEDED, BackupRecord.Status.FAILED]
_FINISHED = [BackupRecord.Status.SUCCEEDED, BackupRecord.Status.FAILED, BackupRecord.Status.DELETED]


def visible_server(request, server_id) -> Server:
    """The one ownership check of the web pages: superuser → any, owner → own, else 404."""
    return get_object_or_404(Server.objects.for_user(request.user).select_related("owner"), pk=server_id)


def _rows(servers) -> list[dict]:
    """One dict per server for the list, in a fixed number of queries."""
    last_ids = (BackupRecord.objects.filter(server=OuterRef("pk"), status__in=_FINISHED)
                .exclude(trigger=BackupRecord.Trigger.SAFETY).order_by("-created_at", "-id").values("pk")[:1])
    servers = list(servers.select_related("backup_schedule", "owner").annotate(
        last_backup_id=Subquery(last_ids),
        backup_bytes=Sum("backups__size_bytes",
                         filter=Q(backups__status__in=_STORED)
                         & (~Q(backups__storage_path="") | ~Q(backups__snapshot_id=""))  # a snapshot: what it added
                         & Q(backups__local_removed_at__isnull=True)),  # bytes on this disk
    ))
    last = BackupRecord.objects.in_bulk([s.last_backup_id for s in servers if s.last_backup_id])
    active = set(BackupRecord.objects.filter(server__in=servers, status__in=["queued", "running"])
                 .values_list("server_id", flat=True))
    node_rows = nodes_by_name(s.node for s in servers)  # what remote nodes reported, read once
    rows = []
    for server in servers:
        schedule = getattr(server, "backup_schedule", None)
        rows.append({
            "server": server,
            "status": server_status(server=server, node_rows=node_rows),
            "schedule": schedule,
            "next_run": scheduling.next_run(schedule) if schedule else None,
            "last_backup": last.get(server.last_backup_id),
            "backup_bytes": server.backup_bytes or 0,
            "backup_active": server.pk in active,
        })
    return rows


@login_required
def server_list(request):
    servers = Server.objects.for_user(request.user)
    # Kept with their file, or only as a verified off-site copy (restorable and downloadable from it).
    kept = (BackupRecord.objects.for_user(request.user).filter(server__isnull=True, status__in=_STORED)
            .filter(~Q(storage_path="") | ~Q(snapshot_id="") | Q(copies__status="verified")).distinct()
            .order_by("-created_at")[:100])
    return render(request, "servers/server_list.html", {
        "rows": _rows(servers),
        "disk": disk_usage(),
        "kept_backups": kept,
    })


def _show_error(form, exc: DomainError) -> None:
    """A service's refusal shown where it belongs: on the field it names, else on top."""
    placed = False
    for field, problems in (exc.details or {}).items():
        if field in form.fields:
            for problem in problems if isinstance(problems, list) else [problems]:
                form.add_error(field, str(problem))
            placed = True
    if not placed:
        form.add_error("directory" if exc.code.value == "INVALID_DIRECTORY" else None, exc.message)


@login_required
def server_create(request):
    if request.method == "POST":
        form = ServerForm(request.POST, user=request.user)
        backup_form = AutomatedBackupsForm(request.POST, prefix="backup")
        if form.is_valid() and backup_form.is_valid():
            try:
                # Server and schedule together or not at all: a refused
                # schedule must not leave a server behind without one.
                with transaction.atomic():
                    server = services.server_create(owner=request.user, data=form.service_data(),
                                                    actor=request.user, request=request, source="web")
                    if backup_form.wants_schedule:
                        backup_schedule_create(server=server, data=backup_form.schedule_data(),
                                               actor=request.user, request=request, source="web")
            except DomainError as exc:
                _show_error(form, exc)
            else:
                note = " with automated backups" if backup_form.wants_schedule else ""
                messages.success(request, f"Server “{server.name}” created{note}.")
                for warning in services.server_warnings(server):
                    messages.warning(request, warning)
                return redirect("server-list")
        status = 400
    else:
        form = ServerForm(user=request.user)
        backup_form = AutomatedBackupsForm(prefix="backup")
        status = 200
    return render(request, "servers/server_form.html", {"form": form, "backup_form": backup_form}, status=status)


@login_required
def server_delete(request, server_id):
    server = visible_server(request, server_id)
    if request.method == "POST":
        delete_backups = request.POST.get("delete_backups") == "on"
        try:
            services.server_delete(server=server, delete_backups=delete_backups, actor=request.user,
                                   request=request, source="web")
        except DomainError as exc:
            messages.error(request, exc.message)
            return redirect("server-delete", server_id=server.pk)
        kept = "its backups were deleted" if delete_backups else "its backups were kept"
        messages.success(request, f"Server “{server.name}” deleted; {kept}.")
        return redirect("server-list")
    stored = BackupRecord.objects.filter(server=server, status__in=_STORED)
    on_disk = stored.filter(~Q(storage_path="") | ~Q(snapshot_id="")).filter(local_removed_at__isnull=True)
    # Kept only as a verified off-site copy: still restorable, and deleted with the rest when asked.
    copy_only = (stored.filter(Q(storage_path="") | Q(local_removed_at__isnull=False))
                 .filter(copies__status="verified").distinct().count())
    return render(request, "servers/server_confirm_delete.html", {
        "server": server,
        "backup_count": on_disk.count() + copy_only,
        "copy_only_count": copy_only,
        "backup_bytes": on_disk.aggregate(total=Sum("size_bytes"))["total"] or 0,
    })


def _control(request, server_id, action, done: str):
    server = visible_server(request, server_id)
    try:
        outcome = action(server=server, actor=request.user, request=request, source="web")
    except DomainError as exc:
        messages.error(request, f"{server.name}: {exc.message}")
    else:
        if outcome.done:
            messages.success(request, f"{server.name} {done}.")
        else:  # sent to its game host, which has not answered yet (issue #15)
            messages.info(request, f"{server.name}: {outcome.message}. Reload in a moment to see its status.")
    return redirect(request.POST["next"] if _safe_next(request) else "server-list")


def _safe_next(request) -> bool:
    from django.utils.http import url_has_allowed_host_and_scheme

    target = request.POST.get("next")
    return bool(target) and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()})


@login_required
@require_POST
def server_start(request, server_id):
    return _control(request, server_id, services.server_start, "started")


@login_required
@require_POST
def server_stop(request, server_id):
    """Stops only once confirmed: the buttons ask in a dialog (site.js adds
    `confirmed`); without JavaScript this answers with a page that asks."""
    if request.POST.get("confirmed") != "1":
        server = visible_server(request, server_id)
        back = request.POST["next"] if _safe_next(request) else reverse("server-list")
        return render(request, "servers/server_confirm_stop.html", {"server": server, "next": back})
    return _control(request, server_id, services.server_stop, "stopped")
