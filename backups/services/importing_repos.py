"""Rebuild incremental repositories and their snapshots' records after the
database was lost (issue #14, beside importing.py's archives): each
repository under ``mcsite-repo/`` on a storage target is opened with the
key-encryption keys of a keys export (``manage.py export_keys``: its
``repositories`` list), and every snapshot in it becomes a succeeded backup
record again, named and attached as its tags say (the tags the run wrote:
file name, trigger, server name and folder).

Idempotent: a repository already known (its id) gains only the snapshots
not on record. A repository no key opens is skipped with the reason.
Snapshots come back unverified: "Verify again" (or the daily re-check)
reads them."""

from __future__ import annotations

from datetime import datetime
from datetime import timezone as dt_timezone

from django.db import transaction
from django.utils import timezone

from backups.models import BackupRecord, SnapshotRepository, StorageTarget
from backups.repo.repository import Repository, RepositoryError
from backups.repo.target_store import TargetStore
from backups.services.importing import IMPORTED, KNOWN, SKIPPED, Outcome
from backups.services.snapshots import TARGET_FOLDER, refresh_totals
from mcsite.audit import audit
from servers.models import Server


def import_repositories(*, target: StorageTarget, keys: list[bytes], remote, server: Server | None = None,
                        owner=None, dry_run: bool = False, actor=None) -> list[Outcome]:
    """One Outcome per snapshot (or per repository that does not open)."""
    folders = sorted({name.split("/")[1] for name in (e.name for e in remote.list(f"{TARGET_FOLDER}/"))
                      if name.count("/") >= 2 and name.split("/", 2)[2] == "config"})
    outcomes = []
    for folder in folders:
        location = f"{TARGET_FOLDER}/{folder}"
        store = TargetStore(remote, location)
        repo, kek = _open(store, keys)
        if repo is None:
            outcomes.append(Outcome(location, SKIPPED, "no key in the keys file opens this repository "
                                                       "(give --keys-file with an export that has it)"))
            continue
        outcomes += _snapshots(target, location, repo, kek, server=server, owner=owner, dry_run=dry_run)
    if not dry_run and any(o.action == IMPORTED for o in outcomes):
        audit(actor=actor, action="backups.import", obj=target, source="command",
              detail={"target": target.name, "snapshots": sum(o.action == IMPORTED for o in outcomes)})
    return outcomes


def _open(store, keys):
    for kek in keys:
        try:
            return Repository.open_with(store, kek), kek
        except RepositoryError:
            continue
    return None, None


def _snapshots(target, location, repo, kek, *, server, owner, dry_run) -> list[Outcome]:
    import json

    uid = json.loads(repo.store.get("config")).get("id", "")
    row = SnapshotRepository.objects.filter(repo_uid=uid).first()
    outcomes = []
    for snapshot_id in sorted(repo.snapshots()):
        name = f"{location} snapshot {snapshot_id[:12]}"
        try:
            document = repo.snapshot(snapshot_id)
        except Exception as exc:  # noqa: BLE001 — one unreadable snapshot does not stop the others
            outcomes.append(Outcome(name, SKIPPED, f"does not read: {exc}"))
            continue
        tags = document.get("tags") or {}
        directory = str(tags.get("server_directory", "")).strip("/")
        home = Server.objects.filter(directory=directory).first() if directory else None
        if server is not None and (home is None or home.pk != server.pk):
            continue
        known = BackupRecord.objects.filter(snapshot_id=snapshot_id).exclude(status=BackupRecord.Status.DELETED)
        if known.exists():
            outcomes.append(Outcome(name, KNOWN, record_id=known.first().pk))
            continue
        if home is None and owner is None:
            outcomes.append(Outcome(name, SKIPPED, f"no server has the folder {directory or '?'}: give --owner to "
                                                   "import it as a backup of a deleted server"))
            continue
        filename = str(tags.get("filename") or f"snapshot_{snapshot_id[:12]}")[:200]
        if home is not None and BackupRecord.objects.filter(server=home, filename=filename).exists():
            outcomes.append(Outcome(name, SKIPPED, f"a different backup named {filename} is on record"))
            continue
        who = f"server {home.name!r} (id {home.pk})" if home else f"deleted server, folder {directory}"
        if dry_run:
            outcomes.append(Outcome(name, IMPORTED, f"{filename} of {who}"))
            continue
        with transaction.atomic():
            if row is None:
                row = SnapshotRepository(server=home, server_name=str(tags.get("server_name") or directory)[:100],
                                         node=str(tags.get("node", ""))[:64], target=target, location=location,
                                         repo_uid=uid, active=home is not None, key_changed_at=timezone.now())
                row.kek = kek
                row.save()
            record = BackupRecord.objects.create(**_fields(document, snapshot_id, tags, filename, row, home, owner,
                                                           directory))
        outcomes.append(Outcome(name, IMPORTED, f"{filename} of {who}", record_id=record.pk))
    if row is not None and not dry_run:
        refresh_totals(row)
    return outcomes


def _fields(document, snapshot_id, tags, filename, row, home, owner, directory) -> dict:
    try:
        taken = datetime.fromisoformat(document["time"])
    except (KeyError, TypeError, ValueError):
        taken = timezone.now()
    taken = taken if taken.tzinfo else taken.replace(tzinfo=dt_timezone.utc)
    stats = document.get("stats") or {}
    trigger = tags.get("trigger") if tags.get("trigger") in BackupRecord.Trigger.values else BackupRecord.Trigger.MANUAL
    return {
        "server": home, "owner": home.owner if home is not None else owner,
        "server_name": str(tags.get("server_name") or (home.name if home else directory))[:100],
        "server_directory": "" if home is not None else directory[:500],
        "filename": filename, "node": row.node, "status": BackupRecord.Status.SUCCEEDED, "trigger": trigger,
        "compression": "zstd", "encrypted": True, "repository": row, "snapshot_id": snapshot_id,
        "sha256": snapshot_id, "source_bytes": stats.get("bytes"), "file_count": stats.get("files"),
        "created_at": taken, "started_at": taken, "finished_at": taken, "phase": "done",
    }
