import os

from celery import Celery
from celery.signals import worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mcsite.settings")

# Celery must not take over logging: it would empty the "celery" logger that
# settings.LOGGING sends to the console and app.log, and every worker/beat line would be lost.
app = Celery("mcsite", worker_hijack_root_logger=False)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def _background_priority(**_):
    """Backups yield to the game server (issue #16): the worker process, and the pool
    processes and threads it starts, run at MCSITE_BACKUP_NICE and MCSITE_BACKUP_IO_PRIORITY."""
    import logging

    from django.conf import settings

    from backups.engine import priority

    applied = priority.background(settings.MCSITE_BACKUP_NICE, settings.MCSITE_BACKUP_IO_PRIORITY)
    logging.getLogger("backups.engine").info(
        "Worker runs backups at nice %s, I/O priority %s, %s thread(s) per operation",
        applied["nice"], applied["io"] or "unchanged", priority.default_threads())
