"""Web pages for looking inside a backup: its file tree one folder at a time
(from the list kept at verification: nothing is decompressed on a page
view), "Restore only this…" links into the usual restore preview, and
"Restore into a new folder…". Ownership is `visible_server` and the
owner-scoped backup query (404 for anyone else); changes go through the
services the API uses, source="web"."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import urlencode

from backups.models import BackupRecord
from backups.services import contents, restores
from mcsite.errors import DomainError
from servers.views import visible_server


def _backup_of(request, server, backup_id) -> BackupRecord:
    return get_object_or_404(BackupRecord.objects.for_user(request.user), server=server, pk=backup_id)


def size_label(size_bytes: int) -> str:
    """MiB like every other page; below a MiB in KiB, below a KiB in bytes."""
    if size_bytes >= 2**20:
        return f"{size_bytes / 2**20:.1f} MiB"
    if size_bytes >= 1024:
        return f"{size_bytes / 1024:.1f} KiB"
    return f"{size_bytes} bytes"


def _crumbs(path: str) -> list[dict]:
    crumbs, parts = [], path.split("/") if path else []
    for n in range(len(parts)):
        crumbs.append({"name": parts[n], "path": "/".join(parts[: n + 1])})
    return crumbs


def restore_link(server, record, paths) -> str:
    query = urlencode([("backup", record.filename), *[("path", p) for p in paths]])
    return f"{reverse('restore', args=[server.pk])}?{query}"


@login_required
def backup_files(request, server_id, backup_id):
    server = visible_server(request, server_id)
    record = _backup_of(request, server, backup_id)
    try:
        level = contents.contents_level(record=record, path=request.GET.get("path", ""))
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("backup-files", server_id=server.pk, backup_id=record.pk)
    restorable = record.status == BackupRecord.Status.SUCCEEDED
    for entry in level["entries"]:
        entry["restore_url"] = restore_link(server, record, [entry["path"]]) if restorable else ""
        entry["size_label"] = size_label(entry["size_bytes"])
    level["size_label"] = size_label(level["size_bytes"])
    parts = contents.contents_parts(record=record) if level["listed"] and not level["path"] else []
    for part in parts:
        part["restore_url"] = restore_link(server, record, part["paths"]) if restorable else ""
        part["size_label"] = size_label(part["size_bytes"])
    return render(request, "backups/backup_files.html", {
        "server": server, "backup": record, "level": level, "crumbs": _crumbs(level["path"]), "parts": parts,
        "restorable": restorable, "not_listed": contents.NOT_LISTED,
        "folder_restore_url": restore_link(server, record, [level["path"]]) if restorable and level["path"] else "",
    })


@login_required
def backup_copy(request, server_id, backup_id):
    """GET: the form. POST: a new server from this backup, then its restore's page."""
    server = visible_server(request, server_id)
    record = _backup_of(request, server, backup_id)
    values = {"name": f"{server.name} copy", "directory": f"{server.directory}-copy"}
    error = ""
    if request.method == "POST":
        values = {"name": request.POST.get("name", ""), "directory": request.POST.get("directory", "")}
        try:
            row = restores.restore_copy(record=record, name=values["name"], directory=values["directory"],
                                        actor=request.user, request=request, source="web")
        except DomainError as exc:
            error = exc.message
        else:
            messages.success(request, f"Restoring {record.filename} into the new server {row.server.name}.")
            return redirect("restore-detail", server_id=row.server_id, restore_id=row.pk)
    return render(request, "backups/backup_copy.html", {"server": server, "backup": record, "values": values,
                                                        "error": error}, status=400 if error else 200)
