from django.urls import re_path

from backups.api import contents, views

S = r"(?P<server_id>[0-9]+)"

urlpatterns = [
    re_path(r"^schedules/?$", views.ScheduleListView.as_view(), name="api-schedules"),
    re_path(r"^detached/?$", views.DetachedListView.as_view(), name="api-detached"),
    re_path(r"^detached/(?P<backup_id>[0-9]+)/?$", views.DetachedDetailView.as_view(), name="api-detached-backup"),
    re_path(r"^detached/(?P<backup_id>[0-9]+)/download/?$", views.DetachedDownloadView.as_view(),
            name="api-detached-download"),
    re_path(rf"^schedules/{S}/?$", views.ScheduleDetailView.as_view(), name="api-schedule"),
    re_path(rf"^schedules/{S}/retention-preview/?$", views.RetentionPreviewView.as_view(),
            name="api-schedule-retention-preview"),
    re_path(rf"^{S}/trigger/?$", views.TriggerView.as_view(), name="api-backup-trigger"),
    re_path(rf"^{S}/history/?$", views.HistoryView.as_view(), name="api-backup-history"),
    re_path(rf"^{S}/status/?$", views.StatusView.as_view(), name="api-backup-status"),
    re_path(rf"^{S}/available/?$", views.AvailableView.as_view(), name="api-backup-available"),
    re_path(rf"^{S}/format/?$", views.BackupFormatView.as_view(), name="api-backup-format"),
    re_path(rf"^{S}/restore/?$", views.RestoreView.as_view(), name="api-restore"),
    re_path(rf"^{S}/restores/?$", views.RestoreListView.as_view(), name="api-restores"),
    re_path(rf"^{S}/restores/(?P<restore_id>[0-9]+)/?$", views.RestoreDetailView.as_view(), name="api-restore-detail"),
    re_path(rf"^{S}/restores/(?P<restore_id>[0-9]+)/rollback/?$", views.RollbackView.as_view(), name="api-rollback"),
    re_path(rf"^{S}/backups/(?P<backup_id>[0-9]+)/?$", views.BackupDetailView.as_view(), name="api-backup"),
    re_path(rf"^{S}/backups/(?P<backup_id>[0-9]+)/verify/?$", views.BackupVerifyView.as_view(), name="api-backup-verify"),
    re_path(rf"^{S}/backups/(?P<backup_id>[0-9]+)/lock/?$", views.BackupLockView.as_view(), name="api-backup-lock"),
    re_path(rf"^{S}/backups/(?P<backup_id>[0-9]+)/unlock/?$", views.BackupUnlockView.as_view(), name="api-backup-unlock"),
    re_path(rf"^{S}/backups/(?P<backup_id>[0-9]+)/download/?$", views.BackupDownloadView.as_view(),
            name="api-backup-download"),
    re_path(rf"^{S}/backups/(?P<backup_id>[0-9]+)/files/?$", contents.BackupFilesView.as_view(),
            name="api-backup-files"),
    re_path(rf"^{S}/backups/(?P<backup_id>[0-9]+)/copy/?$", contents.BackupCopyView.as_view(),
            name="api-backup-copy"),
]
