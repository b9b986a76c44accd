"""The one exception of the storage targets.

Every failure of a target operation is an ``OffsiteError`` with a stable
``code`` from the closed set below and a ``message`` a user can act on (it
never contains a secret). The copy task records the code per target; the pages
show the message.
"""
from __future__ import annotations

import errno

AUTH_FAILED = "AUTH_FAILED"              # credentials refused (S3 keys, SSH password or key)
PERMISSION_DENIED = "PERMISSION_DENIED"  # authenticated, but not allowed (S3 policy, file mode)
HOST_KEY_MISMATCH = "HOST_KEY_MISMATCH"  # the SFTP server did not show the pinned host key
UNREACHABLE = "UNREACHABLE"              # no connection, timeout, connection lost, mount missing
BUCKET_NOT_FOUND = "BUCKET_NOT_FOUND"    # the S3 bucket does not exist
NOT_FOUND = "NOT_FOUND"                  # the remote object or file does not exist
NO_SPACE = "NO_SPACE"                    # the remote file system or quota is full
SIZE_MISMATCH = "SIZE_MISMATCH"          # the remote copy has another size than the local file
CHECKSUM_MISMATCH = "CHECKSUM_MISMATCH"  # the remote copy has other bytes than the local file
INVALID_NAME = "INVALID_NAME"            # a remote name that would leave the target's folder
INVALID_SETTING = "INVALID_SETTING"      # the target's settings are incomplete or wrong
TOO_LARGE = "TOO_LARGE"                  # a sidecar bigger than put_small/get_small accept
REMOTE_ERROR = "REMOTE_ERROR"            # anything else the remote side answered
LOCAL_ERROR = "LOCAL_ERROR"              # reading the local file failed
ALL_CODES = (AUTH_FAILED, PERMISSION_DENIED, HOST_KEY_MISMATCH, UNREACHABLE, BUCKET_NOT_FOUND,
             NOT_FOUND, NO_SPACE, SIZE_MISMATCH, CHECKSUM_MISMATCH, INVALID_NAME, INVALID_SETTING,
             TOO_LARGE, REMOTE_ERROR, LOCAL_ERROR)
# Worth retrying later with the same settings (the copy task's backoff).
TRANSIENT_CODES = frozenset({UNREACHABLE, REMOTE_ERROR, NO_SPACE})


class OffsiteError(Exception):
    """A target failure with a stable ``code`` and a user-readable ``message``.

    ``step`` names the step of ``test()`` or of an upload that failed
    (``connect``, ``write``, ``read``, ``delete``, ``upload``, ``commit``…);
    ``state`` is the clean-up state of an unfinished upload (see
    ``Target.upload``), so a caller can resume it or abort it.
    """

    def __init__(self, code: str, message: str, *, step: str | None = None, state: dict | None = None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.step = step
        self.state = state

    @property
    def transient(self) -> bool:
        return self.code in TRANSIENT_CODES

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "step": self.step}


def from_os_error(exc: OSError, what: str) -> OffsiteError:
    """Map a local or mounted file system error to a code; ``what`` says which file."""
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return OffsiteError(NO_SPACE, f"No space left on the target while writing {what} ({reason})")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return OffsiteError(PERMISSION_DENIED, f"Permission denied on {what} ({reason})")
    if exc.errno == errno.ENOENT:
        return OffsiteError(NOT_FOUND, f"{what} does not exist")
    if exc.errno in (errno.ENOTCONN, errno.ESTALE, errno.EHOSTDOWN, errno.EHOSTUNREACH, errno.ETIMEDOUT):
        return OffsiteError(UNREACHABLE, f"The network share holding {what} is not reachable ({reason})")
    return OffsiteError(REMOTE_ERROR, f"{what}: {reason}")
