"""One engine operation in its own process, so the runner can measure its RSS honestly.

    python -m bench.op create SRC DEST --compression gzip [--level N] [--threads N] [--key B64] [--not-adaptive]
    python -m bench.op verify ARCHIVE [--key B64] [--no-world]
    python -m bench.op restore ARCHIVE TARGET [--key B64]

Prints one JSON line with the engine's own result.
"""
from __future__ import annotations

import argparse
import json
import shutil

from backups.engine import EncryptionSpec, codecs, create_archive, extract_to_staging, verify_backup


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("op", choices=["create", "verify", "restore"])
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--compression", default="gzip")
    parser.add_argument("--level", type=int)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--key")
    parser.add_argument("--no-world", action="store_true")
    parser.add_argument("--not-adaptive", action="store_true", help="gzip: every block at the level (zlib-ng)")
    args = parser.parse_args(argv)
    if args.not_adaptive:
        codecs.ADAPTIVE = False
    spec = EncryptionSpec.from_key(args.key) if args.key else None
    if args.op == "create":
        result = create_archive(args.paths[0], args.paths[1], compression=args.compression, encryption=spec,
                                level=args.level, threads=args.threads)
        out = {"size_bytes": result.size_bytes, "seconds": result.duration_seconds,
               "deflate_blocks": result.deflate_blocks}
    elif args.op == "verify":
        report = verify_backup(args.paths[0], keyring=spec, check_world=not args.no_world)
        out = {"score": report.quality_score, "seconds": report.duration_seconds,
               "errors": sum(len(m.errors) for m in report.methods.values())}
    else:
        result = extract_to_staging(args.paths[0], args.paths[1], keyring=spec)
        out = {"files": result.file_count, "seconds": result.duration_seconds}
        shutil.rmtree(result.staging_dir)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
