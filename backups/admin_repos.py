"""Incremental repositories in the admin (issue #14): what each server's
repository holds and saves, and the two things an admin does to one —
rotate its key, prune it now. Rows are written by the site (the format is
chosen on the server's backup page or the API), so nothing is added or
edited here."""

from django.contrib import admin, messages

from backups.admin import SuperuserOnlyAdminMixin as SuperuserOnly
from backups.models import BackupRecord, SnapshotRepository
from backups.services import snapshots
from mcsite.admin_scoping import ReadOnlyAdminMixin
from mcsite.errors import DomainError


def _mib(value) -> str:
    return f"{(value or 0) / 2**20:,.1f} MiB"


@admin.register(SnapshotRepository)
class SnapshotRepositoryAdmin(ReadOnlyAdminMixin, SuperuserOnly, admin.ModelAdmin):
    list_display = ("server_name", "where", "active", "snapshot_count", "stored", "worlds", "dedup", "key_changed_at",
                    "pruned_at")
    list_filter = ("active", "target")
    search_fields = ("server_name", "location", "repo_uid")
    list_select_related = ("target",)
    actions = ["rotate_key", "prune_now", "full_read_next"]
    exclude = ("kek_sealed",)

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in SnapshotRepository._meta.fields if f.name != "kek_sealed"]

    @admin.display(description="Where")
    def where(self, row):
        return f"target {row.target.name}" if row.target_id else f"backup root of {row.node or 'its game host'}"

    @admin.display(description="Snapshots")
    def snapshot_count(self, row):
        return row.snapshots.filter(status=BackupRecord.Status.SUCCEEDED).exclude(snapshot_id="").count()

    @admin.display(description="Total size")
    def stored(self, row):
        return _mib(row.stored_bytes)

    @admin.display(description="Worlds kept")
    def worlds(self, row):
        return _mib(row.logical_bytes)

    @admin.display(description="Deduplication")
    def dedup(self, row):
        return f"{row.dedup_ratio}×" if row.dedup_ratio else "—"

    @admin.action(description="Rotate the key (re-wraps the repository key; no blob is re-encrypted)")
    def rotate_key(self, request, queryset):
        done = 0
        for row in queryset.select_related("target"):
            try:
                snapshots.repository_rotate_key(row=row, actor=request.user, request=request)
                done += 1
            except DomainError as exc:
                self.message_user(request, f"{row}: {exc.message}", messages.ERROR)
        if done:
            self.message_user(request, f"{done} repository key(s) rotated. Export the keys again "
                                       "(the old export no longer opens them).", messages.WARNING)

    @admin.action(description="Read every file at the next snapshot (trust no size, mtime or inode)")
    def full_read_next(self, request, queryset):
        rows = list(queryset.filter(active=True, server__isnull=False).select_related("server"))
        for row in rows:
            snapshots.repository_full_read_next(server=row.server, actor=request.user, request=request,
                                                source="admin")
        self.message_user(request, f"{len(rows)} repositories: the next snapshot reads every file.")

    @admin.action(description="Prune now (queued on the node that holds it; unused data is marked, and deleted "
                              "by the next prune)")
    def prune_now(self, request, queryset):
        queued = []
        for row in queryset.select_related("target", "server"):
            try:
                node = snapshots.repository_prune_request(row=row, actor=request.user, request=request)
            except DomainError as exc:
                self.message_user(request, f"{row}: {exc.message}", messages.ERROR)
                continue
            queued.append(f"{row} (on {node})")
        if queued:
            self.message_user(request, f"Prune queued for {', '.join(queued)}; \"Pruned at\" shows when each "
                                       "is done.")
