"""The priority settings of issue #16 are read strictly, and the thread cap
reaches the engine in every process that loads Django."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PRINT = """
import django
django.setup()
from django.conf import settings as s
from backups.engine import priority
print(s.MCSITE_BACKUP_NICE, s.MCSITE_BACKUP_IO_PRIORITY, s.MCSITE_BACKUP_THREADS, priority.default_threads(),
      priority.cores())
"""


def _start(**env) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MCSITE_BACKUP_")}
    return subprocess.run([sys.executable, "-c", PRINT], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**clean, "DJANGO_SETTINGS_MODULE": "mcsite.settings_test", **env})


def test_the_defaults_are_nice_10_best_effort_7_and_a_thread_per_core():
    result = _start()
    assert result.returncode == 0, result.stderr
    nice, io, cap, threads, cores = result.stdout.split()
    assert (nice, io, cap, threads) == ("10", "best-effort:7", "0", cores)


def test_values_from_the_environment():
    result = _start(MCSITE_BACKUP_NICE="19", MCSITE_BACKUP_IO_PRIORITY=" Idle ", MCSITE_BACKUP_THREADS="1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:4] == ["19", "idle", "1", "1"]


@pytest.mark.parametrize("name, value, said", [
    ("MCSITE_BACKUP_NICE", "20", "MCSITE_BACKUP_NICE must be between 0 and 19"),
    ("MCSITE_BACKUP_NICE", "-5", "MCSITE_BACKUP_NICE must be between 0 and 19"),
    ("MCSITE_BACKUP_IO_PRIORITY", "realtime", "MCSITE_BACKUP_IO_PRIORITY: 'realtime' is not an I/O priority"),
    ("MCSITE_BACKUP_IO_PRIORITY", "best-effort:8", "is not an I/O priority; use one of idle, best-effort:0..7, none"),
    ("MCSITE_BACKUP_THREADS", "-1", "MCSITE_BACKUP_THREADS must be between 0 and 1024"),
])
def test_a_bad_value_stops_start_up_naming_the_variable(name, value, said):
    result = _start(**{name: value})
    assert result.returncode != 0
    assert said in result.stderr
