"""Test settings: the real settings, with a fast hasher, in-memory mail and
folders of their own so a test run never touches a developer's var/."""

import os
import tempfile

_run_dir = tempfile.mkdtemp(prefix="mcsite-test-")
os.environ.setdefault("MCSITE_TESTING", "1")
os.environ.setdefault("MCSITE_SECRET_KEY", "test-secret-key-that-is-long-enough-0123456789")
os.environ.setdefault("MCSITE_LOG_DIR", os.path.join(_run_dir, "logs"))
os.environ.setdefault("MCSITE_SERVERS_ROOT", os.path.join(_run_dir, "servers"))
os.environ.setdefault("MCSITE_BACKUP_ROOT", os.path.join(_run_dir, "backups"))
os.environ.setdefault("MCSITE_RUN_DIR", os.path.join(_run_dir, "run"))
os.environ.setdefault("CACHE_URL", "locmemcache://")
# Unit tests never reach a broker; integration tests start their own worker.
os.environ.setdefault("CELERY_BROKER_URL", "memory://")

from .settings import *  # noqa: E402,F401,F403
