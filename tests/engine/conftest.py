"""Shared fixtures: the real 1.14.4 world (copied before modification) and secrets."""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from backups.engine import EncryptionSpec, generate_key

FIXTURE_WORLD = Path(__file__).resolve().parents[1] / "fixtures" / "worlds" / "vanilla-1.14.4"


@pytest.fixture
def server_dir(tmp_path) -> Path:
    """A server folder holding a copy of the real world as ``world/``."""
    dest = tmp_path / "mc-server"
    shutil.copytree(FIXTURE_WORLD, dest)
    (dest / "server.properties").write_text("level-name=world\n")
    return dest


@pytest.fixture
def backups_dir(tmp_path) -> Path:
    path = tmp_path / "store"  # tests/conftest.py already makes tmp_path/backups
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def password_spec() -> EncryptionSpec:
    spec = EncryptionSpec.from_password("correct horse battery staple", iterations=100_000)
    spec.fingerprint  # computed once per session (scrypt, ~0.2 s)
    return spec


@pytest.fixture(scope="session")
def key_spec() -> EncryptionSpec:
    return EncryptionSpec.from_key(generate_key())


def tree_digests(root: Path) -> dict:
    """{relative path: sha256 or 'link:<target>' or 'dir'} for a folder, not following links."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = Path(dirpath) / name
            rel = full.relative_to(root).as_posix()
            if full.is_symlink():
                out[rel] = "link:" + os.readlink(full)
            elif full.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = hashlib.sha256(full.read_bytes()).hexdigest()
    return out


def snapshot(folder: Path) -> list:
    """Every path under ``folder`` (for 'nothing written outside' checks)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))
