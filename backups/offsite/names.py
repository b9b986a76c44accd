"""Remote names: always relative, always inside the target's prefix or base path.

A remote name is a ``/``-separated relative path such as
``survival/2026-01-02T03-04-05.tar.zst``. Refused: empty names, absolute
names, ``.`` and ``..`` segments, empty segments (``a//b``), backslashes, NUL
and other control characters, names longer than S3's 1024-byte key limit, and
names ending in the suffix of unfinished uploads (those are the target's own).
"""
from __future__ import annotations

from .errors import INVALID_NAME, OffsiteError

# An upload in progress on a file system target (local, SFTP) is written to
# ``<name>`` + this suffix and renamed on commit; abort_incomplete removes them.
PARTIAL_SUFFIX = ".mcsite.partial"
MAX_NAME_BYTES = 1024


def check_name(name: str) -> str:
    """Return ``name`` if it is a safe remote name, else raise INVALID_NAME."""
    _check(name, allow_empty=False, allow_trailing_slash=False)
    if name.endswith(PARTIAL_SUFFIX):
        raise OffsiteError(INVALID_NAME, f"Remote names may not end in {PARTIAL_SUFFIX}: {name!r}")
    return name


def check_prefix(prefix: str) -> str:
    """A listing prefix: like a name, but may be empty or end with ``/``."""
    _check(prefix, allow_empty=True, allow_trailing_slash=True)
    return prefix


def _check(name: str, *, allow_empty: bool, allow_trailing_slash: bool) -> None:
    if not isinstance(name, str):
        raise OffsiteError(INVALID_NAME, "A remote name must be text")
    if not name:
        if allow_empty:
            return
        raise OffsiteError(INVALID_NAME, "A remote name may not be empty")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise OffsiteError(INVALID_NAME, f"A remote name may not contain NUL or control characters: {name!r}")
    if "\\" in name:
        raise OffsiteError(INVALID_NAME, f"A remote name may not contain a backslash: {name!r}")
    if name.startswith("/"):
        raise OffsiteError(INVALID_NAME, f"A remote name must be relative to the target: {name!r}")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise OffsiteError(INVALID_NAME, f"A remote name may not be longer than {MAX_NAME_BYTES} bytes")
    body = name[:-1] if (allow_trailing_slash and name.endswith("/")) else name
    for segment in body.split("/"):
        if segment in ("", ".", ".."):
            raise OffsiteError(INVALID_NAME, f"A remote name may not contain empty, '.' or '..' parts: {name!r}")
