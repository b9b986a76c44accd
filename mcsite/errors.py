"""The error codes of the API (SPEC §10) and the one domain exception that
carries them. Services raise `DomainError`; the API exception handler renders
it in the envelope; web views show its message."""

from enum import Enum


class ErrorCode(str, Enum):
    VALIDATION_ERROR = "VALIDATION_ERROR"
    INVALID_DIRECTORY = "INVALID_DIRECTORY"
    AUTHENTICATION_REQUIRED = "AUTHENTICATION_REQUIRED"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    NOT_FOUND = "NOT_FOUND"
    BACKUP_NOT_FOUND = "BACKUP_NOT_FOUND"
    SCHEDULE_NOT_FOUND = "SCHEDULE_NOT_FOUND"
    SCHEDULE_EXISTS = "SCHEDULE_EXISTS"
    BACKUP_IN_PROGRESS = "BACKUP_IN_PROGRESS"
    RESTORE_IN_PROGRESS = "RESTORE_IN_PROGRESS"
    BACKUP_CORRUPTED = "BACKUP_CORRUPTED"
    SERVER_DIRECTORY_NOT_FOUND = "SERVER_DIRECTORY_NOT_FOUND"
    INSUFFICIENT_DISK_SPACE = "INSUFFICIENT_DISK_SPACE"
    DECRYPTION_FAILED = "DECRYPTION_FAILED"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    THROTTLED = "THROTTLED"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    NODE_DOWN = "NODE_DOWN"
    # Not HTTP-facing on their own: recorded on backups and restores.
    WORKER_LOST = "WORKER_LOST"
    SERVER_CONTROL_FAILED = "SERVER_CONTROL_FAILED"
    BACKUP_FAILED = "BACKUP_FAILED"
    RESTORE_FAILED = "RESTORE_FAILED"
    TIMEOUT = "TIMEOUT"
    IO_ERROR = "IO_ERROR"


HTTP_STATUS = {
    ErrorCode.VALIDATION_ERROR: 400,
    ErrorCode.INVALID_DIRECTORY: 400,
    ErrorCode.AUTHENTICATION_REQUIRED: 401,
    ErrorCode.PERMISSION_DENIED: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.BACKUP_NOT_FOUND: 404,
    ErrorCode.SCHEDULE_NOT_FOUND: 404,
    ErrorCode.SCHEDULE_EXISTS: 409,
    ErrorCode.BACKUP_IN_PROGRESS: 409,
    ErrorCode.RESTORE_IN_PROGRESS: 409,
    ErrorCode.BACKUP_CORRUPTED: 409,
    ErrorCode.SERVER_DIRECTORY_NOT_FOUND: 409,
    ErrorCode.INSUFFICIENT_DISK_SPACE: 507,
    ErrorCode.DECRYPTION_FAILED: 409,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.THROTTLED: 429,
    ErrorCode.INTERNAL_ERROR: 500,
    ErrorCode.NODE_DOWN: 503,
    ErrorCode.SERVER_CONTROL_FAILED: 409,
    ErrorCode.TIMEOUT: 504,
}

# The seed's own messages where it has them (Troubleshooting → Error Messages).
DEFAULT_MESSAGES = {
    ErrorCode.SERVER_DIRECTORY_NOT_FOUND: "Server directory not found",
    ErrorCode.INSUFFICIENT_DISK_SPACE: "Insufficient disk space",
    ErrorCode.PERMISSION_DENIED: "Permission denied",
    ErrorCode.NOT_FOUND: "Not found",
    ErrorCode.BACKUP_NOT_FOUND: "Backup not found",
    ErrorCode.SCHEDULE_NOT_FOUND: "Schedule not found",
    ErrorCode.SCHEDULE_EXISTS: "A schedule already exists for this server",
    ErrorCode.BACKUP_IN_PROGRESS: "A backup is already in progress for this server",
    ErrorCode.RESTORE_IN_PROGRESS: "A restore is already in progress for this server",
    ErrorCode.BACKUP_CORRUPTED: "Backup is corrupted",
    ErrorCode.DECRYPTION_FAILED: "Backup could not be decrypted",
    ErrorCode.INVALID_DIRECTORY: "Directory must be inside the servers root",
    ErrorCode.VALIDATION_ERROR: "Invalid input",
    ErrorCode.INTERNAL_ERROR: "Internal server error",
    ErrorCode.NODE_DOWN: "The server's game host is not reporting",
}


class DomainError(Exception):
    """A failure a user can understand, with its API code."""

    def __init__(self, code: ErrorCode, message: str | None = None, details: dict | None = None):
        self.code = ErrorCode(code)
        self.message = message or DEFAULT_MESSAGES.get(self.code, self.code.value.replace("_", " ").capitalize())
        self.details = details
        super().__init__(self.message)

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.code, 400)
