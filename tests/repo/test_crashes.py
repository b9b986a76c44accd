"""kill -9 in a backup, in a prune and in a repack (issue #14): a real
process running the repository is SIGKILLed at each step (MCSITE_CRASH_AT);
afterwards check passes, every earlier snapshot restores byte for byte, and
the next prunes clean up what the dead process left."""

import hashlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from backups.repo.crypto import RepoKey
from backups.repo.repository import LocalStore, Repository

WORLD = Path(__file__).resolve().parents[1] / "fixtures" / "worlds" / "vanilla-1.14.4" / "world"
ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import sys
from backups.repo import pack
from backups.repo.crypto import RepoKey
from backups.repo.repository import LocalStore, Repository
pack.TARGET_SIZE = 256 * 1024  # several packs: the crash can come between them
repo = Repository.open(LocalStore(sys.argv[1]), RepoKey(bytes.fromhex(sys.argv[2])))
if sys.argv[3] == "backup":
    repo.backup(sys.argv[4])
else:
    repo.prune()
"""


def tree(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _run(point: str, *args) -> int:
    env = {**os.environ, "MCSITE_CRASH_AT": point}
    return subprocess.run([sys.executable, "-c", SCRIPT, *args], cwd=ROOT, env=env, timeout=120).returncode


@pytest.fixture
def repo_with_history(tmp_path, monkeypatch):
    """Three snapshots: the world; the world with extra/big.bin and
    extra/small.txt (one pack holds both); the world with small.txt only.
    Forgetting the second leaves that pack mostly unused: repacked."""
    from backups.repo import pack

    monkeypatch.setattr(pack, "TARGET_SIZE", 256 * 1024)
    key = RepoKey.generate()
    repo = Repository.init(LocalStore(tmp_path / "repo"), key)
    world = tmp_path / "server"
    shutil.copytree(WORLD, world / "world")
    first, _ = repo.backup(world)
    first_tree = tree(world)
    (world / "extra").mkdir()
    (world / "extra" / "big.bin").write_bytes(os.urandom(200_000))
    (world / "extra" / "small.txt").write_text("kept by the third snapshot")
    second, _ = repo.backup(world, parent=first)
    second_tree = tree(world)
    (world / "extra" / "big.bin").unlink()
    third, _ = repo.backup(world, parent=second)
    third_tree = tree(world)
    return repo, key, world, {"first": (first, first_tree), "second": (second, second_tree),
                              "third": (third, third_tree)}, tmp_path


def _sound(tmp_path, key, snapshots: dict) -> None:
    repo = Repository.open(LocalStore(tmp_path / "repo"), key)
    report = repo.check(read_data=True)
    assert report["ok"], report
    for name, (snapshot_id, expected) in snapshots.items():
        target = tmp_path / f"restored-{name}-{len(list(tmp_path.iterdir()))}"
        repo.restore(snapshot_id, target)
        assert tree(target) == expected, name
    repo.prune()
    repo.prune()
    assert repo.check(read_data=True)["ok"] and not repo.check()["unused_packs"]


@pytest.mark.parametrize("point", ["repo-pack-written", "repo-index-written"])
def test_kill_9_during_a_backup(repo_with_history, point):
    repo, key, world, snapshots, tmp_path = repo_with_history
    (world / "extra" / "more.bin").write_bytes(os.urandom(700_000))
    assert _run(point, str(tmp_path / "repo"), key.key.hex(), "backup", str(world)) == -signal.SIGKILL
    assert len(Repository.open(LocalStore(tmp_path / "repo"), key).snapshots()) == 3, "no half snapshot"
    _sound(tmp_path, key, snapshots)


@pytest.mark.parametrize("point", ["repo-pack-marked", "repo-repack-written", "repo-repack-indexed",
                                   "repo-index-rewritten", "repo-pack-deleted"])
def test_kill_9_during_a_prune_or_repack(repo_with_history, point):
    repo, key, world, snapshots, tmp_path = repo_with_history
    repo.forget([snapshots.pop("second")[0]])
    if point in ("repo-index-rewritten", "repo-pack-deleted"):
        repo.prune()  # marks and repacks; the killed prune is the sweep that deletes
    code = _run(point, str(tmp_path / "repo"), key.key.hex(), "prune")
    assert code == -signal.SIGKILL, f"the prune never reached {point}"
    _sound(tmp_path, key, snapshots)
