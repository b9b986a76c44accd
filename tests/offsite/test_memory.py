"""The worker grows by at most 64 MiB over its idle size while it copies a
backup of a few hundred MiB to S3 (issue #13), measured in a child process by
bench/offsite_upload.py against moto in a process of its own."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_s3_upload_of_256_mib_grows_the_worker_by_at_most_64_mib():
    done = subprocess.run([sys.executable, "-m", "bench.offsite_upload", "--size-mib", "256",
                           "--part-size-mib", "16", "--concurrency", "4"],
                          cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["size_mib"] == 256
    assert report["growth_mib"] <= 64, report
    assert report["sampled_growth_mib"] <= 64, report
