"""first_change: has a server folder changed since a backup of it started?

For skipping a scheduled backup nobody needs (issue #12). What counts is
what a backup would hold: the same exclude rules as ``walk.scan``
(``ExcludeRules``), the manifest's reserved name at the top left out.
Nothing is opened or read, only ``lstat``-ed (links are never followed),
and the walk stops at the first change found:

* an entry (file, folder, symlink) whose mtime or ctime is at or after
  ``since`` — a new file, a written one, a renamed or re-permissioned one,
  a folder an entry was added to or removed from (the folder itself, the
  top of the server folder excepted: mcsite's own log folder appears there);
* once the whole folder was walked: a number of regular files other than
  the backup's — a deleted file is seen even where no time says so.

The caller allows for file systems that keep whole seconds by passing a
``since`` a little before the backup started.
"""
from __future__ import annotations

import os
import stat

from .archive import MANIFEST_NAME
from .walk import ExcludeRules


def first_change(root, exclude=(), *, since: float, file_count: int) -> str | None:
    """A short description of the first change found ("world/region/r.0.0.mca
    was modified"), or None when nothing changed."""
    rules = ExcludeRules(exclude)
    since_ns = int(since * 1_000_000_000)
    root = os.path.abspath(os.fspath(root))
    files = 0
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        subdirs = []
        try:
            with os.scandir(os.path.join(root, rel_dir) if rel_dir else root) as it:
                children = sorted(it, key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError):
            return f"{rel_dir or 'the server folder'} was removed"
        for child in children:
            rel = f"{rel_dir}/{child.name}" if rel_dir else child.name
            if not rel_dir and child.name == MANIFEST_NAME:
                continue
            try:
                st = child.stat(follow_symlinks=False)
            except FileNotFoundError:
                return f"{rel} was removed"
            is_dir = stat.S_ISDIR(st.st_mode)
            if rules.excluded(rel, is_dir):
                continue
            if st.st_mtime_ns >= since_ns or st.st_ctime_ns >= since_ns:
                what = "folder" if is_dir else "file" if stat.S_ISREG(st.st_mode) else "entry"
                return f"{rel} ({what}) was modified"
            if is_dir:
                subdirs.append(rel)
            elif stat.S_ISREG(st.st_mode):
                files += 1
        stack.extend(reversed(subdirs))  # path order, as the archive walks it
    if files != file_count:
        return f"{files} files instead of {file_count}: files were added or deleted"
    return None
