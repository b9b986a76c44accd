"""The web pages (SPEC §11). Included at the site root by mcsite/urls.py.
`/backup/<server_id>` is the seed's own route, so it answers with and
without a trailing slash (APPEND_SLASH is off for the API's sake)."""

from django.contrib.auth import views as auth_views
from django.urls import path, re_path

from backups import contents_views
from backups import alert_views
from backups import views as backup_views
from servers import views as server_views

S = r"(?P<server_id>[0-9]+)"

urlpatterns = [
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),  # POST only (Django 5)
    path("servers/", server_views.server_list, name="server-list"),
    path("servers/new/", server_views.server_create, name="server-create"),
    path("servers/<int:server_id>/delete/", server_views.server_delete, name="server-delete"),
    path("servers/<int:server_id>/start/", server_views.server_start, name="server-start"),
    path("servers/<int:server_id>/stop/", server_views.server_stop, name="server-stop"),
    re_path(r"^alerts/?$", alert_views.alert_preferences, name="alert-preferences"),
    path("backups/kept/<int:backup_id>/delete/", backup_views.kept_backup_delete, name="kept-backup-delete"),
    re_path(rf"^backup/{S}/?$", backup_views.backup_page, name="server-backups"),
    re_path(rf"^backup/{S}/schedule/?$", backup_views.schedule_save, name="backup-schedule"),
    re_path(rf"^backup/{S}/trigger/?$", backup_views.backup_now, name="backup-now"),
    re_path(rf"^backup/{S}/format/?$", backup_views.backup_format, name="backup-format"),
    re_path(rf"^backup/{S}/backups/(?P<backup_id>[0-9]+)/progress/?$", backup_views.backup_progress_view,
            name="backup-progress"),
    re_path(rf"^backup/{S}/backups/(?P<backup_id>[0-9]+)/verify/?$", backup_views.backup_verify,
            name="backup-verify"),
    re_path(rf"^backup/{S}/backups/(?P<backup_id>[0-9]+)/lock/?$", backup_views.backup_lock, name="backup-lock"),
    re_path(rf"^backup/{S}/backups/(?P<backup_id>[0-9]+)/files/?$", contents_views.backup_files, name="backup-files"),
    re_path(rf"^backup/{S}/backups/(?P<backup_id>[0-9]+)/copy/?$", contents_views.backup_copy, name="backup-copy"),
    re_path(rf"^backup/{S}/restore/?$", backup_views.restore, name="restore"),
    re_path(rf"^backup/{S}/restores/(?P<restore_id>[0-9]+)/?$", backup_views.restore_detail,
            name="restore-detail"),
    re_path(rf"^backup/{S}/restores/(?P<restore_id>[0-9]+)/progress/?$", backup_views.restore_progress_view,
            name="restore-progress"),
    re_path(rf"^backup/{S}/restores/(?P<restore_id>[0-9]+)/rollback/?$", backup_views.restore_rollback,
            name="restore-rollback"),
]
