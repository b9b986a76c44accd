"""The engine's one exception type.

Codes are the API's error codes (SPEC §5-§7), so the service layer can pass
them through unchanged.
"""
from __future__ import annotations

DECRYPTION_FAILED = "DECRYPTION_FAILED"
BACKUP_CORRUPTED = "BACKUP_CORRUPTED"
SERVER_DIRECTORY_NOT_FOUND = "SERVER_DIRECTORY_NOT_FOUND"
PERMISSION_DENIED = "PERMISSION_DENIED"
INSUFFICIENT_DISK_SPACE = "INSUFFICIENT_DISK_SPACE"
UNSAFE_ARCHIVE = "UNSAFE_ARCHIVE"
INVALID_ENCRYPTION_KEY = "INVALID_ENCRYPTION_KEY"
INVALID_SETTING = "INVALID_SETTING"
DESTINATION_EXISTS = "DESTINATION_EXISTS"
BACKUP_NOT_FOUND = "BACKUP_NOT_FOUND"
IO_ERROR = "IO_ERROR"
ALL_CODES = (DECRYPTION_FAILED, BACKUP_CORRUPTED, SERVER_DIRECTORY_NOT_FOUND, PERMISSION_DENIED,
             INSUFFICIENT_DISK_SPACE, UNSAFE_ARCHIVE, INVALID_ENCRYPTION_KEY, INVALID_SETTING,
             DESTINATION_EXISTS, BACKUP_NOT_FOUND, IO_ERROR)


class EngineError(Exception):
    """An engine failure with a stable machine-readable ``code``.

    ``message`` is safe to show to a user (it never contains a secret);
    ``path`` names the file concerned when there is one.
    """

    def __init__(self, code: str, message: str, *, path: str | None = None):
        super().__init__(f"{code}: {message}" + (f" ({path})" if path else ""))
        self.code = code
        self.message = message
        self.path = path

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "path": self.path}


def from_os_error(exc: OSError, *, path: str | None = None) -> EngineError:
    """Map an OSError to the API code a user can act on."""
    import errno

    where = path or getattr(exc, "filename", None)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return EngineError(INSUFFICIENT_DISK_SPACE, "Insufficient disk space", path=where)
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return EngineError(PERMISSION_DENIED, "Permission denied", path=where)
    if exc.errno == errno.ENOENT:
        return EngineError(BACKUP_NOT_FOUND, "File not found", path=where)
    return EngineError(IO_ERROR, exc.strerror or str(exc), path=where)
