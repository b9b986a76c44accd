"""verify_backup: checksum, archive read-back, world validation, restore test.

The first three methods share ONE read of the stored file: the raw bytes are
hashed for the checksum while the same stream is decrypted, decompressed and
parsed as tar; each member is hashed against the manifest and, when it is a
world file, validated on the fly (see ``world.py``). The optional restore
test is a second, separate read on purpose: it runs the real restore code
(``extract_to_staging``) into a temporary folder and re-hashes the files
from disk. The quality score is documented in docs/verification.md.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import time
from dataclasses import asdict, dataclass, field

from .worldcheck import WorldCheck
from .errors import BACKUP_CORRUPTED, UNSAFE_ARCHIVE, EngineError
from .reader import ArchiveStream
from .safety import MemberRules

METHODS = ("checksum", "archive_integrity", "world_validation", "restore_test")
WEIGHTS = {"checksum": 25, "archive_integrity": 40, "world_validation": 25, "restore_test": 10}
# A failed method caps the score: an archive that cannot be read whole is Critical
# whatever else passed; a world with damage or a failed restore is at best Fair.
CAPS = {"checksum": 39, "archive_integrity": 39, "world_validation": 74, "restore_test": 59}
_MAX_LISTED = 200


@dataclass
class MethodResult:
    name: str
    ok: bool = False
    skipped: bool = False
    errors: list = field(default_factory=list)  # strings, each starting with the file concerned
    warnings: list = field(default_factory=list)
    details: dict = field(default_factory=dict)
    duration_seconds: float = 0.0

    def error(self, message: str) -> None:
        if len(self.errors) < _MAX_LISTED:
            self.errors.append(message)
        self.details["error_count"] = self.details.get("error_count", 0) + 1

    def warning(self, message: str) -> None:
        if len(self.warnings) < _MAX_LISTED:
            self.warnings.append(message)

    def skip(self, reason: str) -> "MethodResult":
        self.skipped, self.ok = True, False
        self.details["reason"] = reason
        return self

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class VerificationReport:
    path: str
    methods: dict
    quality_score: int
    quality_level: str
    ok: bool
    world_name: str | None
    minecraft_version: str | None
    file_count: int | None
    sha256: str
    worlds: list
    encrypted: bool
    compression: str | None
    duration_seconds: float
    # The file list read back, [(path, size, kind "f"/"d"/"l"), …] in archive
    # order, when the whole archive was read (None otherwise). Not part of
    # to_dict(): the service keeps it apart (BackupContents), it can be long.
    contents: list | None = None

    def to_dict(self) -> dict:
        out = asdict(self)
        out.pop("contents", None)
        out["methods"] = {name: result.to_dict() for name, result in self.methods.items()}
        return out


def quality_level(score: float) -> str:
    """Excellent >= 90, Good >= 75, Fair >= 60, Poor >= 40, Critical below."""
    for floor, name in ((90, "Excellent"), (75, "Good"), (60, "Fair"), (40, "Poor")):
        if score >= floor:
            return name
    return "Critical"


def quality_score(methods: dict) -> int:
    """Weighted share of the methods that ran which passed, capped by the worst failure."""
    ran = [m for m in methods.values() if not m.skipped]
    if not ran:
        return 0
    total = sum(WEIGHTS[m.name] for m in ran)
    passed = sum(WEIGHTS[m.name] for m in ran if m.ok)
    score = round(100 * passed / total)
    for m in ran:
        if not m.ok:
            score = min(score, CAPS[m.name])
    return score


class _MemberHasher:
    def __init__(self, fileobj):
        self._f = fileobj
        self.sha256 = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self.sha256.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


def _compare_manifest(result: MethodResult, manifest: dict, seen_files: dict, seen_links: dict) -> None:
    listed = {f["path"]: f for f in manifest.get("files", [])}
    for path, entry in listed.items():
        got = seen_files.get(path)
        if got is None:
            result.error(f"{path}: in the manifest but missing from the archive")
        elif got[0] != entry.get("size"):
            result.error(f"{path}: size {got[0]} differs from the manifest ({entry.get('size')})")
        elif got[1] != entry.get("sha256"):
            result.error(f"{path}: SHA-256 differs from the manifest")
    for path in sorted(set(seen_files) - set(listed)):
        result.error(f"{path}: in the archive but not in the manifest")
    links = {s["path"]: s.get("target") for s in manifest.get("symlinks", [])}
    for path, target in links.items():
        if seen_links.get(path) != target:
            result.error(f"{path}: symlink missing or pointing elsewhere than the manifest says")


def _unsafe_member(integrity: MethodResult, exc: EngineError) -> None:
    """A member restore would refuse (see safety.py): an integrity error naming it."""
    integrity.error(f"{exc.path}: {exc.message} (restore would refuse this archive)")
    integrity.details["error_code"] = UNSAFE_ARCHIVE
    unsafe = integrity.details.setdefault("unsafe_members", [])
    if len(unsafe) < _MAX_LISTED:
        unsafe.append(exc.path)


def _read_archive(stream: ArchiveStream, integrity: MethodResult, world_check: WorldCheck | None,
                  contents: list):
    rules = MemberRules()  # the same rules extract_to_staging enforces
    seen_files, seen_links = {}, {}
    for info, name in stream.members():
        try:
            rules.check(info, name, after_manifest=bool(stream.members_after_manifest))
        except EngineError as exc:
            _unsafe_member(integrity, exc)
            continue
        _list_member(contents, info, name, seen_files)
        if info.isfile():
            member = _MemberHasher(stream.extractfile(info))
            if world_check is not None and world_check.wants(name):
                world_check.check(name, member, info.size)
            member.drain()
            if member.size != info.size:
                integrity.error(f"{name}: member data truncated")
            seen_files[name] = (member.size, member.sha256.hexdigest())
        elif info.issym():
            seen_links[name] = info.linkname
        elif info.islnk():
            seen_files[name] = seen_files[rules.hardlink_target(info)]
    for exc in rules.finish():  # symlink chains, once every link is known
        _unsafe_member(integrity, exc)
    stream.finish()
    return seen_files, seen_links


def _list_member(contents: list, info, name: str, seen_files: dict) -> None:
    """One (path, size, kind) per member for the browsable file list; the
    name string is the one the other maps keep, so a million members cost
    one small tuple each."""
    if name == "":
        return
    if info.isdir():
        contents.append((name, 0, "d"))
    elif info.issym():
        contents.append((name, 0, "l"))
    elif info.islnk():
        target = seen_files.get(MemberRules.hardlink_target(info))
        contents.append((name, target[0] if target else 0, "f"))
    elif info.isfile():
        contents.append((name, info.size, "f"))


def verify_backup(path, *, expected_sha256: str | None = None, keyring=None, check_world: bool = True,
                  restore_test: bool = False, progress=None, fileobj=None, size: int | None = None
                  ) -> VerificationReport:
    """Verify a stored backup; every method's outcome is recorded separately.

    ``checksum`` compares the file's SHA-256 with ``expected_sha256`` (skipped
    without one). ``archive_integrity`` reads the whole archive back (decrypt,
    decompress, tar) and checks every member against the manifest, naming
    missing, extra and mismatched members; for archives made by other tools
    (no manifest) it means the archive parses fully and passes every
    compression/encryption check; either way the tar stream must end with its
    end-of-archive marker, and every member must pass the rules restore
    applies (``safety.py``; a member it would refuse is an error naming it,
    ``details["error_code"] = "UNSAFE_ARCHIVE"``, ``details["unsafe_members"]``).
    ``world_validation`` checks the archived world(s), within the caps of
    ``world.py`` (a decompression bomb is a failure with its reason, never an
    out-of-memory). ``restore_test`` extracts to a temporary folder and compares
    each file with the manifest. ``progress(bytes_done, bytes_total)`` follows
    the stored file. Never raises for a bad archive (only for a missing one).

    With ``fileobj`` (a stream read once, front to back: an off-site copy),
    ``path`` is only a name for messages and ``size`` the expected length for
    progress; the restore test, which reads the archive a second time, is
    skipped.
    """
    started = time.monotonic()
    methods = {name: MethodResult(name) for name in METHODS}
    integrity, world_result = methods["archive_integrity"], methods["world_validation"]
    world_check = WorldCheck(world_result) if check_world else None
    t0 = time.monotonic()
    listed: list = []
    try:
        with ArchiveStream(path, keyring=keyring, progress=progress, fileobj=fileobj, size=size) as stream:
            completed = False
            if stream.format.encrypted and not keyring:
                integrity.skip("encrypted backup and no key or password given")
            else:
                try:
                    seen_files, seen_links = _read_archive(stream, integrity, world_check, listed)
                    completed = True
                except EngineError as exc:
                    # a member's name when the error is about one, else the archive's file name
                    where = exc.path if exc.path and not os.path.isabs(exc.path) else \
                        os.path.basename(stream.path)
                    integrity.error(f"{where}: {exc.message}")
                    integrity.details.setdefault("error_code", exc.code)
                except (tarfile.TarError, OSError, EOFError) as exc:
                    integrity.error(f"{os.path.basename(stream.path)}: archive unreadable ({exc})")
                    integrity.details.setdefault("error_code", BACKUP_CORRUPTED)
            stream.stop_reading()
            while stream.raw.read(1 << 20):  # the checksum covers the whole file even after a failure
                pass
            sha256 = stream.sha256
            fmt = stream.format
            integrity.details.update(compression=fmt.compression, encrypted=fmt.encrypted,
                                     key_fingerprint=fmt.key_fingerprint, bytes_read=stream.raw.bytes_read)
            if completed:
                _finish_integrity(stream, integrity, seen_files, seen_links)
    except BaseException:
        if world_check is not None:
            world_check.close()  # no worker threads left behind
        raise
    elapsed = round(time.monotonic() - t0, 3)
    integrity.duration_seconds = elapsed
    _checksum(methods["checksum"], stream.path, sha256, expected_sha256)
    if world_check is None:
        world_result.skip("not requested")
    elif integrity.skipped:
        world_check.close()
        world_result.skip("archive could not be decrypted: no key given")
    else:
        world_check.finish()
        if not completed and world_result.ok:
            world_result.skip("archive could not be read to the end, so the world was not fully checked")
        world_result.duration_seconds = elapsed
    manifest = stream.manifest
    if restore_test and fileobj is not None:
        methods["restore_test"].skip("read as a stream (an off-site copy): a restore test needs the file on disk")
    elif restore_test and completed and integrity.ok:
        _restore_test(methods["restore_test"], stream.path, keyring, manifest)
    else:
        methods["restore_test"].skip("not requested" if not restore_test else "archive integrity failed")
    score = quality_score(methods)
    worlds = world_check.worlds if world_check else []
    file_count = integrity.details.get("file_count")
    return VerificationReport(
        path=stream.path, methods=methods, quality_score=score, quality_level=quality_level(score),
        ok=all(m.ok for m in methods.values() if not m.skipped) and any(not m.skipped for m in methods.values()),
        world_name=worlds[0]["level_name"] if worlds else None,
        minecraft_version=next((w["minecraft_version"] for w in worlds if w["minecraft_version"]), None),
        file_count=file_count, sha256=sha256, worlds=worlds, encrypted=fmt.encrypted,
        compression=fmt.compression, duration_seconds=round(time.monotonic() - started, 3),
        contents=listed if completed else None,
    )


def _finish_integrity(stream, integrity, seen_files, seen_links) -> None:
    integrity.details.update(file_count=len(seen_files), manifest=stream.manifest is not None)
    for problem in stream.problems():  # truncation, damaged header, trailing data, bad manifest
        integrity.error(f"{os.path.basename(stream.path)}: {problem}")
        integrity.details.setdefault("error_code", BACKUP_CORRUPTED)
    if stream.manifest is not None:
        _compare_manifest(integrity, stream.manifest, seen_files, seen_links)
        integrity.details["manifest_created"] = stream.manifest.get("created")
    elif not stream.manifest_error:
        integrity.warning("no mcsite manifest (archive made by another tool): checked that it reads "
                          "fully and passes its compression/encryption checks; member hashes not compared")
    integrity.ok = not integrity.errors


def _checksum(result: MethodResult, path: str, actual: str, expected: str | None) -> None:
    result.details["sha256"] = actual
    if not expected:
        result.skip("no recorded checksum to compare with")
        result.details["sha256"] = actual
        return
    result.details["expected_sha256"] = expected.lower()
    result.ok = actual == expected.lower()
    if not result.ok:
        result.error(f"{os.path.basename(path)}: SHA-256 {actual} does not match the recorded {expected.lower()}")


def _restore_test(result: MethodResult, path: str, keyring, manifest: dict | None) -> None:
    from .extract import extract_to_staging  # here to keep verify importable on its own

    started = time.monotonic()
    holder = tempfile.mkdtemp(prefix=".mcsite-restore-test-", dir=os.path.dirname(os.path.abspath(path)))
    try:
        staged = extract_to_staging(path, os.path.join(holder, "server"), keyring=keyring)
        listed = manifest.get("files", []) if manifest else []
        for entry in listed:
            full = os.path.join(staged.staging_dir, *entry["path"].split("/"))
            digest = hashlib.sha256()
            try:
                with open(full, "rb", buffering=0) as fh:
                    while chunk := fh.read(1 << 20):
                        digest.update(chunk)
            except OSError as exc:
                result.error(f"{entry['path']}: not restored ({exc.strerror})")
                continue
            if digest.hexdigest() != entry["sha256"]:
                result.error(f"{entry['path']}: restored file differs from the manifest")
        result.details.update(files_compared=len(listed), files_restored=staged.file_count,
                              bytes_restored=staged.total_bytes)
        if manifest is None:
            result.warning("no manifest: files restored but not compared")
        result.ok = not result.errors
    except EngineError as exc:
        result.error(f"{exc.path or os.path.basename(path)}: {exc.message}")
    finally:
        shutil.rmtree(holder, ignore_errors=True)
        result.duration_seconds = round(time.monotonic() - started, 3)
