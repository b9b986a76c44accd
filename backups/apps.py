from django.apps import AppConfig


class BackupsConfig(AppConfig):
    name = "backups"
    verbose_name = "Backups"

    def ready(self):
        from django.conf import settings

        from backups.engine import priority
        from backups.services import node_actions  # noqa: F401 — registers what nodes run for backups

        priority.set_thread_cap(settings.MCSITE_BACKUP_THREADS)
