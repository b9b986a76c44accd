"""mcsite backup engine: pure Python, no Django.

The service layer calls exactly this API:

* ``create_archive(source_dir, dest_path, *, compression="gzip", encryption=None,
  exclude=(), progress=None, level=None, threads=None, on_step=None) -> ArchiveResult``
  — one streaming pass: tar -> gzip|bzip2|lzma|zstd|none -> optional
  AES-256-GCM -> ``.partial-*`` temp file -> fsync -> rename -> fsync dir.
* ``backup_suffix(compression, encrypted) -> str`` — ``.tar.gz`` ... ``+ .enc``.
* ``EncryptionSpec.from_password(password, iterations=600_000)``,
  ``EncryptionSpec.from_key(b64_key)``, ``spec.fingerprint``,
  ``Keyring([specs])``, ``generate_key() -> str``.
* ``verify_backup(path, *, expected_sha256=None, keyring=None, check_world=True,
  restore_test=False, progress=None, fileobj=None, size=None) -> VerificationReport``
  (``fileobj``: a one-way stream such as an off-site copy; ``path`` then only names it).
* ``quality_level(score) -> str``.
* ``inspect_archive(path, *, keyring=None) -> ArchiveInfo``.
* ``extract_to_staging(path, target_dir, *, keyring=None, progress=None, on_staging=None) -> ExtractResult``,
  ``swap_into_place(staging, target, *, before_rename=None, label="previous") -> previous_path | None``,
  ``rollback_swap(target, previous_path, *, before_rename=None) -> moved_aside_path | None``.
* ``extract_stream_to_staging(fileobj, target_dir, *, size=None, sha256=None, name=..., keyring=None,
  progress=None, on_staging=None, only=None)`` — the same from a non-seekable stream (a copy on a
  storage target), the raw bytes' count and SHA-256 checked once the stream ends.
* ``carry_excluded(current, staging, exclude) -> [paths]`` — what backups leave
  out stays through a restore (hard links into the staged folder).
* ``extract_to_staging(..., only=[paths])``, ``normalize_selection(paths)``,
  ``carry_rest(current, staging, chosen) -> CarryResult`` — a partial restore:
  only the chosen paths are extracted, everything else is linked in from the
  current folder (partial.py).
* ``file_digests(path) -> (sha256, md5)``, ``detect_format(path) -> ArchiveFormat``.
* ``EngineError`` with ``.code``, ``.message``, ``.path``; ``errors.ALL_CODES`` lists
  every code the engine raises (a failed verification names one in
  ``details["error_code"]``: BACKUP_CORRUPTED, DECRYPTION_FAILED or UNSAFE_ARCHIVE).

``keyring`` parameters accept a ``Keyring``, one ``EncryptionSpec`` or a list of them.
``progress`` callbacks receive ``(bytes_done, bytes_total)``.
"""
from .archive import MANIFEST_NAME, PARTIAL_PREFIX, ArchiveResult, create_archive
from .carry import carry_excluded, excluded_paths
from .compress import COMPRESSIONS, backup_suffix
from .crypto import EncryptionSpec, Keyring, generate_key
from .errors import EngineError
from .extract import ExtractResult, extract_stream_to_staging, extract_to_staging, normalize_selection, rollback_swap, swap_into_place
from .partial import CarryResult, carry_rest
from .preview import ArchiveInfo, inspect_archive
from .reader import ArchiveFormat, detect_format, file_digests
from .verify import MethodResult, VerificationReport, quality_level, quality_score, verify_backup

__all__ = [
    "COMPRESSIONS", "MANIFEST_NAME", "PARTIAL_PREFIX",
    "ArchiveFormat", "ArchiveInfo", "ArchiveResult", "EncryptionSpec", "EngineError", "ExtractResult",
    "Keyring", "MethodResult", "VerificationReport",
    "CarryResult", "carry_rest", "normalize_selection",
    "backup_suffix", "carry_excluded", "create_archive", "excluded_paths", "detect_format", "extract_stream_to_staging", "extract_to_staging", "file_digests",
    "generate_key", "inspect_archive", "quality_level", "quality_score", "rollback_swap",
    "swap_into_place", "verify_backup",
]
