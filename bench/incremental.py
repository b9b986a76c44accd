"""Incremental snapshots against tar and restic, side by side (issue #14):

    python -m bench.incremental [--size-mb 1024] [--big-mb 4096] [--no-write]

On a world of real Anvil chunks (``bench.worldgen``), each step its own
process under ``/usr/bin/time -v`` (wall time and peak RSS), warm page
cache, after ``sync``:

* ``tar -czf`` of the world, and the first snapshot into a new repository;
* the unchanged world again (time; bytes added);
* 1 % of the chunks changed across 10 % of the region files (a long word of
  each chosen chunk's block states rewritten, the chunk recompressed in
  place): bytes added; restic 0.14+ on the same two states when installed
  (``apt-get install restic``; the row is skipped otherwise);
* restore of the last snapshot against ``tar -xzf``;
* peak RSS of the first snapshot and of a restore at ``--big-mb`` too.

Writes the "Incremental snapshots" section of docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

from . import worldgen
from .doc import write_section
from .run import ROOT, _size, machine, measure

START, END = "<!-- bench.incremental start -->", "<!-- bench.incremental end -->"
KEY = "11" * 32  # a fixed repository key: the bench measures speed, not secrecy


def _op(*args) -> list:
    import sys

    return [sys.executable, "-m", "bench.repo_op", *args]


def world_of(size_mb: float, out: Path, seed: int) -> Path:
    world = out / f"world-{int(size_mb)}mb-seed{seed}"
    if not (world / ".complete").exists():
        shutil.rmtree(world, ignore_errors=True)
        stats = worldgen.generate(str(world), size_mb, seed)
        (world / ".complete").write_text(str(stats))
    return world


def copy_world(world: Path, dest: Path) -> Path:
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(world, dest, ignore=shutil.ignore_patterns(".complete"))
    return dest


def change_chunks(world: Path, *, files_share: float = 0.10, chunks_share: float = 0.01, seed: int = 7) -> dict:
    """Rewrites one block-state word of ``chunks_share`` of all chunks, spread over
    ``files_share`` of the region files; each chunk recompressed and written back
    in its own sectors (the game would do the same or move it)."""
    rng = random.Random(seed)
    regions = sorted(p for p in world.rglob("*.mca") if p.stat().st_size > 8192)
    total = 0
    located = {}
    for path in regions:
        header = path.read_bytes()[:4096]
        entries = [i for i in range(1024) if struct.unpack_from(">I", header, 4 * i)[0]]
        located[path] = entries
        total += len(entries)
    chosen = rng.sample(regions, max(1, round(len(regions) * files_share)))
    wanted = max(1, round(total * chunks_share))
    per_file = -(-wanted // len(chosen))
    changed = 0
    for path in chosen:
        data = bytearray(path.read_bytes())
        for index in rng.sample(located[path], min(per_file, len(located[path]))):
            if changed >= wanted:
                break
            location = struct.unpack_from(">I", data, 4 * index)[0]
            start, sectors = (location >> 8) * 4096, location & 0xFF
            length = struct.unpack_from(">I", data, start)[0]
            raw = bytearray(zlib.decompress(bytes(data[start + 5:start + 4 + length])))
            at = raw.find(b"BlockStates")
            word = at + len(b"BlockStates") + 4 + 8 * rng.randrange(16)
            raw[word:word + 8] = rng.getrandbits(63).to_bytes(8, "big")
            payload = zlib.compress(bytes(raw), 6)
            record = struct.pack(">IB", len(payload) + 1, 2) + payload
            if len(record) > sectors * 4096:
                continue  # would need new sectors: leave this chunk, take the next
            data[start:start + sectors * 4096] = record + bytes(sectors * 4096 - len(record))
            struct.pack_into(">I", data, 4096 + 4 * index, 1_700_000_000 + changed)  # its timestamp
            changed += 1
        path.write_bytes(bytes(data))
    return {"chunks": total, "changed": changed, "files": len(regions), "files_changed": len(chosen)}


def _only_snapshot(repo: Path) -> str:
    [name] = [p.name for p in (repo / "snapshots").iterdir()]
    return name


def _json(m: dict) -> dict:
    return json.loads(m["stdout"].strip().splitlines()[-1])


def restic_rows(before: Path, after: Path, work: Path, world_bytes: int) -> dict | None:
    restic = shutil.which("restic")
    if restic is None:
        return None
    repo = work / "restic"
    env = {**os.environ, "RESTIC_PASSWORD": "bench", "RESTIC_REPOSITORY": str(repo)}
    subprocess.run([restic, "init", "--quiet"], env=env, check=True, capture_output=True)
    version = subprocess.run([restic, "version"], capture_output=True, text=True).stdout.split()[1]
    subprocess.run([restic, "backup", "--quiet", "--host", "bench", "."], cwd=before, env=env, check=True,
                   capture_output=True)
    first = _size(repo)
    shutil.rmtree(before)
    after.rename(before)  # the same path, as a server folder stays where it is
    subprocess.run([restic, "backup", "--quiet", "--host", "bench", "."], cwd=before, env=env, check=True,
                   capture_output=True)
    added = _size(repo) - first
    shutil.rmtree(repo)
    return {"version": version, "first": first, "added": added, "added_share": added / world_bytes}


def run(size_mb: float, big_mb: float, out: Path, seed: int) -> dict:
    work = out / "incremental"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    world = copy_world(world_of(size_mb, out, seed), work / "server")
    subprocess.run(["tar", "-cf", "/dev/null", "."], cwd=world, check=True)  # warm the page cache
    world_bytes = _size(world)
    result = {"world_bytes": world_bytes, "files": sum(1 for p in world.rglob("*") if p.is_file())}

    tar_gz = work / "world.tar.gz"
    result["tar_czf"] = measure(["tar", "-czf", str(tar_gz), "-C", str(world), "."], cleanup=tar_gz.unlink)
    result["tar_bytes"] = _size(tar_gz)
    repo = work / "repo"

    def fresh_repo():
        shutil.rmtree(repo, ignore_errors=True)
        subprocess.run(_op("init", str(repo), KEY), check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})

    fresh_repo()
    first = measure(_op("backup", str(repo), KEY, str(world)), cleanup=fresh_repo)
    result["first"] = first
    result["first_bytes"] = _size(repo)
    parent = _only_snapshot(repo)  # the last of the measured runs (each began with a new repository)
    before = _size(repo)
    again = measure(_op("backup", str(repo), KEY, str(world), "--parent", parent), repeat=1)
    result["again"], result["again_added"] = again, _size(repo) - before
    parent = _json(again)["snapshot"]

    original = copy_world(world, work / "server-before")  # for restic: the state before the change
    result["change"] = change_chunks(world)
    before = _size(repo)
    changed = measure(_op("backup", str(repo), KEY, str(world), "--parent", parent), repeat=1)
    result["changed"], result["changed_added"] = changed, _size(repo) - before
    last = _json(changed)["snapshot"]

    target = work / "restored"
    result["tar_xzf"] = measure(["bash", "-c", f"mkdir -p {target} && tar -xzf {tar_gz} -C {target}"],
                                cleanup=lambda: shutil.rmtree(target))
    shutil.rmtree(target, ignore_errors=True)
    result["restore"] = measure(_op("restore", str(repo), KEY, last, str(target)),
                                cleanup=lambda: shutil.rmtree(target))
    shutil.rmtree(target, ignore_errors=True)
    tar_gz.unlink()

    changed_copy = copy_world(world, work / "server-after")
    result["restic"] = restic_rows(original, changed_copy, work, world_bytes)
    shutil.rmtree(repo)

    if big_mb:
        big = copy_world(world_of(big_mb, out, seed), work / "big")
        subprocess.run(["tar", "-cf", "/dev/null", "."], cwd=big, check=True)
        fresh_repo()
        result["big_bytes"] = _size(big)
        big_first = measure(_op("backup", str(repo), KEY, str(big)), repeat=1)
        result["big_first"] = big_first
        result["big_restore"] = measure(_op("restore", str(repo), KEY, _json(big_first)["snapshot"], str(target)),
                                        repeat=1)
    shutil.rmtree(work, ignore_errors=True)
    return result


def render(r: dict, mach: dict) -> str:
    gib = r["world_bytes"] / 2**30
    w = r["world_bytes"]
    tar, first = r["tar_czf"]["wall"], r["first"]["wall"]
    rows = [
        ("`tar -czf` (gzip -6), the baseline", f"{tar:.1f} s", f"{r['tar_bytes'] / 2**20:,.0f} MiB", "", "",
         f"{r['tar_czf']['rss_mb']:.0f}"),
        ("first snapshot", f"{first:.1f} s", f"{r['first_bytes'] / 2**20:,.0f} MiB",
         f"{first / tar:.2f}× tar", "≤ 1.2× tar", f"{r['first']['rss_mb']:.0f}"),
        ("unchanged world again", f"{r['again']['wall']:.2f} s", f"+{r['again_added'] / 2**10:,.0f} KiB",
         f"{r['again']['wall'] / first:.1%} of the first snapshot's time, {r['again']['wall'] / tar:.1%} of "
         f"`tar -czf`'s; +{r['again_added'] / w:.3%} storage",
         "≤ 5 % of a full backup's time, ≤ 1 % storage", f"{r['again']['rss_mb']:.0f}"),
        (f"{r['change']['changed']:,} of {r['change']['chunks']:,} chunks changed in {r['change']['files_changed']} "
         f"of {r['change']['files']} region files", f"{r['changed']['wall']:.1f} s",
         f"+{r['changed_added'] / 2**20:,.1f} MiB", f"+{r['changed_added'] / w:.2%} of the world", "≤ 3 %",
         f"{r['changed']['rss_mb']:.0f}"),
    ]
    if r["restic"]:
        x = r["restic"]
        rows.append((f"the same change, restic {x['version']} (first backup {x['first'] / 2**20:,.0f} MiB)", "",
                     f"+{x['added'] / 2**20:,.1f} MiB", f"+{x['added_share']:.2%} of the world", "(reported)", ""))
    else:
        rows.append(("the same change, restic", "", "", "restic not installed: row skipped", "", ""))
    rows += [
        ("`tar -xzf` of the world, the baseline", f"{r['tar_xzf']['wall']:.1f} s", "", "", "",
         f"{r['tar_xzf']['rss_mb']:.0f}"),
        ("restore of the last snapshot", f"{r['restore']['wall']:.1f} s", "",
         f"{r['restore']['wall'] / r['tar_xzf']['wall']:.2f}× tar", "≤ 1.2× tar", f"{r['restore']['rss_mb']:.0f}"),
    ]
    if "big_first" in r:
        big = r["big_bytes"] / 2**30
        rows += [
            (f"first snapshot of a {big:.1f} GiB world", f"{r['big_first']['wall']:.1f} s", "", "", "RSS ≤ 200 MiB",
             f"{r['big_first']['rss_mb']:.0f}"),
            (f"restore of the {big:.1f} GiB world", f"{r['big_restore']['wall']:.1f} s", "", "", "RSS ≤ 200 MiB",
             f"{r['big_restore']['rss_mb']:.0f}"),
        ]
    lines = [
        f"Measured {mach['date']} by `python -m bench.incremental` on {mach['nproc']} CPU(s) ({mach['cpu']}), "
        f"{mach['ram_gb']} GB RAM, Python {mach['python']}, {mach['tar']}; load average at the end {mach['load']}.",
        f"World: {gib:.2f} GiB of real Anvil chunks from `bench.worldgen` ({r['files']} files). Each step is one "
        "process under `/usr/bin/time -v` after `sync`, warm page cache; the repository is encrypted and "
        "compressed as in production (AES-256-GCM, zstd where it pays), on the same disk.",
        "",
        "| step | wall | repository / output | result | goal | peak RSS MiB |",
        "|---|---:|---:|---|---|---:|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=float, default=1024)
    parser.add_argument("--big-mb", type=float, default=4096, help="0: skip the memory run on a bigger world")
    parser.add_argument("--out", default=str(ROOT / "bench" / "out"))
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    result = run(args.size_mb, args.big_mb, Path(args.out), args.seed)
    section = render(result, machine())
    print(section)
    if not args.no_write:
        write_section(START, END, "Incremental snapshots (issue #14)", section)


if __name__ == "__main__":
    main()
