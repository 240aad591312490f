"""The inference process's OpenMP workers sleep between parallel regions unless told otherwise:
spinning, they took the cores the event loop streams tokens on."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# A new process, as the service starts: OpenMP reads the policy once, as torch loads it.
_PROBE = "import os, services.inference.app; print(os.environ.get('OMP_WAIT_POLICY'))"


@pytest.mark.parametrize(("given", "expected"), [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_the_service_sleeps_its_openmp_workers_unless_the_operator_says_otherwise(
    given: str | None, expected: str
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if given is not None:
        env["OMP_WAIT_POLICY"] = given
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == expected
