"""Use cases of the backups app, one function each, named <entity>_<action>.
Views, admin actions, management commands and tasks call these only."""

from backups.services.schedules import (  # noqa: F401
    backup_schedule_create,
    backup_schedule_delete,
    backup_schedule_update,
)
from backups.services.records import backups_detach_or_delete  # noqa: F401

__all__ = ["backup_schedule_create", "backup_schedule_delete", "backup_schedule_update", "backups_detach_or_delete"]
