"""Start the training process (trainer.py) under limits, relay its reports, stop it on cancel.

The child runs in the validation sandbox's conditions (validation/runner.py): an environment
built from scratch (no database or Redis URLs, no keys), a throwaway home, its own session (so
its whole process group is killed), no network where the kernel allows a namespace, and the
kernel's SIGKILL should its parent die (PR_SET_PDEATHSIG). Limits:

- wall clock: `timeout_seconds`, then the group is killed;
- memory: the group's resident memory is read at every report and heartbeat, and past
  `memory_bytes` it is killed (an address-space rlimit would break CUDA, which reserves far more
  virtual memory than it uses).

`on_report` gets each progress line and `heartbeat` is called at least every
`heartbeat_seconds`; either returning False stops training (TrainingStopped).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import resource
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from services.models_hub.validation.runner import (
    CODE_ROOT,
    SandboxLimits,
    network_namespace_flags,
    sandbox_environment,
)

logger = logging.getLogger("llmnet.models_hub.training")

TRAINER_MODULE = "services.models_hub.training.trainer"
STDERR_KEEP_BYTES = 64 * 1024
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class TrainingLimits:
    timeout_seconds: float
    memory_bytes: int
    threads: int
    device: str = "cpu"
    heartbeat_seconds: float = 5.0


class TrainingFailed(Exception):
    """Training did not finish; `reason` is for the job's owner."""

    def __init__(self, reason: str, *, details: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.details = details


class TrainingStopped(Exception):
    """A callback asked training to stop (cancel, or the job is no longer this worker's)."""


Report = Callable[[dict[str, Any]], Awaitable[bool]]
Heartbeat = Callable[[], Awaitable[bool]]


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


_LIBC = _libc()


def _preexec(netns_flags: int | None) -> Callable[[], None]:
    def preexec() -> None:  # between fork and exec: syscalls only
        if _LIBC is not None:
            _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if netns_flags is not None:
                _LIBC.unshare(netns_flags)  # best effort; the audit-hook guard stays
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        os.nice(10)

    return preexec


def _environment(workdir: Path, limits: TrainingLimits) -> dict[str, str]:
    env = sandbox_environment(workdir, SandboxLimits(threads=limits.threads))
    if limits.device.startswith("cuda"):
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if visible is None:
            env.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            env["CUDA_VISIBLE_DEVICES"] = visible
    env["PYTHONPATH"] = str(CODE_ROOT)
    for path in (Path(env["HOME"]), Path(env["TMPDIR"])):
        path.mkdir(parents=True, exist_ok=True)
    return env


def _group_rss(pid: int) -> int:
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            total += process.memory_info().rss
    return total


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


async def _tail(stream: asyncio.StreamReader | None, keep: int) -> bytes:
    if stream is None:
        return b""
    kept = bytearray()
    while chunk := await stream.read(65536):
        kept += chunk
        del kept[:-keep]
    return bytes(kept)


def _size(n: int) -> str:
    return f"{n / 1024**3:.1f} GiB" if n >= 1024**3 else f"{n / 1024**2:.0f} MiB"


async def run_training(
    spec: dict[str, Any],
    workdir: Path,
    limits: TrainingLimits,
    *,
    on_report: Report,
    heartbeat: Heartbeat,
) -> dict[str, Any]:
    """Train per `spec` (see trainer.TrainSpec) in a child; returns its `done` report."""
    spec_file = workdir / "spec.json"
    spec_file.write_text(json.dumps({**spec, "device": limits.device}))
    env = _environment(workdir / "sandbox", limits)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-s",
        "-m",
        TRAINER_MODULE,
        "--spec",
        str(spec_file.absolute()),
        "--parent-pid",
        str(os.getpid()),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=workdir / "sandbox",
        env=env,
        start_new_session=True,
        preexec_fn=_preexec(await network_namespace_flags()),
        limit=1 << 20,
    )
    stderr = asyncio.ensure_future(_tail(proc.stderr, STDERR_KEEP_BYTES))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limits.timeout_seconds
    next_beat = loop.time() + limits.heartbeat_seconds
    outcome: dict[str, Any] | None = None
    details = ""
    try:
        assert proc.stdout is not None
        while True:
            now = loop.time()
            if now >= deadline:
                raise TrainingFailed(
                    f"training took longer than {limits.timeout_seconds:g} s, the limit"
                )
            wait = max(0.05, min(deadline, next_beat) - now)
            try:
                line = await asyncio.wait_for(proc.stdout.readline(), timeout=wait)
            except TimeoutError:
                line = None
            if line == b"":
                break  # the child closed stdout: it is exiting
            if _group_rss(proc.pid) > limits.memory_bytes:
                raise TrainingFailed(
                    f"training used more than {_size(limits.memory_bytes)} of memory, the "
                    "limit; use a smaller batch_size or max_seq_length, or LoRA"
                )
            if line is not None:
                payload = _parse(line)
                if payload is None:
                    continue
                if payload.get("event") == "progress":
                    if not await on_report(payload):
                        raise TrainingStopped
                elif payload.get("event") in ("done", "error"):
                    outcome = payload
            if loop.time() >= next_beat:
                next_beat = loop.time() + limits.heartbeat_seconds
                if not await heartbeat():
                    raise TrainingStopped
        returncode = await proc.wait()
    finally:
        _kill_group(proc.pid)
        if proc.returncode is None:
            await proc.wait()
        with contextlib.suppress(TimeoutError):
            details = (await asyncio.wait_for(stderr, timeout=10)).decode("utf-8", "replace")
        stderr.cancel()
    return _result(outcome, returncode, details)


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        payload = json.loads(line)
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


def _result(outcome: dict[str, Any] | None, returncode: int, details: str) -> dict[str, Any]:
    if outcome is not None and outcome.get("event") == "done" and returncode == 0:
        return outcome
    if outcome is not None and outcome.get("event") == "error":
        raise TrainingFailed(str(outcome.get("error")), details=details)
    if returncode < 0:
        raise TrainingFailed(
            f"training was killed (signal {-returncode}); it may have run out of memory",
            details=details,
        )
    logger.warning("training exited with %s:\n%s", returncode, details[-4000:])
    raise TrainingFailed(f"training crashed (exit code {returncode})", details=details)
