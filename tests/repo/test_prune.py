"""Forgetting snapshots and pruning (issue #14, item 5): unused packs are
marked by one prune and deleted by the next (two phases); mostly unused packs
are repacked; a backup running meanwhile loses nothing (a pack it reused
before the mark is kept; nothing is deleted while its lock is there); a
crash at any step of a prune leaves a repository check passes and every
remaining snapshot restores."""

import hashlib
import shutil
from pathlib import Path

import pytest

from backups.repo.crypto import RepoKey
from backups.repo.repository import LocalStore, Repository

WORLD = Path(__file__).resolve().parents[1] / "fixtures" / "worlds" / "vanilla-1.14.4" / "world"


def tree(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def setup(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(WORLD, a / "world")
    (b / "only-b").mkdir(parents=True)
    (b / "only-b" / "data.bin").write_bytes(bytes(range(256)) * 4000)
    repo = Repository.init(LocalStore(tmp_path / "repo"), RepoKey.generate())
    return repo, a, b, tmp_path


def _pack_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in (root / "data").rglob("*") if p.is_file())


def test_forget_then_two_prunes_free_the_space_and_the_rest_restores(setup):
    repo, a, b, tmp = setup
    keep, _ = repo.backup(a)
    drop, _ = repo.backup(b)
    before = _pack_bytes(tmp / "repo")
    repo.forget([drop])
    first = repo.prune()
    assert first["marked_packs"] >= 1 and first["deleted_packs"] == 0, "marked only: two phases"
    assert _pack_bytes(tmp / "repo") == before
    second = repo.prune()
    assert second["deleted_packs"] >= 1 and _pack_bytes(tmp / "repo") < before
    report = repo.check(read_data=True)
    assert report["ok"] and not report["unused_packs"], report
    repo.restore(keep, tmp / "restored")
    assert tree(tmp / "restored") == tree(a)


def test_a_backup_that_reused_a_blob_before_the_mark_keeps_its_pack(setup):
    repo, a, b, tmp = setup
    first, _ = repo.backup(b)
    repo.forget([first])
    # A backup opened its repository (index loaded) before prune marked the pack...
    stale = Repository.open(LocalStore(tmp / "repo"), repo.key)
    repo.prune()  # marks b's pack: no snapshot uses it now
    stale.load_index = lambda: None  # ...and does not see the mark (it loaded the index before)
    again, stats = stale.backup(b)
    assert stats.blobs_new == 0, "it reused the blob in the marked pack"
    repo.prune()  # the sweep finds the pack used again: kept, unmarked
    assert repo.check(read_data=True)["ok"]
    repo.restore(again, tmp / "again")
    assert tree(tmp / "again") == tree(b)


def test_nothing_is_deleted_while_a_backup_holds_its_lock(setup):
    repo, a, b, tmp = setup
    first, _ = repo.backup(b)
    repo.forget([first])
    repo.prune()
    repo.store.put("locks/running", b'{"host": "h", "pid": 1, "time": "%s"}'
                   % __import__("datetime").datetime.now(__import__("datetime").timezone.utc).isoformat().encode())
    assert repo.prune()["deleted_packs"] == 0
    repo.store.delete("locks/running")
    assert repo.prune()["deleted_packs"] >= 1


def test_mostly_unused_packs_are_repacked(setup):
    repo, a, b, tmp = setup
    (b / "small.txt").write_text("a little file that stays")
    both, _ = repo.backup(b)  # one pack: the big data.bin and the small file
    (b / "only-b" / "data.bin").unlink()
    small, _ = repo.backup(b, parent=both)
    repo.forget([both])
    report = repo.prune()
    assert report["repacked_packs"] == 1
    repo.prune()
    assert repo.check(read_data=True)["ok"]
    repo.restore(small, tmp / "small")
    assert (tmp / "small" / "small.txt").read_text() == "a little file that stays"


@pytest.mark.parametrize("crash_at", ["index/", "pending/", "delete data/", "delete index/"])
def test_a_crash_anywhere_in_prune_leaves_a_sound_repository(setup, monkeypatch, crash_at):
    repo, a, b, tmp = setup
    keep, _ = repo.backup(a)
    (b / "keep.txt").write_text("kept")
    partly, _ = repo.backup(b)
    (b / "only-b" / "data.bin").unlink()
    later, _ = repo.backup(b, parent=partly)
    repo.forget([partly])
    repo.prune()  # marks (and repacks) — the crash comes in the next one's sweep or marks
    store = repo.store
    real_put, real_delete = store.put, store.delete

    def put(name, data):
        if crash_at in ("index/", "pending/") and name.startswith(crash_at):
            raise KeyboardInterrupt("killed")
        return real_put(name, data)

    def delete(name):
        if crash_at.startswith("delete ") and name.startswith(crash_at.split(" ", 1)[1]):
            raise KeyboardInterrupt("killed")
        return real_delete(name)

    monkeypatch.setattr(store, "put", put)
    monkeypatch.setattr(store, "delete", delete)
    try:
        repo.prune()
    except KeyboardInterrupt:
        pass
    monkeypatch.setattr(store, "put", real_put)
    monkeypatch.setattr(store, "delete", real_delete)
    reopened = Repository.open(LocalStore(tmp / "repo"), repo.key)
    assert reopened.check(read_data=True)["ok"], reopened.check(read_data=True)
    reopened.restore(keep, tmp / "keep")
    assert tree(tmp / "keep") == tree(a)
    reopened.restore(later, tmp / "later")
    assert (tmp / "later" / "keep.txt").read_text() == "kept"
    reopened.prune()
    reopened.prune()
    assert reopened.check(read_data=True)["ok"]
