"""carry_rest: a partial restore replaces the chosen paths and nothing else.

``extract_to_staging(..., only=paths)`` writes just the chosen part of a
backup (a dimension's folder, the player data, one file) into the staging
folder. Before the swap, everything else of the current server folder is
linked into the staging folder — hard links for files (no copy, and the
current folder stays untouched until the swap, so a failed restore puts it
back whole), a copy where the filesystem refuses links — so the staged
folder is the current one with only the chosen paths replaced. The swap,
the check, the commit and the crash recovery are then exactly those of a
whole restore (restore_run.py): one folder is renamed aside, one into place.

Symlinks of the current folder are carried as symlinks (same target), and
afterwards every symlink of the staged folder (carried or restored) is
resolved component by component on the staged folder itself, as the kernel
will resolve it (``safety.resolve_symlink``): one that leaves the folder or
loops is removed and listed in ``dropped``. Sockets, fifos and devices are
never carried. Where the current folder has a file or a link on the way to
a chosen path (``world`` a symlink, say) the backup's folder takes its place.
"""
from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass, field

from .carry import _link_or_copy
from .safety import SymlinkLoop, resolve_symlink
from .walk import _disk_readlink


@dataclass
class CarryResult:
    files: int = 0
    folders: int = 0
    links: int = 0
    dropped: list = field(default_factory=list)  # [{"path", "reason"}]


def _ancestors(chosen) -> set:
    found = set()
    for path in chosen:
        parts = path.split("/")
        for n in range(1, len(parts)):
            found.add("/".join(parts[:n]))
    return found


def carry_rest(current, staging, chosen) -> CarryResult:
    """Links everything of ``current`` that is not one of the ``chosen``
    paths (nor below one) into ``staging``; returns what was carried.
    ``chosen`` are plain folder-relative paths (``normalize_selection``)."""
    current, staging = os.path.abspath(os.fspath(current)), os.path.abspath(os.fspath(staging))
    chosen = set(chosen)
    on_the_way = _ancestors(chosen)
    result = CarryResult()
    links: list[str] = []
    folders: list[tuple[str, str]] = []  # (source, target), for their times once their contents are in
    stack = [("", True)] if os.path.isdir(current) else []
    while stack:  # explicit stack: a deep folder cannot exhaust Python's recursion limit
        rel_dir, partial = stack.pop()
        with os.scandir(os.path.join(current, *rel_dir.split("/")) if rel_dir else current) as entries:
            children = sorted(entries, key=lambda e: e.name)
        for child in children:
            rel = f"{rel_dir}/{child.name}" if rel_dir else child.name
            if partial and rel in chosen:
                continue  # the backup's copy is in the staging folder
            source, target = child.path, os.path.join(staging, *rel.split("/"))
            info = os.lstat(source)
            if partial and rel in on_the_way:
                if not stat.S_ISDIR(info.st_mode):
                    result.dropped.append({"path": rel, "reason": "replaced by the backup's folder"})
                    continue
                os.makedirs(target, exist_ok=True)
                folders.append((source, target))
                stack.append((rel, True))
                continue
            if os.path.lexists(target):
                continue  # the staged folder wins
            if stat.S_ISREG(info.st_mode):
                os.makedirs(os.path.dirname(target), exist_ok=True)
                _link_or_copy(source, target)
                result.files += 1
            elif stat.S_ISDIR(info.st_mode):
                os.makedirs(target)
                folders.append((source, target))
                result.folders += 1
                stack.append((rel, False))
            elif stat.S_ISLNK(info.st_mode):
                os.symlink(os.readlink(source), target)
                links.append(rel)
            # sockets, fifos, devices: never carried
    for source, target in reversed(folders):  # deepest last in, first out: children before parents
        shutil.copystat(source, target, follow_symlinks=False)
    result.links = len(links) - _drop_unsafe_links(staging, links, chosen, result.dropped)
    return result


def _drop_unsafe_links(staging: str, carried: list, chosen, dropped: list) -> int:
    """Resolves every symlink of the staged folder (the carried ones and the
    restored ones below the chosen paths) on the staged folder; removes the
    ones that leave it or loop. Returns how many carried ones went."""
    readlink = _disk_readlink(staging)
    every = set(carried)
    for path in chosen:
        top = os.path.join(staging, *path.split("/"))
        if os.path.islink(top):
            every.add(path)
            continue
        for folder, dirs, files in os.walk(top):
            for name in dirs + files:
                full = os.path.join(folder, name)
                if os.path.islink(full):
                    every.add(os.path.relpath(full, staging).replace(os.sep, "/"))
    gone = 0
    for rel in sorted(every):
        full = os.path.join(staging, *rel.split("/"))
        try:
            resolve_symlink(rel, os.readlink(full), readlink)
            continue
        except SymlinkLoop:
            reason = "symlink loop"
        except ValueError:
            reason = "symlink leads outside the server folder"
        os.unlink(full)
        dropped.append({"path": rel, "reason": reason})
        gone += rel in carried
    return gone
