"""An incremental repository without mcsite's database (issue #14):

    python -m backups.repo snapshots REPO --keys-file keys.json
    python -m backups.repo check     REPO --keys-file keys.json [--read-data]
    python -m backups.repo restore   REPO SNAPSHOT DEST --keys-file keys.json [--only world/DIM-1 ...]
    python -m backups.repo export    REPO SNAPSHOT OUT.tar.gz --keys-file keys.json

REPO is the repository's folder (on the backup root, a mounted target, or a
copy of an S3 prefix or SFTP folder); SNAPSHOT its id or a unique prefix,
or the file name mcsite showed (snapshot_YYYYMMDD_HHMMSS). The keys file is
``manage.py export_keys``'s: each repository key in it is tried. No Django,
no database. Exit codes: 0 done; 1 the repository is damaged (check) or an
operation failed; 2 bad arguments or no key opens the repository."""

from __future__ import annotations

import argparse
import json
import sys

from backups.engine.cli import UsageError, read_keys_document
from backups.repo.export import export_tar_gz
from backups.repo.repository import LocalStore, Repository, RepositoryError, keks_of_export


def _keks(path: str) -> list[bytes]:
    keys = keks_of_export(read_keys_document(path))
    if not keys:
        raise UsageError(f"{path} holds no repository keys (a keys export made after the repository existed has them)")
    return keys


def open_repository(folder: str, keys_file: str) -> Repository:
    store = LocalStore(folder)
    if not store.exists("config"):
        raise UsageError(f"{folder} is not a repository (no config file)")
    for kek in _keks(keys_file):
        try:
            return Repository.open_with(store, kek)
        except RepositoryError:
            continue
    raise UsageError(f"no key in {keys_file} opens the repository in {folder}")


def _snapshot(repo: Repository, wanted: str) -> str:
    ids = repo.snapshots()
    if wanted in ids:
        return wanted
    by_prefix = [i for i in ids if i.startswith(wanted)]
    if len(by_prefix) == 1:
        return by_prefix[0]
    by_name = [i for i in ids if (repo.snapshot(i).get("tags") or {}).get("filename") == wanted]
    if len(by_name) == 1:
        return by_name[0]
    raise UsageError(f"no single snapshot is {wanted!r} ({len(ids)} in the repository: see 'snapshots')")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backups.repo", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("snapshots", "check", "restore", "export"):
        command = sub.add_parser(name)
        command.add_argument("repo")
        if name in ("restore", "export"):
            command.add_argument("snapshot")
            command.add_argument("destination")
        command.add_argument("--keys-file", required=True)
        if name == "check":
            command.add_argument("--read-data", action="store_true", help="read and authenticate every blob")
        if name == "restore":
            command.add_argument("--only", nargs="+", help="only these paths (a dimension, world/playerdata, a file)")
    args = parser.parse_args(argv)
    try:
        repo = open_repository(args.repo, args.keys_file)
        if args.command == "snapshots":
            for snapshot_id in repo.snapshots():
                doc = repo.snapshot(snapshot_id)
                tags = doc.get("tags") or {}
                print(f"{snapshot_id}  {doc['time']}  {tags.get('filename', '-')}  {tags.get('server_name', '-')}  "
                      f"{doc['stats']['files']} files  {doc['stats']['bytes']} bytes")
            return 0
        if args.command == "check":
            report = repo.check(read_data=args.read_data)
            print(json.dumps(report, indent=2))
            return 0 if report["ok"] else 1
        snapshot_id = _snapshot(repo, args.snapshot)
        if args.command == "restore":
            import os

            if os.path.exists(args.destination) and os.listdir(args.destination):
                raise UsageError(f"{args.destination} is not empty: restore into a new or empty folder")
            count = repo.restore(snapshot_id, args.destination, only=args.only)
            print(f"{count} files restored into {args.destination}")
            return 0
        with open(args.destination, "xb") as out:
            count = export_tar_gz(repo, snapshot_id, out)
        print(f"{count} files written to {args.destination}")
        return 0
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (RepositoryError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 — a damaged blob (BlobError) and the like
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
