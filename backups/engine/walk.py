"""Walking a server folder: excludes, stable order, and what may be archived.

Nothing here follows a symlink: entries come from ``lstat`` and ``scandir``
with ``follow_symlinks=False``.

A symlink is archived only if restoring it is safe, checked three ways:
lexically (``symlink_inside``); by resolving it on disk component by
component, through the folder's real symlinks (``safety.resolve_symlink``
with ``os.readlink``: ``a/b -> ..`` plus ``a/c -> b/..`` really leads out);
and, once the scan is done, by resolving each kept link through the other
kept links only — exactly the check restore and verify make on the archive
(a link excluded or skipped here is a plain name there). Links that fail are
listed in ``skipped``, so a backup never holds a link its restore refuses.
"""
from __future__ import annotations

import fnmatch
import os
import stat
from dataclasses import dataclass

from .errors import PERMISSION_DENIED, EngineError
from .safety import MAX_SYMLINK_HOPS, LinkIndex, SymlinkLoop, resolve_symlink


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


def _outside(target: str) -> str:
    return f"symlink points outside the folder ({target})"


def _disk_readlink(root: str):
    """``readlink`` for ``resolve_symlink`` on the live folder: each link's target as it
    would be stored (absolute ones inside the folder made relative), None for a non-link."""
    def readlink(parts: list, key: int) -> str | None:
        try:
            target = os.readlink(os.path.join(root, *parts))
        except OSError:  # not a symlink, or not there
            return None
        # an absolute target outside the folder stays absolute, so it resolves outside
        return symlink_inside("/".join(parts), target, root) or target
    return readlink


def _link_problem(rel: str, target: str, stored: str | None, readlink) -> str | None:
    """Why the symlink ``rel`` (``target`` on disk, ``stored`` in the archive) is not archived, or None."""
    if stored is None:
        return _outside(target)
    try:
        resolve_symlink(rel, stored, readlink)
    except SymlinkLoop:
        return f"symlink loop or chain of more than {MAX_SYMLINK_HOPS} links ({target})"
    except ValueError:
        return _outside(target)
    return None


def _drop_links_restore_would_refuse(entries: list, skipped: list) -> list:
    """Resolve each kept link through the kept links only, as restore will; drop failures
    (dropping one can change another's resolution, hence the loop)."""
    links = {e.rel: e for e in entries if e.kind == "symlink"}
    changed = True
    while changed:
        changed = False
        index = LinkIndex({rel: e.link_target for rel, e in links.items()})
        for rel, entry in list(links.items()):
            problem = _link_problem(rel, entry.link_target, entry.link_target, index)
            if problem is not None:
                skipped.append({"path": rel, "reason": problem})
                del links[rel]
                changed = True
    return [e for e in entries if e.kind != "symlink" or e.rel in links]


def scan(root: str, exclude=(), *, skip_paths=(), reserved_names=()) -> ScanResult:
    """Everything to archive under ``root``, sorted by path (byte order)."""
    rules = ExcludeRules(exclude)
    skip_paths = {os.path.abspath(p) for p in skip_paths}
    entries, skipped, vanished = [], [], []
    total = 0
    readlink = _disk_readlink(root)
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
                problem = _link_problem(rel, target, stored, readlink)
                if problem is not None:
                    skipped.append({"path": rel, "reason": problem})
                else:
                    entries.append(Entry(rel, child.path, "symlink", st, stored))
            else:
                kind = ("socket" if stat.S_ISSOCK(mode) else "fifo" if stat.S_ISFIFO(mode)
                        else "device" if stat.S_ISBLK(mode) or stat.S_ISCHR(mode) else "special file")
                skipped.append({"path": rel, "reason": f"{kind} not archived"})
        # Depth-first in sorted order: push children reversed so the smallest pops first.
        stack.extend(reversed(subdirs))
    entries = _drop_links_restore_would_refuse(entries, skipped)
    # The stack walk emits a directory's own children before its subdirectories'
    # children, which is still a stable order; sort fully so the archive order
    # is plain path order whatever the walk did.
    entries.sort(key=lambda e: e.rel.encode("utf-8", "surrogateescape"))
    return ScanResult(entries, skipped, vanished, total)
