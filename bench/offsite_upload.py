"""Off-site upload bound check: the worker's memory while it copies a big
backup to S3 (moto in its own process, over real HTTP).

    python -m bench.offsite_upload [--size-mib 300] [--part-size-mib 16] [--concurrency 4] [--compare]
    python -m bench.offsite_upload --report [--size-mib 1024] [--pairs 3]   # what `make bench` runs

Prints one JSON line: the upload's throughput and how much the process grew
over its idle RSS (idle = after imports and a warm-up upload of one part, so
the connection pool and threads exist). ``growth_mib`` is the kernel's peak
RSS (VmHWM, reset at idle through /proc/self/clear_refs, so no earlier peak
counts) minus the idle RSS; ``sampled_growth_mib`` the largest RSS seen every
10 ms during the upload (the only measure where /proc cannot be reset). SPEC/issue #13 bound:
growth ≤ 64 MiB whatever the file size. ``--compare`` also times boto3's own
``upload_file`` with the same part size and concurrency on the same file.
``--report`` runs ``--pairs`` alternated pairs (ours, then boto3's, each in a
fresh process with its own moto server), takes the medians and writes them
to docs/benchmarks.md between the offsite-bench markers.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import psutil

from bench.doc import write_section

MIB = 1 << 20


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_moto() -> tuple[subprocess.Popen, str]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1).read()
            return proc, url
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("moto server exited")
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("moto server did not start within 30 s")


def _random_file(path: Path, size: int) -> None:
    with open(path, "wb") as fh:
        left = size
        while left:
            fh.write(os.urandom(min(MIB, left)))
            left -= min(MIB, left)


def _rss() -> int:
    return psutil.Process().memory_info().rss


def _reset_peak() -> bool:
    """Reset the kernel's peak RSS of this process (Linux ≥ 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _peak() -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def run(size_mib: int, part_size_mib: int, concurrency: int, compare: bool) -> dict:
    from backups.offsite import TargetConfig, open_target

    moto, url = _start_moto()
    try:
        with tempfile.TemporaryDirectory(prefix="offsite-bench-") as tmp:
            big, warm = Path(tmp) / "big.bin", Path(tmp) / "warm.bin"
            _random_file(big, size_mib * MIB)
            _random_file(warm, part_size_mib * MIB)
            config = TargetConfig(kind="s3", name="bench", settings={
                "bucket": "bench", "endpoint_url": url, "addressing_style": "path",
                "part_size_mib": part_size_mib, "concurrency": concurrency}, secrets={
                "access_key_id": "bench", "secret_access_key": "bench"})
            with open_target(config) as target:
                target.client.create_bucket(Bucket="bench")
                target.upload(warm, "warm.bin")
                target.delete("warm.bin")
                idle = _rss()
                reset = _reset_peak()
                peak = [idle]
                stop = threading.Event()

                def sample():
                    while not stop.wait(0.01):
                        peak[0] = max(peak[0], _rss())

                sampler = threading.Thread(target=sample, daemon=True)
                sampler.start()
                started = time.monotonic()
                result = target.upload(big, "big.bin", progress=lambda d, t: peak.__setitem__(0, max(peak[0], _rss())))
                seconds = time.monotonic() - started
                stop.set()
                sampler.join()
                kernel_peak = _peak() if reset else None
                max_rss = kernel_peak if kernel_peak is not None else peak[0]
                target.verify("big.bin", size=result.size, sha256=result.sha256, composite=result.composite)
                out = {
                    "size_mib": size_mib, "part_size_mib": part_size_mib, "concurrency": concurrency,
                    "seconds": round(seconds, 2), "mib_per_s": round(size_mib / seconds, 1),
                    "idle_rss_mib": round(idle / MIB, 1),
                    "growth_mib": round((max_rss - idle) / MIB, 1),
                    "sampled_growth_mib": round((peak[0] - idle) / MIB, 1),
                }
                if compare:
                    from boto3.s3.transfer import TransferConfig

                    transfer = TransferConfig(multipart_threshold=part_size_mib * MIB,
                                              multipart_chunksize=part_size_mib * MIB, max_concurrency=concurrency)
                    started = time.monotonic()
                    target.client.upload_file(str(big), "bench", "boto3.bin", Config=transfer)
                    boto_seconds = time.monotonic() - started
                    out["boto3_upload_file_mib_per_s"] = round(size_mib / boto_seconds, 1)
                    out["ratio_to_boto3"] = round(boto_seconds / seconds, 2)
                return out
    finally:
        moto.terminate()
        moto.wait(timeout=10)


DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
START, END = "<!-- offsite-bench:start -->", "<!-- offsite-bench:end -->"


def _one_run(size_mib: int, part_size_mib: int, concurrency: int) -> dict:
    """One pair in a fresh process (its own idle RSS and moto server)."""
    output = subprocess.run(
        [sys.executable, "-m", "bench.offsite_upload", "--size-mib", str(size_mib), "--part-size-mib",
         str(part_size_mib), "--concurrency", str(concurrency), "--compare"],
        check=True, capture_output=True, text=True, cwd=DOC.parents[1]).stdout
    return json.loads(output.strip().splitlines()[-1])


def report(size_mib: int, part_size_mib: int, concurrency: int, pairs: int) -> str:
    import platform
    import statistics

    runs = [_one_run(size_mib, part_size_mib, concurrency) for _ in range(pairs)]

    def median(key):
        return statistics.median(r[key] for r in runs)

    ratio = median("ratio_to_boto3")
    growth = max(r["growth_mib"] for r in runs)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    lines = [
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"{time.strftime('%Y-%m-%d')}; load average {load}. moto's S3 server in its own process on 127.0.0.1, "
        f"a {size_mib} MiB file of random bytes, parts of {part_size_mib} MiB, {concurrency} at a time, "
        f"{pairs} alternated pairs (ours, then boto3's `upload_file` with the same part size and concurrency), "
        "medians.",
        "",
        "| measure | value | target |",
        "|---|---:|---|",
        f"| mcsite upload | {median('mib_per_s')} MiB/s | |",
        f"| boto3 `upload_file` | {median('boto3_upload_file_mib_per_s')} MiB/s | |",
        f"| mcsite / boto3 throughput | {ratio:.2f} | ≥ 0.9 {'met' if ratio >= 0.9 else 'MISSED'} |",
        f"| worker growth over idle RSS (largest of the runs) | {growth} MiB | ≤ 64 MiB "
        f"{'met' if growth <= 64 else 'MISSED'} |",
        "",
        "Run it with `.venv/bin/python -m bench.offsite_upload --report` (part of `make bench`).",
    ]
    return "\n".join(lines)


def write_doc(section: str) -> None:
    write_section(START, END, "Off-site upload (S3)", section)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=None, help="300, or 1024 with --report")
    parser.add_argument("--part-size-mib", type=int, default=16)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--compare", action="store_true")
    parser.add_argument("--report", action="store_true", help="alternated pairs, medians, into docs/benchmarks.md")
    parser.add_argument("--pairs", type=int, default=3)
    args = parser.parse_args(argv)
    if args.report:
        section = report(args.size_mib or 1024, args.part_size_mib, args.concurrency, args.pairs)
        write_doc(section)
        print(section)
        return
    from backups.offsite.djangoconf import ensure_settings

    ensure_settings()
    print(json.dumps(run(args.size_mib or 300, args.part_size_mib, args.concurrency, args.compare)), flush=True)


if __name__ == "__main__":
    main()
