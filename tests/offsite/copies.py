"""Helpers for the restore/download/import-from-a-copy tests: a storage
target row of each kind on a real remote end (a second folder, moto S3, sshd
SFTP), and a verified copy of a backup made the way the copy task makes one
(the archive uploaded by the backend, its sidecar beside it, an OffsiteCopy
row) — without depending on the copy task itself."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from django.utils import timezone

from backups import offsite_layout, storage
from backups.models import OffsiteCopy, StorageTarget
from backups.offsite import TargetConfig, open_target
from tests.offsite.conftest import s3_config

KINDS = ["local", "s3", "sftp"]


def target_row(request, kind: str, tmp_path: Path, name: str | None = None) -> StorageTarget:
    if kind == "local":
        folder = tmp_path / "offsite-folder"
        folder.mkdir(exist_ok=True)
        config = TargetConfig(kind="local", name="offsite-local", settings={"path": str(folder)})
    elif kind == "s3":
        config = s3_config(request.getfixturevalue("moto_s3"), request.getfixturevalue("s3_bucket"))
    else:
        config = request.getfixturevalue("sshd").config()
    row = StorageTarget(name=name or config.name, kind=config.kind, settings=dict(config.settings))
    row.secrets = config.secrets
    row.save()
    return row


@pytest.fixture(params=KINDS)
def target(request, tmp_path, db):
    return target_row(request, request.param, tmp_path)


def copy_to(record, target: StorageTarget) -> OffsiteCopy:
    """Uploads the backup's file and its sidecar; a verified OffsiteCopy."""
    directory = record.server.directory if record.server else record.server_directory
    name = offsite_layout.remote_name(directory=directory, filename=record.filename)
    document = offsite_layout.sidecar_document(
        record, server_name=record.server.name if record.server else record.server_name,
        server_directory=directory, mcsite_version="test")
    with open_target(target.config()) as remote:
        result = remote.upload(storage.absolute_path(record.storage_path), name)
        remote.verify(name, size=result.size, sha256=record.sha256, part_size=result.part_size,
                      composite=result.composite)
        remote.put_small(offsite_layout.sidecar_name(name), offsite_layout.sidecar_bytes(document))
    assert result.sha256 == record.sha256
    return OffsiteCopy.objects.create(
        backup=record, target=target, remote_name=name, status=OffsiteCopy.Status.VERIFIED, size_bytes=result.size,
        sha256=result.sha256, part_size=result.part_size, composite_checksum=result.composite or "",
        verified_at=timezone.now(), finished_at=timezone.now())


def drop_local_file(record) -> None:
    storage.absolute_path(record.storage_path).unlink()
    record.local_removed_at = timezone.now()
    record.save(update_fields=["local_removed_at"])


def remote_bytes(target: StorageTarget, name: str) -> bytes:
    with open_target(target.config()) as remote, remote.open_read(name) as stream:
        return stream.read()


def alter_copy(request, target: StorageTarget, name: str) -> None:
    """Changes bytes in the middle of the copy on the target itself (same size)."""
    original = remote_bytes(target, name)
    data = bytearray(original)
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(b ^ 0xFF for b in data[middle:middle + 64])
    if target.kind == "local":
        (Path(target.settings["path"]) / name).write_bytes(bytes(data))
    elif target.kind == "sftp":
        (Path(target.settings["base_path"]) / name).write_bytes(bytes(data))
    else:
        client = request.getfixturevalue("moto_s3").client()
        client.put_object(Bucket=target.settings["bucket"], Key=target.settings["prefix"] + name, Body=bytes(data))
    assert remote_bytes(target, name) == bytes(data) != original


def tree(folder: Path, skip=("logs",)) -> dict[str, str]:
    """Every file's SHA-256, by path: the world byte for byte."""
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if path.is_file() and rel.parts[0] not in skip:
            out[rel.as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out
