from django import forms

from backups.forms import ScheduleModelFormMixin, ScheduleTimeField
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from backups import scheduling
from backups.models import BackupRecord, BackupSchedule, BackupSettings, RestoreRequest
from backups.services import actions, config, restores, schedules
from backups.services.retention import describe_retention
from mcsite.admin_scoping import OwnerScopedAdmin
from mcsite.errors import DomainError
from servers.models import Server


class ScheduleAdminForm(ScheduleModelFormMixin, forms.ModelForm):
    schedule_time = ScheduleTimeField(required=False, help_text="HH:MM, 24-hour, in the site's time zone "
                                                                "(hourly: the first run; cron: not used)")

    class Meta:
        model = BackupSchedule
        fields = ["server", "schedule_type", "schedule_time", "interval_hours", "cron_expression", "retention_days",
                  "keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly",
                  "enabled", "compression", "encrypt"]


@admin.register(BackupSchedule)
class BackupScheduleAdmin(OwnerScopedAdmin):
    form = ScheduleAdminForm
    list_display = ("server", "schedule_type", "time_with_zone", "retention_display", "enabled", "next_run_display")
    list_filter = ("schedule_type", "enabled", ("server", admin.RelatedOnlyFieldListFilter))
    search_fields = ("server__name",)
    list_select_related = ("server",)

    def get_readonly_fields(self, request, obj=None):
        return ("server", "next_runs_display") if obj is not None else ()

    @admin.display(description="when")
    def time_with_zone(self, obj):
        return f"{obj.summary} {settings.MCSITE_TIME_ZONE}"

    @admin.display(description="retention")
    def retention_display(self, obj):
        return describe_retention(obj)

    @admin.display(description="next runs")
    def next_runs_display(self, obj):
        runs = scheduling.next_runs(obj) if obj and obj.pk else []
        if not runs:
            return "— (disabled)"
        return format_html("{}<br>{}", obj.description,
                           ", ".join(f"{run:%a %Y-%m-%d %H:%M}" for run in runs) + f" {settings.MCSITE_TIME_ZONE}")

    @admin.display(description="next run")
    def next_run_display(self, obj):
        value = scheduling.next_run(obj)
        return f"{value:%Y-%m-%d %H:%M} {settings.MCSITE_TIME_ZONE}" if value else "— (disabled)"

    def save_model(self, request, obj, form, change):
        data = {field: form.cleaned_data[field] for field in form.changed_data if field != "server"}
        if change:
            schedules.backup_schedule_update(schedule=obj, data=data, actor=request.user, request=request,
                                             source="admin")
        else:
            data = {f: form.cleaned_data[f] for f in schedules.SCHEDULE_FIELDS if f in form.cleaned_data}
            created = schedules.backup_schedule_create(server=obj.server, data=data, actor=request.user,
                                                       request=request, source="admin")
            obj.pk = created.pk

    def delete_model(self, request, obj):
        schedules.backup_schedule_delete(schedule=obj, actor=request.user, request=request, source="admin")

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_model(request, obj)


@admin.register(BackupRecord)
class BackupRecordAdmin(OwnerScopedAdmin):
    list_display = ("filename_or_id", "server_link", "status", "trigger", "format", "size_mb", "created_at",
                    "quality_badge", "verification_passed", "locked")
    list_filter = ("status", "trigger", "locked", "verification_passed", "compression", "encrypted",
                   ("server", admin.RelatedOnlyFieldListFilter))
    search_fields = ("filename", "server_name", "sha256")
    date_hierarchy = "created_at"
    actions = ["restore_selected", "verify_selected", "lock_selected", "unlock_selected", "delete_selected_files"]
    exclude = ("storage_path",)
    list_select_related = ("server",)

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in BackupRecord._meta.fields if f.name != "storage_path"]

    def has_add_permission(self, request):
        return False  # backups are taken through "Backup now" or a schedule

    def has_delete_permission(self, request, obj=None):
        return False  # deleting goes through the service (file removed, record kept)

    @admin.display(description="backup")
    def filename_or_id(self, obj):
        return obj.filename or f"#{obj.pk}"

    @admin.display(description="server", ordering="server_name")
    def server_link(self, obj):
        if obj.server_id is None:
            return f"{obj.server_name} (deleted)"
        return format_html('<a href="{}">{}</a>', reverse("admin:servers_server_change", args=[obj.server_id]),
                           obj.server_name)

    @admin.display(description="format")
    def format(self, obj):
        return "snapshot (incremental)" if obj.snapshot_id else "archive"

    @admin.display(description="MiB (a snapshot: added)")
    def size_mb(self, obj):
        return f"{obj.size_bytes / 2**20:.1f}" if obj.size_bytes is not None else "—"

    @admin.display(description="quality")
    def quality_badge(self, obj):
        if obj.quality_score is None:
            return "—"
        return format_html('<span class="quality quality-{}">{} {}</span>', obj.quality_level.lower(),
                           obj.quality_score, obj.quality_level)

    # --- actions: each re-checks, per backup, that the actor may see its
    # server (a superuser may see any), whatever queryset it was handed ---------

    def _actionable(self, request, queryset) -> list[BackupRecord]:
        """The selected backups the actor may act on: those whose server they
        can see now (its current owner, not whoever owned it when the backup
        was taken), or, for a backup of a deleted server, that they own. The
        rest are skipped without naming them."""
        records = list(queryset.select_related("server"))
        user = request.user
        if not (user.is_active and user.is_superuser):
            servers = set(Server.objects.for_user(user).filter(pk__in={r.server_id for r in records if r.server_id})
                          .values_list("pk", flat=True))
            kept = set(BackupRecord.objects.for_user(user).filter(
                pk__in=[r.pk for r in records if r.server_id is None]).values_list("pk", flat=True))
            allowed = [r for r in records if (r.server_id in servers if r.server_id else r.pk in kept)]
            if len(allowed) != len(records):
                self.message_user(request, f"{len(records) - len(allowed)} selected backup(s) not found.",
                                  messages.ERROR)
            records = allowed
        return records

    @admin.action(description="Restore… (preview, then confirm)", permissions=["change"])
    def restore_selected(self, request, queryset):
        """Step 1 shows restore_preview on an intermediate page; its confirm
        button posts the same action back with confirm=yes (step 2), which
        calls restore_request — the same services as the API and web page."""
        if queryset.count() != 1:
            self.message_user(request, "Choose exactly one backup to restore.", messages.WARNING)
            return None
        records = self._actionable(request, queryset)
        if not records:
            return None
        record = records[0]
        if record.server is None:
            self.message_user(request, "The server of this backup was deleted; it cannot be restored here.",
                              messages.ERROR)
            return None
        try:
            if request.POST.get("confirm") == "yes":
                restore = restores.restore_request(server=record.server, backup_filename=record.filename,
                                                   actor=request.user, request=request, source="admin")
                self.message_user(request, f"Restore of {record.filename} to {record.server} queued.")
                return redirect("admin:backups_restorerequest_change", restore.pk)
            preview = restores.restore_preview(server=record.server, backup_filename=record.filename)
        except DomainError as exc:
            self.message_user(request, f"{record}: {exc.message}", messages.ERROR)
            return None
        return TemplateResponse(request, "admin/backups/restore_confirmation.html", {
            **self.admin_site.each_context(request),
            "title": f"Restore {record.filename}?",
            "opts": self.model._meta,
            "record": record,
            "preview": preview,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        })

    @admin.action(description="Verify selected backups again")
    def verify_selected(self, request, queryset):
        count = 0
        for record in self._actionable(request, queryset):
            try:
                actions.backup_verify_request(record=record, actor=request.user, request=request, source="admin")
            except DomainError:
                continue
            count += 1
        self.message_user(request, f"Verification queued for {count} backup(s).")

    def _lock(self, request, queryset, locked: bool):
        for record in self._actionable(request, queryset):
            try:
                actions.backup_lock(record=record, locked=locked, actor=request.user, request=request, source="admin")
            except DomainError as exc:
                self.message_user(request, f"{record}: {exc.message}", messages.ERROR)

    @admin.action(description="Delete backup files (records stay in history)")
    def delete_selected_files(self, request, queryset):
        deleted = 0
        for record in self._actionable(request, queryset):
            try:
                actions.backup_delete(record=record, actor=request.user, request=request, source="admin")
                deleted += 1
            except DomainError as exc:
                self.message_user(request, f"{record}: {exc.message}", messages.WARNING)
        self.message_user(request, f"{deleted} backup file(s) deleted.")

    @admin.action(description="Lock (never delete by retention)")
    def lock_selected(self, request, queryset):
        self._lock(request, queryset, True)

    @admin.action(description="Unlock")
    def unlock_selected(self, request, queryset):
        self._lock(request, queryset, False)


@admin.register(RestoreRequest)
class RestoreRequestAdmin(OwnerScopedAdmin):
    list_display = ("id", "server_link", "kind", "backup_link", "status", "created_at", "finished_at")
    list_select_related = ("server", "backup")
    list_filter = ("status", "kind", ("server", admin.RelatedOnlyFieldListFilter))
    search_fields = ("backup_filename", "server__name")
    exclude = ("steps",)

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in RestoreRequest._meta.fields if f.name != "steps"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="server", ordering="server__name")
    def server_link(self, obj):
        return format_html('<a href="{}">{}</a>', reverse("admin:servers_server_change", args=[obj.server_id]),
                           obj.server)

    @admin.display(description="backup", ordering="backup_filename")
    def backup_link(self, obj):
        if obj.backup_id is None:
            return obj.backup_filename
        return format_html('<a href="{}">{}</a>', reverse("admin:backups_backuprecord_change", args=[obj.backup_id]),
                           obj.backup_filename)


class BackupSettingsForm(forms.ModelForm):
    new_password = forms.CharField(required=False, strip=False, widget=forms.PasswordInput(render_value=False),
                                   help_text="Set a new encryption password (older backups keep decrypting).")
    new_key = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False),
                              help_text="Or a base64 32-byte key.")

    class Meta:
        model = BackupSettings
        fields = ["compression", "encryption_enabled", "kdf_iterations", "verify_world", "restore_test",
                  "disk_warning_percent", "disk_emergency_percent", "safety_backup_days", "recheck_days",
                  "recheck_batch"]

    def clean(self):
        data = super().clean()
        if data.get("new_password") and data.get("new_key"):
            raise forms.ValidationError("Give a new password or a new key, not both.")
        return data


@admin.register(BackupSettings)
class BackupSettingsAdmin(admin.ModelAdmin):
    """Site-wide settings, for admins. Secrets are written, never shown."""

    form = BackupSettingsForm
    readonly_fields = ("encryption_mode", "encryption_fingerprint", "updated_at")

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser

    has_change_permission = has_view_permission

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        from django.shortcuts import redirect

        return redirect("admin:backups_backupsettings_change", BackupSettings.load().pk)

    def get_urls(self):
        from django.urls import path

        from backups.key_export_admin import export_keys_view  # issue #13: keys survive the host

        return [path("export-keys/", export_keys_view(self), name="backups_backupsettings_export_keys"),
                *super().get_urls()]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        from backups.services.keys import export_needed

        settings_row = BackupSettings.load()
        extra_context = {**(extra_context or {}), "keys_export_needed": export_needed(settings_row),
                         "keys_exported_at": settings_row.keys_exported_at,
                         "keys_changed_at": settings_row.keys_changed_at}
        return super().change_view(request, object_id, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        try:
            config.settings_compression_set(compression=data["compression"], actor=request.user, source="admin")
            config.settings_encryption_set(
                enabled=data["encryption_enabled"], password=data.get("new_password") or None,
                key=data.get("new_key") or None, iterations=data["kdf_iterations"], actor=request.user,
                source="admin",
            )
            config.settings_checks_set(actor=request.user, source="admin",
                                       **{field: data[field] for field in config.CHECK_FIELDS})
        except DomainError as exc:
            self.message_user(request, exc.message, messages.ERROR)


# --- django-celery-beat: its own admin, for superusers only (SPEC §11) ----------

class SuperuserOnlyAdminMixin:
    """Periodic tasks belong to every owner's schedules; only admins may see
    or touch them here (owners change schedules through the services)."""

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request)

    def has_add_permission(self, request, *args):
        return self.has_module_permission(request)

    def has_change_permission(self, request, obj=None):
        return self.has_module_permission(request)

    def has_delete_permission(self, request, obj=None):
        return self.has_module_permission(request)


def _restrict_celery_beat_admin(site=admin.site) -> None:
    from django.apps import apps

    for model in apps.get_app_config("django_celery_beat").get_models():
        if not site.is_registered(model):
            continue
        model_admin = type(site.get_model_admin(model))
        if issubclass(model_admin, SuperuserOnlyAdminMixin):
            continue
        site.unregister(model)
        site.register(model, type(f"SuperuserOnly{model_admin.__name__}", (SuperuserOnlyAdminMixin, model_admin), {}))


_restrict_celery_beat_admin()

from backups import admin_alerts  # noqa: E402,F401  (alert channels, issue #12: registers its admin)
from backups import admin_offsite  # noqa: E402,F401  (storage targets and copies, issue #13)
from backups import admin_repos  # noqa: E402,F401  (incremental repositories, issue #14)
