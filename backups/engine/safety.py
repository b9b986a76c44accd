"""What an archive member may be: the one set of rules restore and verification share.

``extract_to_staging`` refuses an archive at the first member that breaks a
rule; ``verify_backup`` lists every such member as an ``archive_integrity``
error with code UNSAFE_ARCHIVE. Both go through ``MemberRules``, so they
cannot disagree: a backup that verifies can be restored, and one that would
be refused never verifies.

Per member, in archive order (``MemberRules.check``):

* the name is relative (no leading ``/``, no drive letter), has no ``..``
  component and no NUL, and is at most ``MAX_PATH_BYTES`` (PATH_MAX) long;
  all names together are at most ``MAX_NAME_BYTES`` (the engine keeps them);
* it is not named like the manifest and does not come after the manifest
  (the reader takes the real manifest, the last member, before these rules);
* it is not stored twice, does not pass through a symlink or a file of the
  archive, and is not a non-folder at a path another member used as a folder;
* only regular files, folders, symlinks and hardlinks (no devices, fifos or
  unknown types); a member naming the folder itself (``./``) must be a folder;
* a hardlink names a regular file stored earlier in the archive;
* a symlink's target is non-empty, relative, and lexically inside the folder
  seen from the link's own folder.

Once every member is known (``MemberRules.finish``), each symlink is resolved
component by component the way the kernel will resolve it on disk, following
the archive's own symlinks (virtually: nothing on disk is consulted), and is
refused if the resolution leaves the folder at any step or follows more than
``MAX_SYMLINK_HOPS`` links (a loop). Lexical checks alone miss chains: with
``a/b -> ..`` and ``a/c -> b/..`` each target stays inside when read on its
own, but ``a/c`` resolves through ``a/b`` to the folder's parent.

``resolve_symlink`` is also what ``walk.py`` runs against the live folder, so
a backup never stores a link that its own restore would refuse.
"""
from __future__ import annotations

import posixpath

from .errors import UNSAFE_ARCHIVE, EngineError

MAX_PATH_BYTES = 4096  # PATH_MAX: no longer path can be created (or restored) on Linux
MAX_SYMLINK_HOPS = 40  # Linux's MAXSYMLINKS: more is ELOOP on disk too
MAX_NAME_BYTES = 256 * 1024 * 1024  # length of all member names together (no manifest can list more)
# Each member also costs a fixed few hundred bytes of bookkeeping (its path
# node, its size and hash), charged against the same budget: at most about a
# million members, ~500 MiB, whatever their names (an archive of a million
# empty members is 1.6 MB as .tar.zst).
MEMBER_COST_BYTES = 256

_FILE, _DIR, _LINK = "file", "dir", "symlink"


def _unsafe(message: str, name: str) -> EngineError:
    return EngineError(UNSAFE_ARCHIVE, message, path=name)


def _too_long(text: str) -> bool:
    return len(text) > MAX_PATH_BYTES // 4 and len(text.encode("utf-8", "surrogateescape")) > MAX_PATH_BYTES


def normalize_name(name: str) -> str:
    """``./world/level.dat`` and ``world//level.dat`` -> ``world/level.dat`` (not a safety check)."""
    name = posixpath.normpath(name)
    while name.startswith("./"):
        name = name[2:]
    return "" if name == "." else name


def name_problem(raw: str) -> str | None:
    """Why ``raw`` (a member name or hardlink target as stored) may not be written, or None."""
    if raw.startswith("/") or (len(raw) > 1 and raw[1] == ":"):
        return "absolute path in archive"
    if ".." in raw.split("/"):
        return "'..' in archive path"
    if "\0" in raw:
        return "NUL byte in archive path"
    if _too_long(raw):
        return f"path longer than {MAX_PATH_BYTES} bytes"
    return None


def link_target_problem(name: str, target: str) -> str | None:
    """Why the symlink ``name`` may not point at ``target`` on its own (lexically), or None."""
    if not target:
        return "symlink with an empty target"
    if "\0" in target or _too_long(target):
        return "symlink target with a NUL byte or longer than PATH_MAX"
    if target.startswith("/"):
        return f"symlink leaves the folder ({target})"
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
    if resolved == ".." or resolved.startswith("../") or resolved.startswith("/"):
        return f"symlink leaves the folder ({target})"
    return None


class SymlinkLoop(ValueError):
    """A symlink whose resolution follows more than ``MAX_SYMLINK_HOPS`` links."""


def _components(target: str) -> list:
    """``target``'s path components, reversed (a stack: the next one is last)."""
    return [part for part in reversed(target.split("/")) if part not in ("", ".")]


def _chain(key: int, part: str) -> int:
    """The key of ``path + "/" + part`` from the key of ``path`` (0 for the folder itself):
    O(1) per component, where building the path string would cost its whole length."""
    return hash((key, part))


class LinkIndex:
    """The archive's symlinks for ``resolve_symlink``: looked up by path key, no strings built."""

    def __init__(self, links: dict):
        self._by_key: dict = {}
        for name, target in links.items():
            key, parts = 0, name.split("/")
            for part in parts:
                key = _chain(key, part)
            self._by_key.setdefault(key, []).append((parts, target))

    def __call__(self, parts: list, key: int) -> str | None:
        for candidate, target in self._by_key.get(key, ()):
            if candidate == parts:  # a real hit (or, vanishingly rarely, a hash collision)
                return target
        return None


def resolve_symlink(name: str, target: str, readlink) -> str:
    """Where the symlink ``name`` -> ``target`` finally leads, as a path inside the folder.

    ``name`` is folder-relative ("/"-separated); ``readlink(parts, key)`` returns
    the target of the symlink at the folder-relative path ``parts`` (a list of
    components; ``key`` identifies it, see ``LinkIndex``), or None when it is
    not a symlink (a folder, a file or nothing). Components are taken one at
    a time as the kernel does: every symlink met, the last one included, is
    replaced by its own target read from its own folder, and ``..`` pops the
    real parent. Raises ValueError if any step leaves the folder or a target is
    absolute, ``SymlinkLoop`` if more than ``MAX_SYMLINK_HOPS`` links are followed.
    Memory is bounded by the hops: at most 41 targets of at most PATH_MAX each.
    """
    parts = name.split("/")[:-1]  # the link's own folder
    keys = []
    for part in parts:
        keys.append(_chain(keys[-1] if keys else 0, part))
    if target.startswith("/"):
        raise ValueError(f"symlink leaves the folder ({target})")
    pending = _components(target)
    hops = 1
    while pending:
        part = pending.pop()
        if part == "..":
            if not parts:
                raise ValueError(f"symlink resolves outside the folder ({target})")
            parts.pop()
            keys.pop()
            continue
        parts.append(part)
        keys.append(_chain(keys[-1] if keys else 0, part))
        link = readlink(parts, keys[-1])
        if link is None:
            continue
        hops += 1
        if hops > MAX_SYMLINK_HOPS:
            raise SymlinkLoop(f"symlink loop or chain of more than {MAX_SYMLINK_HOPS} links ({target})")
        if link.startswith("/"):
            raise ValueError(f"symlink resolves outside the folder ({target}, through {'/'.join(parts)})")
        parts.pop()  # the met link's own folder, where its target is read from
        keys.pop()
        pending.extend(_components(link))
    return "/".join(parts)


class _Node:
    """A path in ``_PathTree``: a member's (``kind``) or a folder only implied by members under it."""

    __slots__ = ("kind", "edges")

    def __init__(self, kind: str | None = None):
        self.kind = kind  # None: an implied folder; else _FILE (file or hardlink), _DIR or _LINK
        self.edges = None  # {first component: (label, child)}; label: "/"-joined components


class _PathTree:
    """Every path of the archive: its members and the folders they imply.

    A radix tree over path components: a run of folders with one child each
    is one edge, so a member costs at most two nodes plus its own name, however
    deep it is (a set of every folder path would cost depth x length, ~11 GB
    for 5000 files 1500 folders deep). ``place`` checks and records a member in
    one walk, O(length of its name).
    """

    def __init__(self):
        self._root = _Node(_DIR)

    def place(self, parts: list, kind: str) -> str | None:
        """Record the member ``parts`` of ``kind``; or, changing nothing, say why it may not be."""
        node, i, count = self._root, 0, len(parts)
        while True:
            if i == count:  # the path ends at an existing node
                if node.kind is not None:
                    return "path stored twice in the archive"
                if kind != _DIR:
                    return "path already used as a folder by another member"
                node.kind = _DIR
                return None
            if node.kind in (_FILE, _LINK):
                return f"path goes through a {'file' if node.kind == _FILE else 'symlink'} of the archive"
            edge = node.edges.get(parts[i]) if node.edges else None
            if edge is None:  # a new branch: the rest of the path is one edge
                if node.edges is None:
                    node.edges = {}
                node.edges[parts[i]] = ("/".join(parts[i:]), _Node(kind))
                return None
            label, child = edge
            run = label.split("/")
            same = 1  # the first component matched (it is the key)
            while same < len(run) and i + same < count and run[same] == parts[i + same]:
                same += 1
            if same == len(run):
                node, i = child, i + same
                continue
            # The path ends or turns off inside the edge, at an implied folder: split the edge there.
            ends_here = i + same == count
            if ends_here and kind != _DIR:
                return "path already used as a folder by another member"
            middle = _Node(_DIR if ends_here else None)
            middle.edges = {run[same]: ("/".join(run[same:]), child)}
            if not ends_here:
                middle.edges[parts[i + same]] = ("/".join(parts[i + same:]), _Node(kind))
            node.edges[parts[i]] = ("/".join(run[:same]), middle)
            return None

    def kind(self, parts: list) -> str | None:
        """The kind of the member at ``parts`` (None for an implied folder or nothing)."""
        node, i = self._root, 0
        while i < len(parts):
            edge = node.edges.get(parts[i]) if node.edges else None
            if edge is None:
                return None
            label, child = edge
            run = label.split("/")
            if parts[i:i + len(run)] != run:
                return None
            node, i = child, i + len(run)
        return node.kind


class MemberRules:
    """The rules above for one pass over one archive (state: the paths seen so far).

    Memory is about one entry per member plus its name; names are at most
    ``MAX_PATH_BYTES`` each and ``MAX_NAME_BYTES`` all together (what the
    largest manifest the engine can read could list), so compressible names
    cannot grow it without bound.
    """

    def __init__(self):
        from .archive import MANIFEST_NAME  # here: archive imports walk, which imports this module

        self._manifest_name = MANIFEST_NAME
        self._paths = _PathTree()
        self._name_bytes = 0
        self.links: dict = {}  # symlink name -> target, in archive order

    def check(self, info, name: str, *, after_manifest: bool = False) -> None:
        """Raise EngineError(UNSAFE_ARCHIVE) if ``info`` (normalized ``name``) may not be restored;
        otherwise remember it for the next members' checks."""
        problem = self._problem(info, name, after_manifest)
        if problem is None and name != "":  # "" is the "./" entry of `tar -C dir .`: the folder itself
            kind = _LINK if info.issym() else _DIR if info.isdir() else _FILE
            problem = self._paths.place(name.split("/"), kind)
        if problem is not None:
            raise _unsafe(problem, info.name)
        if info.issym():
            self.links[name] = info.linkname

    def _problem(self, info, name: str, after_manifest: bool) -> str | None:
        if after_manifest:
            return "member after the manifest"
        problem = name_problem(info.name)
        if problem is not None:
            return problem
        self._name_bytes += len(name) + MEMBER_COST_BYTES
        if self._name_bytes > MAX_NAME_BYTES:
            return (f"more than {MAX_NAME_BYTES >> 20} MiB of member names and bookkeeping in the archive "
                    f"(about {MAX_NAME_BYTES // max(MEMBER_COST_BYTES, 1):,} members at most; the engine's limit)")
        if name == "":
            return None if info.isdir() else "member names the folder itself but is not a folder"
        if name == self._manifest_name:
            return "member named like the manifest that is not the archive's last member"
        if info.isdir() or info.isfile():
            return None
        if info.issym():
            return link_target_problem(name, info.linkname)
        if info.islnk():
            target = info.linkname
            if name_problem(target) is not None or self._paths.kind(normalize_name(target).split("/")) != _FILE:
                return f"hardlink to something outside the archive's files ({target})"
            return None
        if info.ischr() or info.isblk() or info.isfifo():
            return "device or fifo in archive"
        return f"unsupported member type {info.type!r}"

    @staticmethod
    def hardlink_target(info) -> str:
        """The normalized name of the file a checked hardlink member points at."""
        return normalize_name(info.linkname)

    def finish(self) -> list:
        """Resolve every symlink through the archive's own symlinks; one EngineError per link
        that leaves the folder or loops (empty when all are safe)."""
        found, index = [], LinkIndex(self.links)
        for name, target in self.links.items():
            try:
                resolve_symlink(name, target, index)
            except ValueError as exc:
                found.append(_unsafe(str(exc), name))
        return found
