"""Rebuild backup records from a storage target (issue #13 item 5): after
the database (and perhaps the local backup root) is lost, every copied
archive's JSON sidecar says what the record said. ``import_from_target``
lists the target, reads and checks each sidecar (``offsite_layout``), and
creates a succeeded BackupRecord and a verified OffsiteCopy per archive:

* attached to the server whose folder is the sidecar's ``server_directory``;
  with no such server, kept as a backup of a deleted server (``server``
  null, its name and folder recorded) owned by ``owner`` — or skipped when
  no owner was given;
* restorable from the copy (``local_removed_at`` set, no local path), or
  from the local file when one with the same SHA-256 is at the place mcsite
  keeps it (``server-<id>/<file>`` under the backup root);
* idempotent: an archive already known on this target (target + remote
  name), or a record of the same server, file name and SHA-256 (then only
  the copy row is added), creates nothing new.

Nothing is decrypted or downloaded: the key fingerprint comes from the
sidecar; a restore later checks the bytes as they stream. A sidecar that is
unreadable, does not describe the archive beside it (name, folder, size) or
conflicts with an existing record is skipped with the reason."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from datetime import timezone as dt_timezone

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from backups import engine, offsite_layout, storage
from backups.models import BackupRecord, Compression, OffsiteCopy, StorageTarget
from backups.offsite import OffsiteError, open_target
from mcsite.audit import audit
from servers.models import Server

logger = logging.getLogger("mcsite.backups")

IMPORTED, KNOWN, LINKED, SKIPPED = "imported", "already known", "copy added to the existing record", "skipped"


@dataclass
class Outcome:
    remote_name: str
    action: str                   # IMPORTED, KNOWN, LINKED or SKIPPED
    detail: str = ""
    record_id: int | None = None
    local_file: bool = False

    def line(self, dry_run: bool = False) -> str:
        action = f"would be {self.action}" if dry_run and self.action in (IMPORTED, LINKED) else self.action
        text = f"{self.remote_name}: {action}"
        if self.record_id:
            text += f" (backup id {self.record_id})"
        return text + (f" — {self.detail}" if self.detail else "")


def import_from_target(*, target: StorageTarget, server: Server | None = None, owner=None,
                       dry_run: bool = False, actor=None) -> list[Outcome]:
    """One Outcome per archive (or bad sidecar) found on the target; with
    ``server``, only that server's folder is read. Raises OffsiteError when
    the target cannot be listed."""
    prefix = f"{server.directory.strip('/')}/" if server is not None else ""
    with open_target(target.config()) as remote:
        # Incremental repositories (mcsite-repo/) are importing_repos.py's, not archives.
        entries = [e for e in remote.list(prefix) if not e.name.startswith("mcsite-repo/")]
        sizes = {e.name: e.size for e in entries if not offsite_layout.is_sidecar(e.name)}
        outcomes = []
        for entry in entries:
            if not offsite_layout.is_sidecar(entry.name):
                continue
            archive = entry.name[:-len(offsite_layout.SIDECAR_SUFFIX)]
            try:
                sidecar = offsite_layout.parse_sidecar(remote.get_small(entry.name))
            except (offsite_layout.SidecarError, OffsiteError) as exc:
                outcomes.append(Outcome(entry.name, SKIPPED, f"unreadable sidecar: {exc}"))
                continue
            outcomes.append(_one(target, archive, sidecar, sizes, server=server, owner=owner, dry_run=dry_run))
        sidecars = {e.name for e in entries if offsite_layout.is_sidecar(e.name)}
        for name in sizes:
            if offsite_layout.sidecar_name(name) not in sidecars and not name.startswith(".mcsite-test-"):
                outcomes.append(Outcome(name, SKIPPED, "no sidecar beside it (not an mcsite copy?)"))
    if not dry_run and any(o.action in (IMPORTED, LINKED) for o in outcomes):
        audit(actor=actor, action="backups.import", obj=target, source="command",
              detail={"target": target.name, "imported": sum(o.action == IMPORTED for o in outcomes),
                      "linked": sum(o.action == LINKED for o in outcomes)})
    return outcomes


def _one(target, archive: str, sidecar, sizes: dict, *, server, owner, dry_run) -> Outcome:
    doc = sidecar.document
    directory = str(doc["server_directory"]).strip("/")
    try:
        expected = offsite_layout.remote_name(directory=directory, filename=doc["filename"])
    except ValueError as exc:
        return Outcome(archive, SKIPPED, f"bad sidecar: {exc}")
    if expected != archive:  # a sidecar speaks only for the archive it sits beside
        return Outcome(archive, SKIPPED, f"the sidecar describes {expected}, not the archive beside it")
    if archive not in sizes:
        return Outcome(archive, SKIPPED, "the archive itself is missing (only its sidecar is there)")
    if sizes[archive] != doc["size_bytes"]:
        return Outcome(archive, SKIPPED, f"the archive is {sizes[archive]} bytes, the sidecar says {doc['size_bytes']}")

    copy = OffsiteCopy.objects.filter(target=target, remote_name=archive).select_related("backup").first()
    if copy is not None:
        return Outcome(archive, KNOWN, record_id=copy.backup_id)
    home = Server.objects.filter(directory=directory).first()
    if server is not None and home is not None and home.pk != server.pk:
        return Outcome(archive, SKIPPED, f"it belongs to the server in folder {directory}")
    if home is None and owner is None:
        return Outcome(archive, SKIPPED, f"no server has the folder {directory}: give --owner to import it as a "
                                         "backup of a deleted server, or create the server first")
    same = BackupRecord.objects.filter(filename=doc["filename"])
    same = same.filter(server=home) if home is not None else same.filter(server__isnull=True, server_directory=directory)
    existing = same.exclude(status=BackupRecord.Status.DELETED).first()
    if existing is not None and existing.sha256 != doc["sha256"]:
        return Outcome(archive, SKIPPED, f"a different backup named {doc['filename']} exists (id {existing.pk})")
    if existing is not None:
        if not dry_run:
            _copy_row(existing, target, archive, doc)
        return Outcome(archive, LINKED, record_id=existing.pk, local_file=storage.file_present(existing))
    if home is not None and BackupRecord.objects.filter(server=home, filename=doc["filename"]).exists():
        return Outcome(archive, SKIPPED, f"a deleted backup named {doc['filename']} is on record")
    local = _local_file(home, doc) if home is not None else None
    if dry_run:
        return Outcome(archive, IMPORTED, _where(home, directory, local), local_file=local is not None)
    with transaction.atomic():
        record = BackupRecord.objects.create(**_record_fields(doc, home=home, owner=owner, directory=directory,
                                                              local=local))
        _copy_row(record, target, archive, doc)
    return Outcome(archive, IMPORTED, _where(home, directory, local), record_id=record.pk,
                   local_file=local is not None)


def _where(home, directory, local) -> str:
    who = f"server {home.name!r} (id {home.pk})" if home is not None else f"deleted server, folder {directory}"
    return f"{who}; " + ("the local file is there" if local else "restorable from this target")


def _local_file(home: Server, doc) -> str | None:
    """The local path of the same backup, if its file is still where mcsite keeps it."""
    path = storage.backup_root() / f"server-{home.pk}" / doc["filename"]
    if not path.is_file() or path.stat().st_size != doc["size_bytes"]:
        return None
    sha256, _ = engine.file_digests(path)
    return storage.relative_path(path) if sha256 == doc["sha256"] else None


def _str(value, limit: int) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _count(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _record_fields(doc: dict, *, home, owner, directory: str, local: str | None) -> dict:
    now = timezone.now()
    created = _aware(offsite_layout.Sidecar(doc).created_at)
    try:
        taken = _aware(datetime.fromisoformat(doc["taken_at"])) if isinstance(doc.get("taken_at"), str) else created
    except ValueError:
        taken = created
    compression = doc.get("compression") if doc.get("compression") in Compression.values else Compression.GZIP
    trigger = doc.get("trigger") if doc.get("trigger") in BackupRecord.Trigger.values else BackupRecord.Trigger.MANUAL
    score = _count(doc.get("quality_score"))
    passed = doc.get("verification_passed")
    return {
        "server": home, "owner": home.owner if home is not None else owner,
        "server_name": _str(doc.get("server_name"), 100) or (home.name if home else directory)[:100],
        "server_directory": "" if home is not None else directory[:500],
        "filename": doc["filename"][:200], "storage_path": local or "",
        # The file found in this host's backup root is on this node; else the copy is all there is.
        "node": settings.MCSITE_NODE if local else (home.node if home is not None else ""),
        "status": BackupRecord.Status.SUCCEEDED, "trigger": trigger, "compression": compression,
        "encrypted": doc.get("encrypted") is True, "key_fingerprint": _str(doc.get("key_fingerprint"), 64),
        "size_bytes": doc["size_bytes"], "source_bytes": _count(doc.get("source_bytes")),
        "file_count": _count(doc.get("file_count")), "sha256": doc["sha256"], "md5": _str(doc.get("md5"), 32),
        "world_name": _str(doc.get("world_name"), 200), "minecraft_version": _str(doc.get("minecraft_version"), 50),
        "created_at": created, "started_at": taken, "finished_at": created,
        "verification_passed": passed if isinstance(passed, bool) else None,
        "quality_score": score if score is not None and score <= 100 else None,
        "quality_level": _str(doc.get("quality_level"), 10),
        "local_removed_at": None if local else now,
        "phase": "done",
    }


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt_timezone.utc)


def _copy_row(record: BackupRecord, target: StorageTarget, archive: str, doc: dict) -> OffsiteCopy:
    now = timezone.now()
    copy, _ = OffsiteCopy.objects.update_or_create(
        backup=record, target=target,
        defaults={"remote_name": archive, "status": OffsiteCopy.Status.VERIFIED, "size_bytes": doc["size_bytes"],
                  "sha256": doc["sha256"], "error_code": "", "error_message": "", "finished_at": now,
                  "verified_at": now})
    return copy
