"""The inference process's OpenMP workers spin only briefly between parallel regions unless told
otherwise: sleeping after each region cost a wake-up per region, spinning long took the cores the
event loop streams tokens on."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# A new process, as the service starts: OpenMP reads its settings once, as torch loads it.
_PROBE = (
    "import os, services.inference.app; "
    "print(os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT'))"
)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({}, "None 2000"),
        ({"OMP_WAIT_POLICY": "PASSIVE"}, "PASSIVE None"),
        ({"GOMP_SPINCOUNT": "50000"}, "None 50000"),
    ],
)
def test_the_service_bounds_its_openmp_spinning_unless_the_operator_says_otherwise(
    given: dict[str, str], expected: str
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE],
        env={**env, **given},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == expected
