"""The repository on storage targets (issue #14): the same snapshots,
restores, checks and prunes on moto's S3 server over HTTP and on a real sshd
over SFTP; a backup and a prune running at the same time on one repository
(on a folder and on S3) lose nothing."""

import hashlib
import shutil
import threading
from pathlib import Path

import pytest

from backups.offsite import open_target
from backups.repo import pack
from backups.repo.crypto import RepoKey
from backups.repo.repository import LocalStore, Repository
from backups.repo.target_store import TargetStore
from tests.offsite.conftest import moto_s3, s3_bucket, s3_config, sshd  # noqa: F401 (fixtures)

WORLD = Path(__file__).resolve().parents[1] / "fixtures" / "worlds" / "vanilla-1.14.4" / "world"


def tree(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(params=["s3", "sftp"])
def remote_store(request, tmp_path):
    if request.param == "s3":
        config = s3_config(request.getfixturevalue("moto_s3"), request.getfixturevalue("s3_bucket"))
    else:
        config = request.getfixturevalue("sshd").config()
    target = open_target(config)
    try:
        yield TargetStore(target, "mcsite-repo/survival")
    finally:
        target.close()


def test_a_repository_on_a_target_backs_up_restores_checks_and_prunes(remote_store, tmp_path, monkeypatch):
    monkeypatch.setattr(pack, "TARGET_SIZE", 2 * 1024 * 1024)  # several packs, some over put_small's limit
    folder = tmp_path / "server"
    shutil.copytree(WORLD, folder / "world")
    repo = Repository.init(remote_store, RepoKey.generate())
    first, stats = repo.backup(folder)
    assert stats.bytes_new > 0 and len(remote_store.list("data")) >= 1
    (folder / "world" / "level.dat").write_bytes(b"changed")
    second, changed = repo.backup(folder, parent=first)
    assert changed.files_unchanged == stats.files - 1
    again = Repository.open(remote_store, repo.key)
    assert sorted(again.snapshots()) == sorted([first, second]) and again.check(read_data=True)["ok"]
    again.restore(first, tmp_path / "first")
    assert tree(tmp_path / "first" / "world") == tree(WORLD), "the first snapshot, before level.dat changed"
    again.forget([first])
    again.prune()
    again.prune()
    assert again.check(read_data=True)["ok"]
    again.restore(second, tmp_path / "second")
    assert (tmp_path / "second" / "world" / "level.dat").read_bytes() == b"changed"


@pytest.mark.parametrize("where", ["folder", "s3"])
def test_a_backup_and_a_prune_at_the_same_time_lose_nothing(where, tmp_path, request):
    if where == "folder":
        store_a = store_b = LocalStore(tmp_path / "repo")
    else:
        config = s3_config(request.getfixturevalue("moto_s3"), request.getfixturevalue("s3_bucket"))
        store_a = TargetStore(open_target(config), "mcsite-repo/x")
        store_b = TargetStore(open_target(config), "mcsite-repo/x")
    key = RepoKey.generate()
    repo = Repository.init(store_a, key)
    folder = tmp_path / "server"
    shutil.copytree(WORLD, folder / "world")
    old, _ = repo.backup(folder)
    repo.forget([old])
    repo.prune()  # everything of `old` is marked now
    results, errors = {}, []

    def backup():
        try:
            results["new"] = Repository.open(store_b, key).backup(folder)[0]
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    def prune():
        try:
            for _ in range(3):
                Repository.open(store_a, key).prune()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=backup), threading.Thread(target=prune)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors
    final = Repository.open(store_a, key)
    final.prune()
    final.prune()
    assert final.check(read_data=True)["ok"]
    final.restore(results["new"], tmp_path / "restored")
    assert tree(tmp_path / "restored") == tree(folder)
