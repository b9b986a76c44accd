"""The login-throttling settings are read strictly: a bad value stops
start-up with a message that names the variable (SPEC §8)."""

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
print(s.MCSITE_LOGIN_FAILURE_LIMIT, s.MCSITE_LOGIN_FAILURE_LIMIT_PER_ADDRESS, s.MCSITE_LOGIN_COOLOFF_MINUTES,
      [str(n) for n in s.MCSITE_TRUSTED_PROXIES])
"""


def _start(**env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", PRINT],
        cwd=ROOT, env={**os.environ, "DJANGO_SETTINGS_MODULE": "mcsite.settings_test", **env},
        capture_output=True, text=True, timeout=60,
    )


def test_the_defaults():
    result = _start()
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[0] == "5 50 15 []"


def test_values_from_the_environment():
    result = _start(MCSITE_LOGIN_FAILURE_LIMIT="3", MCSITE_LOGIN_FAILURE_LIMIT_PER_ADDRESS="30",
                    MCSITE_LOGIN_COOLOFF_MINUTES="60", MCSITE_TRUSTED_PROXIES="127.0.0.1, 10.0.0.0/8,::1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[0] == "3 30 60 ['127.0.0.1/32', '10.0.0.0/8', '::1/128']"


@pytest.mark.parametrize("name, value", [
    ("MCSITE_LOGIN_FAILURE_LIMIT", "five"),
    ("MCSITE_LOGIN_FAILURE_LIMIT", "0"),
    ("MCSITE_LOGIN_FAILURE_LIMIT_PER_ADDRESS", "-1"),
    ("MCSITE_LOGIN_FAILURE_LIMIT_PER_ADDRESS", "2"),  # below the per-username limit
    ("MCSITE_LOGIN_COOLOFF_MINUTES", "1.5"),
    ("MCSITE_LOGIN_COOLOFF_MINUTES", "0"),
    ("MCSITE_TRUSTED_PROXIES", "10.0.0.1,proxy.example.com"),
    ("MCSITE_TRUSTED_PROXIES", "10.0.0.0/33"),
])
def test_a_bad_value_stops_start_up_naming_the_variable(name, value):
    result = _start(**{name: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and name in result.stderr.strip().splitlines()[-1]
