"""One repository operation in its own process (bench.incremental measures
its wall time and peak RSS):

    python -m bench.repo_op init REPO KEY_HEX
    python -m bench.repo_op backup REPO KEY_HEX SRC [--parent ID]
    python -m bench.repo_op restore REPO KEY_HEX SNAPSHOT DEST

Prints one JSON line."""
from __future__ import annotations

import argparse
import json
import time

from backups.repo.crypto import RepoKey
from backups.repo.repository import LocalStore, Repository


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("op", choices=["init", "backup", "restore"])
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--parent")
    args = parser.parse_args(argv)
    folder, key = args.paths[0], RepoKey(bytes.fromhex(args.paths[1]))
    started = time.monotonic()
    if args.op == "init":
        Repository.init(LocalStore(folder), key)
        out = {}
    elif args.op == "backup":
        repo = Repository.open(LocalStore(folder), key)
        snapshot_id, stats = repo.backup(args.paths[2], parent=args.parent)
        out = {"snapshot": snapshot_id, "bytes_new": stats.bytes_new, "blobs_new": stats.blobs_new,
               "files_unchanged": stats.files_unchanged, "files": stats.files}
    else:
        repo = Repository.open(LocalStore(folder), key)
        out = {"files": repo.restore(args.paths[2], args.paths[3])}
    out["seconds"] = round(time.monotonic() - started, 3)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
