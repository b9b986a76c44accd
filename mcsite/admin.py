from django.contrib import admin
from django.db.models import Q
from django.utils import timezone

from mcsite.admin_scoping import ReadOnlyAdminMixin
from mcsite.models import ApiToken, AuditEvent, token_max_age


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The audit trail, read-only, for admins."""

    list_display = ("created_at", "actor_name", "action", "object_type", "object_repr", "outcome", "source", "ip_address")
    list_filter = ("outcome", "source", "action", "object_type")
    search_fields = ("actor_name", "action", "object_repr", "object_id", "ip_address")
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in AuditEvent._meta.fields]

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_superuser


class ExpiredFilter(admin.SimpleListFilter):
    title = "expired"
    parameter_name = "expired"

    def lookups(self, request, model_admin):
        return (("yes", "Expired"), ("no", "Live"))

    def queryset(self, request, queryset):
        if self.value() not in ("yes", "no"):
            return queryset
        now = timezone.now()
        expired = Q(expires_at__lte=now) | Q(created_at__lte=now - token_max_age())
        return queryset.filter(expired) if self.value() == "yes" else queryset.exclude(expired)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """API tokens: only their prefix is known; deleting one revokes it. They
    expire (MCSITE_TOKEN_MAX_AGE_DAYS): the list shows when, and which have."""

    list_display = ("prefix", "user", "name", "created_at", "last_used_at", "expires", "expired")
    list_filter = (ExpiredFilter,)
    search_fields = ("prefix", "user__username", "name")
    readonly_fields = ("user", "prefix", "name", "created_at", "last_used_at", "expires", "expired")
    exclude = ("key_hash", "expires_at")

    @admin.display(description="Expires")
    def expires(self, obj):
        return obj.expires

    @admin.display(description="Expired", boolean=True)
    def expired(self, obj):
        return obj.is_expired()

    def has_add_permission(self, request):
        return False  # issued by POST /api/auth/token, shown once

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser
