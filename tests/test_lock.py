"""requirements.lock is the install: it must agree with pyproject.toml.

`make lock` writes it with pip-compile (the project's dependencies and its dev extra) and then
`python -m tests.test_lock stamp` records a digest of those two lists in its header. A lock
that no longer matches (a dependency added, removed or re-ranged without relocking) fails
here, so CI catches it before anything is installed from a stale lock.
"""

from __future__ import annotations

import hashlib
import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
LOCK = ROOT / "requirements.lock"
DIGEST_LINE = re.compile(r"^# pyproject-dependencies-sha256: ([0-9a-f]{64})$", re.MULTILINE)
PIN_LINE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", re.MULTILINE)
REFRESH = "run `make lock` and commit requirements.lock"


def declared_requirements(pyproject: Path = PYPROJECT) -> list[Requirement]:
    """The project's dependencies and its dev extra, as packaging reads them."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    lines = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    return [Requirement(line) for line in lines]


def dependency_digest(pyproject: Path = PYPROJECT) -> str:
    """SHA-256 of the normalized requirement lists: comments and spacing do not count."""
    normalized = sorted(str(requirement) for requirement in declared_requirements(pyproject))
    return hashlib.sha256("\n".join(normalized).encode()).hexdigest()


def locked_versions(lock: Path = LOCK) -> dict[NormalizedName, Version]:
    return {
        canonicalize_name(name): Version(version)
        for name, version in PIN_LINE.findall(lock.read_text(encoding="utf-8"))
    }


def stamp(lock: Path = LOCK, pyproject: Path = PYPROJECT) -> None:
    """Record the digest of pyproject's lists in the lock, after pip-compile's header."""
    lines = [
        line
        for line in lock.read_text(encoding="utf-8").splitlines()
        if not DIGEST_LINE.match(line)
    ]
    header_end = next((i for i, line in enumerate(lines) if not line.startswith("#")), len(lines))
    lines.insert(header_end, f"# pyproject-dependencies-sha256: {dependency_digest(pyproject)}")
    lock.write_text("\n".join(lines) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------- the checks


def test_every_declared_requirement_is_pinned_within_its_range() -> None:
    pins = locked_versions()
    problems = []
    for requirement in declared_requirements():
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": "dev"}):
            continue
        pinned = pins.get(canonicalize_name(requirement.name))
        if pinned is None:
            problems.append(f"{requirement} is not in the lock")
        elif not requirement.specifier.contains(pinned, prereleases=True):
            problems.append(f"{requirement} but the lock pins {pinned}")
    assert problems == [], f"{'; '.join(problems)}: {REFRESH}"


def test_the_lock_was_made_from_the_current_dependency_lists() -> None:
    recorded = DIGEST_LINE.search(LOCK.read_text(encoding="utf-8"))
    assert recorded is not None, f"requirements.lock records no dependency digest: {REFRESH}"
    assert recorded.group(1) == dependency_digest(), (
        f"pyproject.toml's dependencies changed since requirements.lock was made: {REFRESH}"
    )


def test_the_lock_pins_cpu_torch_without_cuda_packages() -> None:
    # torch==2.13.0 from PyPI is the CUDA build, which drags in gigabytes of nvidia-*
    # wheels; the machines carry the CPU build, which pip-compile finds through pip's config.
    pins = locked_versions()
    cuda = sorted(name for name in pins if name.startswith(("nvidia-", "triton")))
    assert cuda == [], f"the lock pins CUDA packages {cuda}: relock on a machine with CPU torch"
    assert pins[canonicalize_name("torch")].local == "cpu", pins[canonicalize_name("torch")]


def test_a_dependency_added_without_relocking_is_caught(tmp_path: Path) -> None:
    """The digest moves with the lists, and only with them."""
    changed = tmp_path / "pyproject.toml"
    original = PYPROJECT.read_text(encoding="utf-8")
    reformatted = original.replace('"pytest>=8.2",', '"pytest >= 8.2",  # spacing only')
    assert reformatted != original
    changed.write_text(reformatted, encoding="utf-8")
    assert dependency_digest(changed) == dependency_digest()
    added = original.replace('"pytest>=8.2",', '"pytest>=8.2",\n    "left-pad>=1.0",')
    changed.write_text(added, encoding="utf-8")
    assert dependency_digest(changed) != dependency_digest()


if __name__ == "__main__":
    if sys.argv[1:] != ["stamp"]:
        sys.exit("usage: python -m tests.test_lock stamp")
    stamp()
