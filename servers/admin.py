from django.contrib import admin, messages

from mcsite.errors import DomainError

from mcsite.admin_scoping import OwnerScopedAdmin
from servers.forms import ServerForm
from servers.models import Server


@admin.register(Server)
class ServerAdmin(OwnerScopedAdmin):
    form = ServerForm
    list_display = ("name", "owner", "directory", "backup_mode", "node", "created_at")
    list_filter = ("backup_mode", "node", ("owner", admin.RelatedOnlyFieldListFilter))
    search_fields = ("name", "directory", "owner__username")
    readonly_fields = ("pid", "pid_create_time", "created_at", "updated_at")
    actions = ["backup_now", "start_servers", "stop_servers"]

    def _each(self, request, queryset, action, done: str):
        for server in queryset:
            try:
                action(server)
                self.message_user(request, f"{server}: {done}")
            except DomainError as exc:
                self.message_user(request, f"{server}: {exc.message}", messages.ERROR)

    @admin.action(description="Back up now")
    def backup_now(self, request, queryset):
        from backups.services.runs import backup_trigger

        self._each(request, queryset, lambda s: backup_trigger(server=s, actor=request.user, request=request,
                                                               source="admin"), "backup queued")

    @admin.action(description="Start")
    def start_servers(self, request, queryset):
        from servers.services import server_start

        self._each(request, queryset, lambda s: server_start(server=s, actor=request.user, request=request,
                                                             source="admin"), "started")

    @admin.action(description="Stop (gracefully)")
    def stop_servers(self, request, queryset):
        from servers.services import server_stop

        self._each(request, queryset, lambda s: server_stop(server=s, actor=request.user, request=request,
                                                            source="admin"), "stopped")

    def get_fields(self, request, obj=None):
        fields = list(super().get_fields(request, obj))
        if request.user.is_superuser and "owner" not in fields:
            fields.insert(1, "owner")
        return fields

    def save_model(self, request, obj, form, change):
        if not change and (not request.user.is_superuser or not obj.owner_id):
            obj.owner = request.user
        super().save_model(request, obj, form, change)
        self.audit(request, "server.update" if change else "server.create", obj)

    def delete_model(self, request, obj):
        from servers.services import server_delete

        server_delete(server=obj, delete_backups=False, actor=request.user, request=request, source="admin")

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_model(request, obj)
