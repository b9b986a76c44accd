"""What a backup holds, file by file, without decompressing it.

Verification reads the whole archive anyway (the manifest is its last
member), so it keeps the file list it read (``BackupContents``: one
``[path, size, kind]`` per member, kind "f", "d" or "l"); a page view only
reads that list. A backup verified before lists were kept has none: the
pages say so and offer "Verify again", which fills it.

Here: keeping the list (``contents_store``), one folder level of it with
sizes (``contents_level``), the parts worth restoring alone
(``contents_parts``: each world's overworld, nether, end, custom dimensions
and player data, Paper's ``world_nether``/``world_the_end``), and the check
of the paths a partial restore names (``contents_select``).
"""

import posixpath

from backups import engine
from backups.engine.extract import normalize_selection
from backups.models import BackupContents, BackupRecord
from mcsite.errors import DomainError, ErrorCode

MAX_CHOSEN_PATHS = 100
NOT_LISTED = ("The file list of this backup is not known yet (it was verified before file lists were kept): "
              "verify it again to browse it or to restore a part of it.")


def contents_store(*, record: BackupRecord, report) -> None:
    """After a verification: the list read back replaces any earlier one; a
    read that did not reach the end of the archive leaves no list (an old
    one could describe a file that is no longer what it was)."""
    listed = getattr(report, "contents", None)
    if listed is None:
        BackupContents.objects.filter(backup_id=record.pk).delete()
        return
    BackupContents.objects.update_or_create(backup_id=record.pk, defaults={"entries": listed})


def contents_entries(*, record: BackupRecord) -> list | None:
    """The stored list, or None when the backup has none."""
    return BackupContents.objects.filter(backup_id=record.pk).values_list("entries", flat=True).first()


def _clean_folder(path) -> str:
    if path in (None, "", "/", "."):
        return ""
    try:
        return normalize_selection([path])[0]
    except ValueError as exc:
        raise DomainError(ErrorCode.VALIDATION_ERROR, f"Bad path: {exc}", details={"path": [str(exc)]}) from None


def contents_level(*, record: BackupRecord, path="") -> dict:
    """One folder level: ``{path, listed, entries: [{name, path, kind,
    size_bytes, file_count}], total, size_bytes, file_count}``. A folder's
    size and count are of everything below it. Folders come first, then by
    name. A path not in the backup is NOT_FOUND; one with ``..`` or
    absolute is VALIDATION_ERROR."""
    folder = _clean_folder(path)
    entries = contents_entries(record=record)
    if entries is None:
        return {"path": folder, "listed": False, "entries": [], "total": 0, "size_bytes": 0, "file_count": 0}
    prefix = folder + "/" if folder else ""
    children: dict[str, dict] = {}
    found = folder == ""
    total_size = total_files = 0
    for name, size, kind in entries:
        if name == folder:
            if kind != "d":
                raise DomainError(ErrorCode.VALIDATION_ERROR, f"{folder} is a file, not a folder",
                                  details={"path": ["Not a folder."]})
            found = True
            continue
        if not name.startswith(prefix):
            continue
        found = True
        rest = name[len(prefix):]
        head, sep, _ = rest.partition("/")
        child = children.get(head)
        if child is None:
            child = children[head] = {"name": head, "path": prefix + head, "kind": "d" if sep else kind,
                                      "size_bytes": 0, "file_count": 0}
        elif not sep:
            child["kind"] = kind
        if kind == "f":
            child["size_bytes"] += size
            child["file_count"] += 1
            total_size += size
            total_files += 1
    if not found:
        raise DomainError(ErrorCode.NOT_FOUND, f"No folder {folder} in this backup", details={"path": ["Not in this backup."]})
    listing = sorted(children.values(), key=lambda c: (c["kind"] != "d", c["name"].lower(), c["name"]))
    return {"path": folder, "listed": True, "entries": listing, "total": len(listing),
            "size_bytes": total_size, "file_count": total_files}


def _sizes(entries: list, paths: set) -> dict:
    """{path: [size_bytes, file_count, kind]} for each of ``paths`` present in
    ``entries`` (as an entry or as a folder something is below)."""
    out: dict[str, list] = {}
    for name, size, kind in entries:
        here = name
        while True:
            if here in paths:
                slot = out.setdefault(here, [0, 0, "d"])
                if here == name:
                    slot[2] = kind
                if kind == "f":
                    slot[0] += size
                    slot[1] += 1
            cut = here.rfind("/")
            if cut == -1:
                break
            here = here[:cut]
    return out


def _worlds(entries: list) -> list[str]:
    return sorted({posixpath.dirname(name) for name, _, kind in entries
                   if kind == "f" and posixpath.basename(name) == "level.dat" and posixpath.dirname(name)},
                  key=lambda w: (w.count("/"), w))


def contents_parts(*, record: BackupRecord, entries: list | None = None) -> list[dict]:
    """The parts of each world that are worth restoring alone, as found in
    the file list: ``[{key, label, world, paths, size_bytes, file_count}]``.
    Empty without a list."""
    entries = contents_entries(record=record) if entries is None else entries
    if not entries:
        return []
    worlds = _worlds(entries)
    dimension_dirs = set()  # <world>/dimensions/<namespace>/<name>
    for world in worlds:
        prefix = world + "/dimensions/"
        for name, _, kind in entries:
            if name.startswith(prefix):
                rest = name[len(prefix):].split("/")
                if len(rest) >= 3 or (len(rest) == 2 and kind == "d"):
                    dimension_dirs.add(prefix + "/".join(rest[:2]))
    wanted: list[tuple[str, str, str, list[str]]] = []  # (key, label, world, paths)
    for world in worlds:
        base = posixpath.basename(world)
        if base.endswith("_nether"):
            wanted.append(("nether", "Nether", world, [world]))
            continue
        if base.endswith("_the_end"):
            wanted.append(("end", "The End", world, [world]))
            continue
        wanted.append(("overworld", "Overworld", world, [f"{world}/{p}" for p in ("region", "poi", "entities")]))
        wanted.append(("nether", "Nether", world, [f"{world}/DIM-1"]))
        wanted.append(("end", "The End", world, [f"{world}/DIM1"]))
        for folder in sorted(d for d in dimension_dirs if d.startswith(world + "/dimensions/")):
            namespace, name = folder.split("/")[-2:]
            wanted.append((f"dimension:{namespace}:{name}", f"Dimension {namespace}:{name}", world, [folder]))
        wanted.append(("players", "Player data", world,
                       [f"{world}/{p}" for p in ("playerdata", "stats", "advancements")]))
    sizes = _sizes(entries, {p for *_, paths in wanted for p in paths})
    parts = []
    for key, label, world, paths in wanted:
        present = [p for p in paths if p in sizes and sizes[p][2] == "d"]
        if not present:
            continue
        parts.append({"key": key, "label": label, "world": world, "paths": present,
                      "size_bytes": sum(sizes[p][0] for p in present),
                      "file_count": sum(sizes[p][1] for p in present)})
    return parts


def contents_select(*, record: BackupRecord, paths) -> list[dict]:
    """The paths a partial restore names, checked against the backup's file
    list: plain folder-relative paths (``./a//b/`` is ``a/b``; none empty,
    absolute or with ``..``), each in the backup, at most MAX_CHOSEN_PATHS;
    one inside another chosen one is dropped (the outer one holds it).
    Returns ``[{path, kind, size_bytes, file_count}]``; [] for none (the
    whole backup). Raises VALIDATION_ERROR naming what is wrong."""
    if paths in (None, []):
        return []
    if not isinstance(paths, list | tuple):
        raise _bad("paths must be a list of folder-relative paths")
    if len(paths) > MAX_CHOSEN_PATHS:
        raise _bad(f"At most {MAX_CHOSEN_PATHS} paths can be restored at once")
    try:
        chosen = normalize_selection(paths)
    except ValueError as exc:
        raise _bad(f"Bad path: {exc}") from None
    entries = contents_entries(record=record)
    if entries is None:
        raise _bad(NOT_LISTED)
    found = _sizes(entries, set(chosen))
    missing = [p for p in chosen if p not in found]
    if missing:
        raise _bad(f"Not in this backup: {', '.join(missing[:10])}")
    if any(p == engine.MANIFEST_NAME for p in chosen):
        raise _bad(f"Not in this backup: {engine.MANIFEST_NAME}")
    return [{"path": p, "kind": found[p][2], "size_bytes": found[p][0], "file_count": found[p][1]} for p in chosen]


def _bad(message: str) -> DomainError:
    return DomainError(ErrorCode.VALIDATION_ERROR, message, details={"paths": [message]})
