from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from backups import scheduling
from backups.forms import HH_MM_MESSAGE, ScheduleModelFormMixin, ScheduleTimeField
from backups.admin import SuperuserOnlyAdminMixin
from backups.models import BackupSchedule
from mcsite.admin_scoping import OwnerScopedAdmin, ReadOnlyAdminMixin
from mcsite.errors import DomainError
from servers.forms import ServerForm
from servers.models import Node, NodeCall, Server
from servers.nodes import node_state
from servers.selectors import server_status


class ScheduleInlineForm(ScheduleModelFormMixin, forms.ModelForm):
    schedule_time = ScheduleTimeField(required=False, help_text=f"{HH_MM_MESSAGE} In the site's time zone "
                                                                "(hourly: the first run; cron: not used).")

    class Meta:
        model = BackupSchedule
        fields = ["schedule_type", "schedule_time", "interval_hours", "cron_expression", "retention_days",
                  "keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "enabled",
                  "compression", "encrypt", "skip_unchanged"]


class BackupScheduleInline(admin.StackedInline):
    """The server's schedule on its own page. Saved by ServerAdmin.save_formset
    through the schedule services, so its PeriodicTask changes with it."""

    model = BackupSchedule
    form = ScheduleInlineForm
    extra = 0
    max_num = 1
    can_delete = True
    show_change_link = True
    readonly_fields = ("next_run_display",)

    @admin.display(description="next run")
    def next_run_display(self, obj):
        value = scheduling.next_run(obj) if obj and obj.pk else None
        return f"{value:%Y-%m-%d %H:%M} {settings.MCSITE_TIME_ZONE}" if value else "—"


@admin.register(Server)
class ServerAdmin(OwnerScopedAdmin):
    form = ServerForm
    inlines = [BackupScheduleInline]
    list_display = ("name", "status_badge", "owner", "directory", "schedule_summary", "backups_link",
                    "restores_link", "node")
    list_filter = ("backup_mode", "node", ("owner", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("owner", "backup_schedule")
    search_fields = ("name", "directory", "owner__username")
    readonly_fields = ("status_badge", "related_links", "pid", "pid_create_time", "created_at", "updated_at")
    actions = ["backup_now", "start_servers", "stop_servers", "move_to_node"]

    # --- columns ---------------------------------------------------------------

    @admin.display(description="status")
    def status_badge(self, obj):
        if obj is None or obj.pk is None:
            return "—"
        state = server_status(server=obj)["state"]
        colour = {"running": "#1f7a3d", "stopped": "#6b7280", "node_down": "#b42318"}.get(state, "#b7791f")
        return format_html('<strong style="color:{}">● {}</strong>', colour, state.replace("_", " "))

    @admin.display(description="schedule")
    def schedule_summary(self, obj):
        schedule = getattr(obj, "backup_schedule", None)
        if schedule is None:
            return "—"
        when = (schedule.description if schedule.schedule_type in ("hourly", "cron")
                else f"{schedule.schedule_type} {schedule.schedule_time:%H:%M}")
        text = f"{when} {settings.MCSITE_TIME_ZONE}"
        return text if schedule.enabled else f"{text} (disabled)"

    @admin.display(description="backups")
    def backups_link(self, obj):
        url = reverse("admin:backups_backuprecord_changelist") + f"?server__id__exact={obj.pk}"
        return format_html('<a href="{}">Backups</a>', url)

    @admin.display(description="restores")
    def restores_link(self, obj):
        url = reverse("admin:backups_restorerequest_changelist") + f"?server__id__exact={obj.pk}"
        return format_html('<a href="{}">Restores</a>', url)

    @admin.display(description="related")
    def related_links(self, obj):
        if obj is None or obj.pk is None:
            return "—"
        return format_html('{} · {} · <a href="{}">Backup page</a>', self.backups_link(obj),
                           self.restores_link(obj), reverse("server-backups", args=[obj.pk]))

    # --- actions ---------------------------------------------------------------

    def _each(self, request, queryset, action, done: str):
        for server in queryset:
            try:
                outcome = action(server)
                message = outcome.message if hasattr(outcome, "message") else done  # a start/stop says what happened
                self.message_user(request, f"{server}: {message}")
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

    @admin.action(description="Move to another game host…")
    def move_to_node(self, request, queryset):
        """Asks for the new host (with what must be copied first), then moves
        each server through server_update: refused while a backup or restore
        runs or while the new host does not see the folder; the schedule
        follows; the notes say what stays on the old host."""
        from django.contrib.admin import helpers
        from django.template.response import TemplateResponse

        from servers.services import move_notes, server_update

        if request.POST.get("apply"):
            node = request.POST.get("node", "")
            for server in queryset:
                old_node = server.node
                try:
                    server_update(server=server, data={"node": node}, actor=request.user, request=request,
                                  source="admin")
                except DomainError as exc:
                    self.message_user(request, f"{server}: {exc.message}", messages.ERROR)
                    continue
                for note in move_notes(server, old_node):
                    self.message_user(request, f"{server}: {note}", messages.WARNING)
            return None
        rows = [{"name": n.name, "state": node_state(n)} for n in Node.objects.all()]
        return TemplateResponse(request, "admin/servers/server/move.html", {
            **self.admin_site.each_context(request), "title": "Move to another game host", "servers": list(queryset),
            "nodes": rows, "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME, "opts": self.model._meta})

    # --- saving ----------------------------------------------------------------

    def get_inlines(self, request, obj):
        # On the add page a schedule would need the server first; it is added
        # on the change page (or with "Enable Automated Backups" on /servers/new/).
        return self.inlines if obj is not None else []

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        user = request.user

        class UserBoundForm(form):
            def __init__(self, *args, **inner):
                inner.setdefault("user", user)
                super().__init__(*args, **inner)

        return UserBoundForm

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            fields.append("start_command")  # it runs on the host: administrators only
        return fields

    def get_fields(self, request, obj=None):
        fields = list(super().get_fields(request, obj))
        if request.user.is_superuser and "owner" not in fields:
            fields.insert(1, "owner")
        if obj is None:  # nothing to show about a server that does not exist yet
            fields = [f for f in fields if f not in ("status_badge", "related_links", "pid", "pid_create_time")]
        if obj is None or not obj.has_rcon_password:  # the form offers no removal of nothing
            fields = [f for f in fields if f != "clear_rcon_password"]
        return fields

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        """Not in one transaction as Django's admin does it: the folder of a
        server on another game host is checked by a call that node's worker
        must see (issue #15); the services keep their own transactions."""
        return self._changeform_view(request, object_id, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        """Through the server services, like every other front door: a new
        node moves the schedule's task to that node's queue, and so on."""
        from servers.services import move_notes, server_create, server_update

        if change:
            before = Server.objects.get(pk=obj.pk)
            old_node = before.node
            server = server_update(server=before, data=form.service_data(changed_only=True),
                                   actor=request.user, request=request, source="admin")
            if server.node != old_node:  # moved to another game host: what stays behind (docs/deployment.md)
                for note in move_notes(server, old_node):
                    self.message_user(request, note, messages.WARNING)
        else:
            owner = obj.owner if request.user.is_superuser and obj.owner_id else request.user
            data = {k: v for k, v in form.service_data().items() if k != "owner"}
            server = server_create(owner=owner, data=data, actor=request.user, request=request, source="admin")
            obj.pk, obj._state.adding = server.pk, False
        obj.refresh_from_db()

    def save_formset(self, request, form, formset, change):
        if formset.model is not BackupSchedule:
            return super().save_formset(request, form, formset, change)
        from backups.services import schedules

        server = form.instance
        for inline_form in formset.forms:
            schedule = inline_form.instance if inline_form.instance.pk else None
            try:
                if schedule is not None and inline_form in formset.deleted_forms:
                    schedules.backup_schedule_delete(schedule=schedule, actor=request.user, request=request,
                                                     source="admin")
                elif inline_form.has_changed() and inline_form.cleaned_data:
                    data = {f: inline_form.cleaned_data[f] for f in schedules.SCHEDULE_FIELDS
                            if f in inline_form.cleaned_data}
                    if schedule is None:
                        schedules.backup_schedule_create(server=server, data=data, actor=request.user,
                                                         request=request, source="admin")
                    else:
                        changed = {f: v for f, v in data.items() if f in inline_form.changed_data}
                        schedules.backup_schedule_update(schedule=schedule, data=changed, actor=request.user,
                                                         request=request, source="admin")
            except DomainError as exc:
                self.message_user(request, f"Schedule not saved: {exc.message}", messages.ERROR)
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []

    def delete_model(self, request, obj):
        from servers.services import server_delete

        server_delete(server=obj, delete_backups=False, actor=request.user, request=request, source="admin")

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_model(request, obj)


@admin.register(Node)
class NodeAdmin(SuperuserOnlyAdminMixin, admin.ModelAdmin):
    """Game hosts as they report themselves (issue #15): written by each
    node's own worker, never edited here; an admin may delete the row of a
    retired host (one that servers still name is listed again as unknown)."""

    list_display = ("name", "state_badge", "hostname", "last_heartbeat", "servers_disk", "backup_disk",
                    "worker_count", "version", "server_count")
    search_fields = ("name", "hostname")
    readonly_fields = ("name", "state_badge", "hostname", "version", "worker_count", "started_at", "last_heartbeat",
                       "down_since", "servers_disk", "backup_disk", "server_count", "statuses")
    fields = readonly_fields

    def has_add_permission(self, request, *args):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="state")
    def state_badge(self, obj):
        state = node_state(obj)
        colour = {"up": "#1f7a3d", "down": "#b42318"}.get(state, "#b7791f")
        return format_html('<strong style="color:{}">● {}</strong>', colour, state)

    @staticmethod
    def _disk(free, total) -> str:
        if free is None or total is None:
            return "—"
        return f"{free / 2**30:.1f} GiB free of {total / 2**30:.1f} GiB"

    @admin.display(description="servers root")
    def servers_disk(self, obj):
        return self._disk(obj.servers_root_free, obj.servers_root_total)

    @admin.display(description="backup root")
    def backup_disk(self, obj):
        return self._disk(obj.backup_root_free, obj.backup_root_total)

    @admin.display(description="servers")
    def server_count(self, obj):
        count = Server.objects.filter(node=obj.name).count()
        url = reverse("admin:servers_server_changelist") + f"?node={obj.name}"
        return format_html('<a href="{}">{}</a>', url, count)


@admin.register(NodeCall)
class NodeCallAdmin(ReadOnlyAdminMixin, SuperuserOnlyAdminMixin, admin.ModelAdmin):
    """What the web tier asked nodes to do, and their answers (read only;
    finished calls go after a week, servers/nodes.calls_tidy)."""

    list_display = ("created_at", "node", "action", "server", "status", "error_code", "actor")
    list_filter = ("status", "action", "node")
    readonly_fields = ("node", "server", "action", "arguments", "status", "result", "error_code", "error_message",
                       "actor", "created_at", "started_at", "finished_at")
    fields = readonly_fields
