"""Walking a server folder: excludes, stable order, and what may be archived.

Nothing here follows a symlink: entries come from ``lstat`` and ``scandir``
with ``follow_symlinks=False``.
"""
from __future__ import annotations

import fnmatch
import os
import stat
from dataclasses import dataclass

from .errors import PERMISSION_DENIED, EngineError


@dataclass
class Entry:
    rel: str  # path inside the archive, "/"-separated
    abs: str
    kind: str  # "file" | "dir" | "symlink"
    st: os.stat_result
    link_target: str = ""


@dataclass
class ScanResult:
    entries: list
    skipped: list  # [{"path", "reason"}]
    vanished: list  # [path]
    total_bytes: int


class ExcludeRules:
    """gitignore-ish patterns.

    * ``logs/`` — a directory called ``logs`` at any depth (trailing slash: directories only)
    * ``*.tmp`` — a name matching the glob at any depth (no slash inside)
    * ``/cache`` or ``world/session.lock`` — anchored at the top (a slash inside)
    Negation (``!``) is not supported; blank lines and ``#`` comments are ignored.
    """

    def __init__(self, patterns=()):
        self._rules = []
        for raw in patterns:
            pattern = raw.strip()
            if not pattern or pattern.startswith("#"):
                continue
            dir_only = pattern.endswith("/")
            pattern = pattern.rstrip("/")
            anchored = "/" in pattern
            self._rules.append((pattern.lstrip("/"), dir_only, anchored))

    def excluded(self, rel: str, is_dir: bool) -> bool:
        name = rel.rsplit("/", 1)[-1]
        for pattern, dir_only, anchored in self._rules:
            if dir_only and not is_dir:
                continue
            if fnmatch.fnmatchcase(rel if anchored else name, pattern):
                return True
        return False


def symlink_inside(rel: str, target: str, root: str) -> str | None:
    """The target to store for a symlink at ``rel``, or None if it leaves ``root``.

    Relative targets are checked lexically; absolute targets inside the root are
    rewritten as relative ones so the restored link points into the restored
    folder rather than the old location.
    """
    parent = os.path.dirname(rel)
    if os.path.isabs(target):
        target_abs = os.path.normpath(target)
        if target_abs != root and not target_abs.startswith(root.rstrip("/") + "/"):
            return None
        target = os.path.relpath(target_abs, os.path.join(root, parent))
    resolved = os.path.normpath(os.path.join(parent, target))
    if resolved == ".." or resolved.startswith("../") or os.path.isabs(resolved):
        return None
    return target


def scan(root: str, exclude=(), *, skip_paths=(), reserved_names=()) -> ScanResult:
    """Everything to archive under ``root``, sorted by path (byte order)."""
    rules = ExcludeRules(exclude)
    skip_paths = {os.path.abspath(p) for p in skip_paths}
    entries, skipped, vanished = [], [], []
    total = 0
    stack = [("", root)]
    while stack:
        rel_dir, abs_dir = stack.pop()
        try:
            with os.scandir(abs_dir) as it:
                children = sorted(it, key=lambda e: e.name)
        except FileNotFoundError:
            vanished.append(rel_dir or ".")
            continue
        except PermissionError as exc:
            raise EngineError(PERMISSION_DENIED, "Permission denied", path=abs_dir) from exc
        subdirs = []
        for child in children:
            rel = f"{rel_dir}/{child.name}" if rel_dir else child.name
            if child.path in skip_paths:
                continue
            if not rel_dir and child.name in reserved_names:
                skipped.append({"path": rel, "reason": "name reserved for the backup manifest"})
                continue
            try:
                st = child.stat(follow_symlinks=False)
            except FileNotFoundError:
                vanished.append(rel)
                continue
            mode = st.st_mode
            is_dir = stat.S_ISDIR(mode)
            if rules.excluded(rel, is_dir):
                continue
            if is_dir:
                entries.append(Entry(rel, child.path, "dir", st))
                subdirs.append((rel, child.path))
            elif stat.S_ISREG(mode):
                entries.append(Entry(rel, child.path, "file", st))
                total += st.st_size
            elif stat.S_ISLNK(mode):
                try:
                    target = os.readlink(child.path)
                except FileNotFoundError:
                    vanished.append(rel)
                    continue
                stored = symlink_inside(rel, target, root)
                if stored is None:
                    skipped.append({"path": rel, "reason": f"symlink points outside the folder ({target})"})
                else:
                    entries.append(Entry(rel, child.path, "symlink", st, stored))
            else:
                kind = ("socket" if stat.S_ISSOCK(mode) else "fifo" if stat.S_ISFIFO(mode)
                        else "device" if stat.S_ISBLK(mode) or stat.S_ISCHR(mode) else "special file")
                skipped.append({"path": rel, "reason": f"{kind} not archived"})
        # Depth-first in sorted order: push children reversed so the smallest pops first.
        stack.extend(reversed(subdirs))
    # The stack walk emits a directory's own children before its subdirectories'
    # children, which is still a stable order; sort fully so the archive order
    # is plain path order whatever the walk did.
    entries.sort(key=lambda e: e.rel.encode("utf-8", "surrogateescape"))
    return ScanResult(entries, skipped, vanished, total)
