"""carry_excluded: what backups leave out stays through a restore.

A backup does not hold what the server's exclude patterns name (``logs/``,
``crash-reports/``, ``cache/`` by default), so a restore that replaced the
whole folder would delete them. Before the swap, each excluded path of the
current folder that the staged folder does not have is linked into the
staged folder: hard links for files (same filesystem, no copy, and the
current folder stays untouched until the swap, so a failed restore puts it
back whole), a copy where the filesystem refuses links. Symlinks are never
carried: where one points depends on the folders around it, and those are
the backup's after the swap (a link that stays inside the current folder can
lead into another server's folder through the restored one). Sockets, fifos
and devices are never carried either.
"""
from __future__ import annotations

import errno
import os
import shutil
import stat

from .walk import ExcludeRules


def excluded_paths(current, exclude) -> list[str]:
    """The paths of ``current`` the exclude patterns name, top-most only (a
    folder stands for everything below it), relative and "/"-separated."""
    rules = ExcludeRules(exclude or ())
    current = os.path.abspath(os.fspath(current))
    found: list[str] = []
    stack = [""] if os.path.isdir(current) else []
    while stack:
        rel_dir = stack.pop()
        try:
            with os.scandir(os.path.join(current, rel_dir)) as entries:
                children = sorted(entries, key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError):
            continue
        for child in children:
            rel = f"{rel_dir}/{child.name}" if rel_dir else child.name
            is_dir = child.is_dir(follow_symlinks=False)
            if rules.excluded(rel, is_dir):
                found.append(rel)
            elif is_dir:
                stack.append(rel)
    return sorted(found)


def carry_excluded(current, staging, exclude) -> list[str]:
    """Links the excluded paths of ``current`` into ``staging``; returns those
    carried. ``staging`` wins: a path it already has is never overwritten."""
    current, staging = os.path.abspath(os.fspath(current)), os.path.abspath(os.fspath(staging))
    carried = []
    for rel in excluded_paths(current, exclude):
        source, target = os.path.join(current, *rel.split("/")), os.path.join(staging, *rel.split("/"))
        if not os.path.lexists(target) and not _through_link(staging, rel) and _carry(source, target):
            carried.append(rel)
    return carried


def _through_link(staging: str, rel: str) -> bool:
    """A folder on the way to `rel` in the staged tree is a link: writing
    there would write wherever that link points."""
    path = staging
    for part in rel.split("/")[:-1]:
        path = os.path.join(path, part)
        if os.path.islink(path):
            return True
    return False


def _carry(source: str, target: str) -> bool:
    """One entry (a folder with everything below it); False if nothing was carried."""
    info = os.lstat(source)
    if stat.S_ISREG(info.st_mode):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        _link_or_copy(source, target)
        return True
    if not stat.S_ISDIR(info.st_mode):
        return False  # sockets, fifos, devices: never restored
    os.makedirs(target, exist_ok=True)
    for entry in sorted(os.listdir(source)):
        _carry(os.path.join(source, entry), os.path.join(target, entry))
    shutil.copystat(source, target, follow_symlinks=False)
    return True


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target, follow_symlinks=False)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
            raise
        shutil.copy2(source, target, follow_symlinks=False)
