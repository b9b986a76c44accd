import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mcsite.settings")

# Celery must not take over logging: it would empty the "celery" logger that
# settings.LOGGING sends to the console and app.log, and every worker/beat line would be lost.
app = Celery("mcsite", worker_hijack_root_logger=False)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
