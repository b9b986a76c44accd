"""The admin's "Export encryption keys" button on the Backup settings page
(issue #13): POST only, superusers only, the same JSON as
``manage.py export_keys`` as a download that is never cached, audited."""

import json

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import redirect
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_POST

from backups.services import keys
from mcsite.errors import DomainError


def export_keys_view(model_admin):
    """The view for ``BackupSettingsAdmin.get_urls`` (wrapped in admin_view:
    login, staff and CSRF)."""

    @require_POST
    def view(request):
        if not (request.user.is_active and request.user.is_superuser):
            raise PermissionDenied("Only superusers may export the encryption keys")
        try:
            document = keys.export_document()
        except DomainError as exc:
            model_admin.message_user(request, exc.message, messages.ERROR)
            return redirect("admin:backups_backupsettings_changelist")
        response = HttpResponse(json.dumps(document, indent=2) + "\n", content_type="application/json")
        response["Content-Disposition"] = (
            f'attachment; filename="mcsite-keys-{timezone.now():%Y%m%d_%H%M%S}.json"')
        add_never_cache_headers(response)  # no-store: no proxy or browser cache keeps the secrets
        response["X-Content-Type-Options"] = "nosniff"
        keys.record_export(document, actor=request.user, source="admin", request=request,
                           destination="download")
        return response

    return model_admin.admin_site.admin_view(view)
