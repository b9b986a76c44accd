"""Storage targets for off-site copies (SPEC §13): no Django models here.

The copy task, retention on targets, restore/download from a copy and
``import_backups`` call exactly this API:

* ``open_target(TargetConfig(kind, name, settings, secrets)) -> Target`` with
  kind ``local`` (``local.py``), ``s3`` (``s3.py``) or ``sftp`` (``sftp.py``);
  each module's docstring lists its settings and secrets.
* ``Target.connect()``, ``test() -> TestResult`` (write, read back, delete a
  probe object; an error names the failed ``step``).
* ``upload(local_path, remote_name, *, progress=None, resume_state=None,
  on_state=None, object_lock_days=None) -> UploadResult`` (size, sha256 and,
  for S3, part_size and composite).
* ``abort_incomplete(prefix_or_state) -> int``.
* ``verify(remote_name, *, size, sha256, part_size=None, composite=None,
  local_path=None, read_back=False) -> VerifyResult``.
* ``open_read(remote_name, offset=0, length=None)`` (a stream with ``read``
  and ``close``), ``signed_url(remote_name, expires)`` (S3, else None),
  ``delete``, ``exists``, ``list(prefix) -> [RemoteEntry]``, ``put_small``,
  ``get_small`` (≤ 1 MiB sidecars).
* ``OffsiteError`` with ``.code`` (``errors.ALL_CODES``), ``.message``,
  ``.step``, ``.state`` and ``.transient``.

``progress`` callbacks receive ``(bytes_done, bytes_total)`` like the engine's.
Every remote name is checked by ``names.check_name`` before any I/O.
"""
from .base import KINDS, RemoteEntry, Target, TargetConfig, TestResult, UploadResult, VerifyResult, open_target
from .checksums import choose_part_size, composite_from_digests, file_digests
from .errors import ALL_CODES, OffsiteError
from .names import PARTIAL_SUFFIX, check_name

__all__ = [
    "ALL_CODES", "KINDS", "PARTIAL_SUFFIX", "OffsiteError", "RemoteEntry", "Target", "TargetConfig", "TestResult",
    "UploadResult", "VerifyResult", "check_name", "choose_part_size", "composite_from_digests", "file_digests",
    "open_target",
]
