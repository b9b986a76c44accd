"""django-storages reads its defaults from Django settings.

Inside mcsite the settings are configured; a standalone tool (disaster
recovery without the site) may use the targets without Django set up, so an
empty configuration is made and the constructor arguments alone decide.
"""
from __future__ import annotations

import os


def ensure_settings() -> None:
    from django.conf import settings

    if not settings.configured and not os.environ.get("DJANGO_SETTINGS_MODULE"):
        settings.configure(USE_TZ=True)
