"""The repository end to end on a folder (issue #14): a snapshot of the
fixture world restores byte for byte with times and modes; the same world
again reads no file (size, mtime and inode match) and adds nothing; one
changed chunk adds about one chunk; the repository opens with its key alone
and refuses another; check names the snapshot and file a flipped byte, a
deleted pack or a truncated index hurts, while the snapshots that do not
need them still restore."""

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from backups.repo.crypto import RepoKey
from backups.repo.repository import LocalStore, Repository, RepositoryError, file_blob_ids

WORLD = Path(__file__).resolve().parents[1] / "fixtures" / "worlds" / "vanilla-1.14.4" / "world"


def tree(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def world(tmp_path) -> Path:
    folder = tmp_path / "server"
    shutil.copytree(WORLD, folder / "world")
    for path in folder.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return folder


@pytest.fixture
def repo(tmp_path):
    key = RepoKey.generate()
    return Repository.init(LocalStore(tmp_path / "repo"), key)


def test_a_snapshot_restores_the_world_byte_for_byte(repo, world, tmp_path):
    snapshot_id, stats = repo.backup(world)
    assert stats.files == len(tree(world)) and stats.blobs_new > 0
    restored = tmp_path / "restored"
    assert repo.restore(snapshot_id, restored) == stats.files
    assert tree(restored) == tree(world)
    level = "world/level.dat"
    assert (restored / level).stat().st_mtime_ns == (world / level).stat().st_mtime_ns
    assert repo.check(read_data=True)["ok"]


def test_the_same_world_again_reads_nothing_and_adds_nothing(repo, world):
    first, stats = repo.backup(world)
    second, again = repo.backup(world, parent=first)
    assert again.files_unchanged == stats.files and again.blobs_new == 0 and again.bytes_new == 0
    forced, full = repo.backup(world, parent=second, force_read=True)
    assert full.files_unchanged == 0 and full.blobs_new == 0, "read again, every blob already known"
    assert repo.snapshot(forced)["parent"] == second


def test_one_changed_chunk_adds_about_one_chunk(repo, world, tmp_path):
    first, stats = repo.backup(world)
    region = max((world / "world" / "region").glob("*.mca"), key=lambda p: p.stat().st_size)
    data = bytearray(region.read_bytes())
    sector = next(int.from_bytes(data[i * 4:i * 4 + 3], "big") for i in range(1024) if data[i * 4 + 3])
    assert sector >= 2
    data[sector * 4096 + 200] ^= 0xFF  # one byte inside one chunk's data
    region.write_bytes(bytes(data))
    second, changed = repo.backup(world, parent=first)
    assert changed.files_unchanged == stats.files - 1
    assert 1 <= changed.blobs_new <= 2 and changed.bytes_new < 64 * 1024, changed
    restored = tmp_path / "second"
    repo.restore(second, restored)
    assert (restored / region.relative_to(world)).read_bytes() == bytes(data)


def test_the_repository_opens_with_its_key_alone(repo, world, tmp_path):
    snapshot_id, _ = repo.backup(world)
    again = Repository.open(LocalStore(tmp_path / "repo"), repo.key)
    assert again.snapshots() == [snapshot_id]
    with pytest.raises(RepositoryError):
        Repository.open(LocalStore(tmp_path / "repo"), RepoKey.generate())
    with pytest.raises(RepositoryError):
        Repository.init(LocalStore(tmp_path / "repo"), repo.key)


def _packs(root: Path) -> list[Path]:
    return sorted((root / "data").rglob("*"), key=lambda p: p.name)


@pytest.mark.parametrize("damage", ["flipped byte", "deleted pack", "truncated index"])
def test_check_names_what_damage_hurts_and_other_snapshots_still_restore(repo, world, tmp_path, damage):
    safe = tmp_path / "safe"
    safe.mkdir()
    (safe / "notes.txt").write_text("a file no other snapshot shares")
    kept, _ = repo.backup(safe)
    hurt, _ = repo.backup(world)
    root = tmp_path / "repo"
    packs = [p for p in _packs(root) if p.is_file()]
    kept_packs = {repo.pack_of(b) for f in repo.snapshot(kept)["files"]
                  for b in repo.blob_ids(f) + ([repo.list_id(f)] if "list" in f else [])}
    target = next(p for p in packs if p.name not in kept_packs)
    if damage == "flipped byte":
        data = bytearray(target.read_bytes())
        data[len(data) // 3] ^= 1
        target.write_bytes(bytes(data))
    elif damage == "deleted pack":
        target.unlink()
    else:
        index = max((root / "index").iterdir(), key=lambda p: p.stat().st_size)
        index.write_bytes(index.read_bytes()[:-20])
    reopened = Repository.open(LocalStore(root), repo.key)
    report = reopened.check(read_data=True)
    assert not report["ok"]
    assert hurt in report["problems"] and kept not in report["problems"]
    assert all(line.startswith("world/") for line in report["problems"][hurt])
    reopened.restore(kept, tmp_path / "kept")
    assert (tmp_path / "kept" / "notes.txt").read_text() == "a file no other snapshot shares"
    with pytest.raises(Exception):
        reopened.restore(hurt, tmp_path / "hurt")


def test_a_crash_before_the_index_leaves_only_an_unused_pack(repo, world, tmp_path, monkeypatch):
    store = repo.store
    real_put = store.put

    def crash_at_index(name, data):
        if name.startswith("index/"):
            raise KeyboardInterrupt("killed")
        return real_put(name, data)

    monkeypatch.setattr(store, "put", crash_at_index)
    with pytest.raises(KeyboardInterrupt):
        repo.backup(world)
    monkeypatch.setattr(store, "put", real_put)
    reopened = Repository.open(LocalStore(tmp_path / "repo"), repo.key)
    report = reopened.check(read_data=True)
    assert report["ok"] and report["unused_packs"] and reopened.snapshots() == []
    assert not [p for p in (tmp_path / "repo").rglob(".tmp-*")]
    os.sync()


def test_only_a_dimension_the_player_data_or_one_file(repo, world, tmp_path):
    snapshot_id, _ = repo.backup(world)
    nether = tmp_path / "nether"
    count = repo.restore(snapshot_id, nether, only=["world/DIM-1"])
    assert count == len(tree(world / "world" / "DIM-1")) > 0
    assert tree(nether) == {f"world/DIM-1/{k}": v for k, v in tree(world / "world" / "DIM-1").items()}
    one = tmp_path / "one"
    assert repo.restore(snapshot_id, one, only=["world/level.dat", "world/playerdata"]) >= 1
    assert (one / "world" / "level.dat").read_bytes() == (world / "world" / "level.dat").read_bytes()
    assert not (one / "world" / "region").exists()
    with pytest.raises(RepositoryError):
        repo.restore(snapshot_id, tmp_path / "none", only=["world/DIM7"])
    assert not (tmp_path / "none").exists(), "nothing written for a path the snapshot does not hold"


def test_the_key_wrapped_by_the_sites_key_opens_it_and_rotation_only_rewraps(repo, world, tmp_path):
    old_kek, new_kek = os.urandom(32), os.urandom(32)
    repo.add_key(old_kek)
    snapshot_id, _ = repo.backup(world)
    packs = {p.name: p.read_bytes() for p in (tmp_path / "repo" / "data").rglob("*") if p.is_file()}
    store = LocalStore(tmp_path / "repo")
    assert Repository.open_with(store, old_kek).snapshots() == [snapshot_id]
    repo.rewrap(old_kek, new_kek)
    assert {p.name: p.read_bytes() for p in (tmp_path / "repo" / "data").rglob("*") if p.is_file()} == packs, \
        "no blob encrypted again"
    assert len(list((tmp_path / "repo" / "keys").iterdir())) == 1
    reopened = Repository.open_with(store, new_kek)
    reopened.restore(snapshot_id, tmp_path / "restored")
    assert tree(tmp_path / "restored") == tree(world)
    with pytest.raises(RepositoryError):
        Repository.open_with(store, old_kek)


def test_a_big_world_is_indexed_as_it_goes_and_prune_rewrites_the_index_in_parts(repo, world, tmp_path,
                                                                                  monkeypatch):
    from backups.repo import pack, repository

    monkeypatch.setattr(pack, "TARGET_SIZE", 64 * 1024)  # many packs from a small world
    monkeypatch.setattr(repository, "INDEX_PACKS", 2)
    first, _ = repo.backup(world)
    packs = len(repo.store.list("data"))
    indexes = repo.store.list("index")
    assert packs > 8 and len(indexes) >= packs // 2, "an index file every two packs, not one at the end"
    (world / "world" / "extra.bin").write_bytes(os.urandom(300_000))
    second, _ = repo.backup(world, parent=first)
    repo.forget([first])
    (world / "world" / "extra.bin").unlink()
    repo.prune()
    repo.prune()
    assert len(repo.store.list("index")) >= 2, "the rewritten index is in parts of at most 8 packs"
    reopened = Repository.open(repo.store, repo.key)
    assert reopened.check(read_data=True)["ok"]
    assert reopened.restore(second, tmp_path / "out") > 0
    assert tree(tmp_path / "out" / "world") == {**tree(world / "world"), **{
        "extra.bin": hashlib.sha256((tmp_path / "out" / "world" / "extra.bin").read_bytes()).hexdigest()}}


def test_blob_lists_are_inline_for_small_files_and_tree_blobs_for_big_ones(repo, world, tmp_path):
    snapshot_id, _ = repo.backup(world)
    files = [f for f in repo.snapshot(snapshot_id)["files"] if f["type"] == "file" and f["size"]]
    small = next(f for f in files if "blobs" in f)
    assert isinstance(small["blobs"], str) and "list" not in small  # base64 of the concatenated ids
    ids = file_blob_ids(small)
    assert ids and all(len(b) == 32 for b in ids)
    assert file_blob_ids({"blobs": [b.hex() for b in ids]}) == ids  # the first format still reads
    region = next(f for f in files if f["path"].endswith(".mca") and "list" in f)
    assert "blobs" not in region and len(repo.blob_ids(region)) > 8
    again, _ = repo.backup(world, parent=snapshot_id)
    # unchanged files: the same entries and lists, nothing read or stored
    assert repo.snapshot(again)["files"] == repo.snapshot(snapshot_id)["files"]
    repo.restore(again, tmp_path / "out")
    assert tree(tmp_path / "out") == tree(world)


def test_an_index_file_replaced_between_listing_and_reading_is_read_from_its_replacement(repo, world, tmp_path):
    """A prune rewrites the index (new files first, then the old ones go)
    while another process opens the repository: the opener lists the old
    name, finds it gone, lists again and reads the new file."""
    snapshot_id, _ = repo.backup(world)
    store = repo.store

    class Racing:
        def __init__(self, inner):
            self.inner, self.raced = inner, False

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def get(self, name):
            if name.startswith("index/") and not self.raced:
                self.raced = True
                data = self.inner.get(name)
                self.inner.put("index/" + "f" * 64, data)  # the prune's new file
                self.inner.delete(name)  # ... and the old one gone
            return self.inner.get(name)

    racing = Racing(store)
    reopened = Repository.open(racing, repo.key)
    assert racing.raced and not reopened.damaged_indexes
    assert reopened.restore(snapshot_id, tmp_path / "out") > 0
    assert tree(tmp_path / "out") == tree(world)
