"""Admin helpers. OwnerScopedAdmin: a staff owner sees and changes only their own objects in
the Django admin and picks only their own servers in foreign-key fields;
superusers see everything (SPEC §2). Scoping itself is the model's
`for_user` queryset, the same one the API and the web pages use."""

from django.contrib import admin

from mcsite.audit import audit


class OwnerScopedAdmin(admin.ModelAdmin):
    #: foreign keys to servers that must offer only the user's own servers
    server_fields = ("server",)

    def get_queryset(self, request):
        return super().get_queryset(request).for_user(request.user)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        from servers.models import Server

        if db_field.name in self.server_fields:
            kwargs["queryset"] = Server.objects.for_user(request.user)
        elif db_field.name == "owner" and not request.user.is_superuser:
            kwargs["queryset"] = db_field.related_model.objects.filter(pk=request.user.pk)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def _visible(self, request, obj) -> bool:
        return obj is None or self.get_queryset(request).filter(pk=obj.pk).exists()

    def has_view_permission(self, request, obj=None):
        return super().has_view_permission(request, obj) and self._visible(request, obj)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self._visible(request, obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self._visible(request, obj)

    def audit(self, request, action, obj, **kwargs):
        return audit(actor=request.user, action=action, obj=obj, request=request, source="admin", **kwargs)


class ReadOnlyAdminMixin:
    """Rows the site writes itself (the audit trail, off-site copies, node
    calls): shown, never added, changed or deleted in the admin. Put it
    before any mixin that grants these permissions."""

    def has_add_permission(self, request, *args):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
