"""The admin of off-site copies (issue #13), for superusers: storage targets
(one form, the fields of the chosen kind; saved through
services/targets.target_save, which checks and seals; secrets are written
only and never rendered back), a "Test this target" button and list
action, copy policies per server, and the copies themselves (read only,
also inline on each backup record). Imported by backups/admin.py."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from backups.admin import BackupRecordAdmin
from backups.admin_alerts import SuperuserOnly, last_test_html
from backups.models import OffsiteCopy, ServerCopyPolicy, StorageTarget
from backups.services import targets as target_service
from mcsite.admin_scoping import ReadOnlyAdminMixin
from mcsite.errors import DomainError

SECRET = dict(required=False, strip=False,
              widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}))
KEEP = "Written only: never shown again; leave empty to keep the stored one."

# form field → (kind, setting name, is it a secret)
KIND_FIELDS = {
    "local_path": ("local", "path", False),
    "s3_endpoint_url": ("s3", "endpoint_url", False),
    "s3_region": ("s3", "region", False),
    "s3_bucket": ("s3", "bucket", False),
    "s3_prefix": ("s3", "prefix", False),
    "s3_addressing_style": ("s3", "addressing_style", False),
    "s3_access_key_id": ("s3", "access_key_id", True),
    "s3_secret_access_key": ("s3", "secret_access_key", True),
    "sftp_host": ("sftp", "host", False),
    "sftp_port": ("sftp", "port", False),
    "sftp_username": ("sftp", "username", False),
    "sftp_host_key": ("sftp", "host_key", False),
    "sftp_base_path": ("sftp", "base_path", False),
    "sftp_password": ("sftp", "password", True),
    "sftp_private_key": ("sftp", "private_key", True),
}


class StorageTargetForm(forms.ModelForm):
    local_path = forms.CharField(required=False, label="Folder",
                                 help_text="Absolute path of a second disk or a mounted NFS/SMB share")
    s3_endpoint_url = forms.URLField(required=False, label="Endpoint URL", assume_scheme="https",
                                     help_text="Empty for AWS; MinIO, Backblaze B2, Wasabi, R2 give theirs")
    s3_region = forms.CharField(required=False, label="Region", initial="us-east-1")
    s3_bucket = forms.CharField(required=False, label="Bucket")
    s3_prefix = forms.CharField(required=False, label="Prefix", help_text="e.g. mcsite/")
    s3_addressing_style = forms.ChoiceField(required=False, label="Addressing style",
                                            choices=[("auto", "auto"), ("path", "path"), ("virtual", "virtual")])
    s3_access_key_id = forms.CharField(label="Access key ID", help_text=KEEP, **SECRET)
    s3_secret_access_key = forms.CharField(label="Secret access key", help_text=KEEP, **SECRET)
    sftp_host = forms.CharField(required=False, label="Host")
    sftp_port = forms.IntegerField(required=False, label="Port", initial=22, min_value=1, max_value=65535)
    sftp_username = forms.CharField(required=False, label="Username")
    sftp_host_key = forms.CharField(required=False, label="Pinned host key", widget=forms.Textarea(attrs={"rows": 2}),
                                    help_text="Required: the server's public key line (ssh-keyscan -t ed25519 HOST)")
    sftp_base_path = forms.CharField(required=False, label="Base path")
    sftp_password = forms.CharField(label="Password", help_text=KEEP, **SECRET)
    sftp_private_key = forms.CharField(
        required=False, strip=False, label="Private key",
        widget=forms.Textarea(attrs={"rows": 4, "autocomplete": "off"}),
        help_text="OpenSSH or PEM text. " + KEEP)

    class Meta:
        model = StorageTarget
        fields = ["name", "kind", "enabled", "is_default", "extra_retention_days", "delete_delay_days",
                  "object_lock_days"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["sftp_private_key"].widget.render_value = False
        if self.instance.pk:
            self.fields["kind"].disabled = True
            for field, (kind, setting, secret) in KIND_FIELDS.items():
                if kind == self.instance.kind and not secret and setting in (self.instance.settings or {}):
                    self.initial[field] = self.instance.settings[setting]

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        kind = self.instance.kind if self.instance.pk else data.get("kind")
        settings, secrets = {}, {}
        for field, (field_kind, setting, secret) in KIND_FIELDS.items():
            if field_kind != kind:
                continue
            value = data.get(field)
            if secret:
                if value:
                    secrets[setting] = value  # empty: keep the stored one
            elif value not in (None, ""):
                settings[setting] = value
        # Settings this form does not show (part size, TLS…, set through the API) are kept.
        shown = {setting for field_kind, setting, _ in KIND_FIELDS.values() if field_kind == kind}
        extra = {k: v for k, v in (self.instance.settings or {}).items() if k not in shown} if self.instance.pk else {}
        fields = {name: data.get(name) for name in ("name", "enabled", "is_default", "extra_retention_days",
                                                    "delete_delay_days", "object_lock_days")}
        try:
            self.saved = target_service.target_save(
                target=self.instance if self.instance.pk else None, kind=kind, settings={**extra, **settings},
                secrets=secrets, actor=getattr(self, "actor", None), source="admin", **fields)
        except DomainError as exc:
            field = next(iter(exc.details or {}), None)
            form_field = next((f for f, (fk, s, _) in KIND_FIELDS.items() if fk == kind and s == field), None)
            self.add_error(form_field or (field if field in self.fields else None), exc.message)
            return data
        self.instance = self.saved
        return data


class OffsiteCopyInline(admin.TabularInline):
    model = OffsiteCopy
    extra = 0
    can_delete = False
    fields = ("target", "status", "error_code", "error_message", "attempts", "size_bytes", "verified_at",
              "delete_after", "deleted_at")
    readonly_fields = fields
    verbose_name_plural = "off-site copies"

    def has_add_permission(self, request, obj=None):
        return False


BackupRecordAdmin.inlines = [*BackupRecordAdmin.inlines, OffsiteCopyInline]


@admin.register(StorageTarget)
class StorageTargetAdmin(SuperuserOnly, admin.ModelAdmin):
    form = StorageTargetForm
    change_form_template = "admin/backups/storagetarget/change_form.html"
    list_display = ("name", "kind", "where", "enabled", "is_default", "last_test_display")
    list_filter = ("kind", "enabled", "is_default")
    search_fields = ("name",)
    readonly_fields = ("secrets_set", "last_test_display")
    actions = ["test_selected"]
    fieldsets = (
        (None, {"fields": ("name", "kind", "enabled", "is_default")}),
        ("Local or mounted network path", {"fields": ("local_path",), "classes": ("kind-local",)}),
        ("S3-compatible object storage", {"fields": ("s3_endpoint_url", "s3_region", "s3_bucket", "s3_prefix",
                                                     "s3_addressing_style", "s3_access_key_id",
                                                     "s3_secret_access_key"), "classes": ("kind-s3",)}),
        ("SFTP", {"fields": ("sftp_host", "sftp_port", "sftp_username", "sftp_host_key", "sftp_base_path",
                             "sftp_password", "sftp_private_key"), "classes": ("kind-sftp",)}),
        ("Retention on this target", {"fields": ("extra_retention_days", "delete_delay_days", "object_lock_days")}),
        ("State", {"fields": ("secrets_set", "last_test_display")}),
    )

    class Media:
        js = ("js/admin-target.js",)  # a new target: only the chosen kind's fieldset shows

    def get_fieldsets(self, request, obj=None):
        """An existing target (its kind fixed) shows its own kind's fields only."""
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None or not obj.pk:
            return fieldsets
        return [(name, opts) for name, opts in fieldsets
                if not any(c.startswith("kind-") and c != f"kind-{obj.kind}" for c in opts.get("classes", ()))]

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)

        class WithActor(form):
            actor = request.user
        return WithActor

    @admin.display(description="where")
    def where(self, obj):
        s = obj.settings or {}
        if obj.kind == "local":
            return s.get("path", "")
        if obj.kind == "s3":
            return f"s3://{s.get('bucket', '')}/{s.get('prefix', '')}" + (f" at {s['endpoint_url']}"
                                                                         if s.get("endpoint_url") else "")
        return f"sftp://{s.get('username', '')}@{s.get('host', '')}:{s.get('port', 22)}{s.get('base_path', '')}"

    @admin.display(description="secrets set")
    def secrets_set(self, obj):
        names = target_service.secret_names(obj) if obj and obj.pk else []
        return ", ".join(names) or "none"

    @admin.display(description="last test")
    def last_test_display(self, obj):
        return last_test_html(obj, ok_word="Passed", css="target")

    def save_model(self, request, obj, form, change):
        pass  # the form saved it through target_save (checked and sealed)

    def delete_model(self, request, obj):
        try:
            target_service.target_delete(target=obj, actor=request.user, request=request)
        except DomainError as exc:
            self.message_user(request, exc.message, messages.ERROR)

    def get_urls(self):
        test = self.admin_site.admin_view(require_POST(self.test_view))
        return [path("<path:object_id>/test/", test, name="backups_storagetarget_test"), *super().get_urls()]

    def _report(self, request, target, ok, message):
        if ok:
            self.message_user(request, f"The target “{target.name}” works: {message}")
        else:
            self.message_user(request, f"The target “{target.name}” failed its test: {message}", messages.ERROR)

    def test_view(self, request, object_id):
        if not self.has_change_permission(request):
            raise PermissionDenied
        target = get_object_or_404(StorageTarget, pk=object_id)
        self._report(request, target, *target_service.target_test(target=target))
        return redirect(reverse("admin:backups_storagetarget_change", args=[target.pk]))

    @admin.action(description="Test the selected targets (write, read back, delete)")
    def test_selected(self, request, queryset):
        for target in queryset:
            self._report(request, target, *target_service.target_test(target=target))


@admin.register(ServerCopyPolicy)
class ServerCopyPolicyAdmin(SuperuserOnly, admin.ModelAdmin):
    list_display = ("server", "mode")
    list_filter = ("mode",)
    filter_horizontal = ("targets",)
    autocomplete_fields = ()


@admin.register(OffsiteCopy)
class OffsiteCopyAdmin(ReadOnlyAdminMixin, SuperuserOnly, admin.ModelAdmin):
    list_display = ("backup", "target", "status", "error_code", "attempts", "size_bytes", "verified_at")
    list_filter = ("status", "target")
    search_fields = ("backup__filename", "remote_name", "error_message")
    list_select_related = ("backup", "target")
    actions = ["retry_selected"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in OffsiteCopy._meta.fields]

    @admin.action(description="Copy the selected failed copies again")
    def retry_selected(self, request, queryset):
        from backups.services.offsite import copy_retry

        sent = sum(copy_retry(copy) for copy in queryset.filter(status=OffsiteCopy.Status.FAILED))
        self.message_user(request, f"{sent} failed copies sent again")
