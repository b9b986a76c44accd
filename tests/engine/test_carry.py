"""carry_excluded: what backups leave out is linked into the staged folder
before a restore's swap — files only, never a link, never through a link."""
from __future__ import annotations

import os

from backups.engine import carry_excluded, excluded_paths


def _tree(root):
    (root / "world").mkdir(parents=True)
    (root / "logs" / "old").mkdir(parents=True)
    (root / "logs" / "latest.log").write_text("today")
    (root / "logs" / "old" / "1.log.gz").write_bytes(b"gz")
    (root / "world" / "level.dat").write_bytes(b"live")
    (root / "world" / "session.lock").write_bytes(b"lock")


def test_excluded_files_are_hard_linked_and_the_staged_folder_wins(tmp_path):
    current, staging = tmp_path / "current", tmp_path / "staging"
    _tree(current)
    (staging / "world").mkdir(parents=True)
    (staging / "world" / "session.lock").write_bytes(b"from the backup")

    assert excluded_paths(current, ["logs/", "session.lock"]) == ["logs", "world/session.lock"]
    assert carry_excluded(current, staging, ["logs/", "session.lock"]) == ["logs"]
    assert (staging / "logs" / "old" / "1.log.gz").read_bytes() == b"gz"
    assert os.stat(staging / "logs" / "latest.log").st_ino == os.stat(current / "logs" / "latest.log").st_ino
    assert (staging / "world" / "session.lock").read_bytes() == b"from the backup"
    assert not (staging / "world" / "level.dat").exists()  # not excluded: the backup's business


def test_a_link_that_is_harmless_now_is_not_carried_into_the_restored_tree(tmp_path):
    """In the current folder `logs/evil` resolves inside it (through the
    `world` link); after the swap `world` is the backup's real folder and the
    same link leads into the next server's folder."""
    servers = tmp_path / "servers"
    current, staging, other = servers / "a", servers / ".a.restore-1", servers / "b"
    (current / "x" / "y" / "z").mkdir(parents=True)
    os.symlink("x/y/z", current / "world")
    (current / "logs").mkdir()
    os.symlink("../world/../../b", current / "logs" / "evil")
    (current / "logs" / "latest.log").write_text("today")
    (staging / "world").mkdir(parents=True)
    other.mkdir()
    (other / "secret").write_text("b's world")

    assert carry_excluded(current, staging, ["logs/"]) == ["logs"]
    assert (staging / "logs" / "latest.log").read_text() == "today"
    assert not os.path.lexists(staging / "logs" / "evil")


def test_nothing_is_written_through_a_link_of_the_staged_tree(tmp_path):
    current, staging, outside = tmp_path / "current", tmp_path / "staging", tmp_path / "outside"
    (current / "plugins" / "cache").mkdir(parents=True)
    (current / "plugins" / "cache" / "tile.png").write_bytes(b"png")
    staging.mkdir()
    outside.mkdir()
    os.symlink(str(outside), staging / "plugins")

    assert carry_excluded(current, staging, ["cache/"]) == []
    assert list(outside.iterdir()) == []
