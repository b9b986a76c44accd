from django.apps import AppConfig


class BackupsConfig(AppConfig):
    name = "backups"
    verbose_name = "Backups"

    def ready(self):
        from backups.services import node_actions  # noqa: F401 — registers what nodes run for backups
