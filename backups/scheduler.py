"""The seed's Python API:

    from backups.scheduler import backup_scheduler
    backup_scheduler.configure_compression("bzip2")
    backup_scheduler.configure_encryption(True, password="...")   # or key="<base64 32 bytes>"
    backup_scheduler.configure_encryption(False)

Settings persist in the database (every process sees them) and apply to the
next backups; a schedule's own compression/encrypt override them."""

from backups.models import BackupSettings
from backups.services import config


class BackupScheduler:
    def configure_compression(self, compression: str) -> None:
        config.settings_compression_set(compression=compression)

    def configure_encryption(self, enabled: bool, password: str | None = None, key: str | None = None,
                             iterations: int | None = None) -> None:
        config.settings_encryption_set(enabled=enabled, password=password, key=key, iterations=iterations)

    @property
    def compression(self) -> str:
        return BackupSettings.load().compression

    @property
    def encryption_enabled(self) -> bool:
        return BackupSettings.load().encryption_enabled

    def __repr__(self) -> str:
        settings = BackupSettings.load()
        mode = settings.encryption_mode if settings.encryption_enabled else "off"
        return f"<BackupScheduler compression={settings.compression} encryption={mode}>"


backup_scheduler = BackupScheduler()
