"""A snapshot exported as an ordinary tar.gz (issue #14, item 6): GNU tar
and Python's tarfile open it, and it holds the world byte for byte."""

import hashlib
import io
import shutil
import subprocess
from pathlib import Path

from backups.repo.crypto import RepoKey
from backups.repo.export import export_tar_gz
from backups.repo.repository import LocalStore, Repository

WORLD = Path(__file__).resolve().parents[1] / "fixtures" / "worlds" / "vanilla-1.14.4" / "world"


def tree(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_an_exported_snapshot_is_an_ordinary_tar_gz(tmp_path):
    world = tmp_path / "server"
    shutil.copytree(WORLD, world / "world")
    (world / "world-link").symlink_to("world")
    repo = Repository.init(LocalStore(tmp_path / "repo"), RepoKey.generate())
    snapshot_id, stats = repo.backup(world)
    archive = tmp_path / "export.tar.gz"
    with open(archive, "wb") as fh:
        assert export_tar_gz(repo, snapshot_id, fh) == stats.files
    subprocess.run(["gzip", "-t", str(archive)], check=True)
    (tmp_path / "out").mkdir()
    subprocess.run(["tar", "-xzf", str(archive), "-C", str(tmp_path / "out")], check=True)
    assert tree(tmp_path / "out") == tree(world)
    assert (tmp_path / "out" / "world-link").is_symlink()
    buffer = io.BytesIO()
    export_tar_gz(repo, snapshot_id, buffer)
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(buffer.getvalue()), mode="r:gz") as tar:
        assert "world/level.dat" in tar.getnames()
