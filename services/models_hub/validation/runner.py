"""Start the validation child (sandbox.py) under limits and turn its outcome into a report or a
user-facing reason. Used by the arq validation job.

The child gets:
- resource limits set before exec: address space (RLIMIT_AS), CPU seconds, largest file it may
  write, open files, no core dumps; and a lower scheduling priority;
- a wall-clock timeout that kills its whole process group (it runs in its own session);
- a minimal environment built from scratch: PATH, a throwaway HOME/TMPDIR/HF_HOME, PYTHONPATH for
  our packages, offline switches for the Hugging Face libraries and thread caps. Nothing of the
  parent's environment is inherited, so no DATABASE_URL, REDIS_URL, tokens or keys;
- its working directory in that throwaway folder;
- no network: a fresh, empty network namespace (only a downed loopback) where the kernel lets us
  create one (as root: unshare(CLONE_NEWNET); otherwise an unprivileged user namespace with its
  own network namespace), and in any case the audit-hook guard sandbox.py installs on import.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import json
import logging
import os
import resource
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

GiB = 1024**3
SANDBOX_MODULE = "services.models_hub.validation.sandbox"
# The folder holding the `services` and `shared` packages, put on the child's PYTHONPATH.
CODE_ROOT = Path(__file__).resolve().parents[3]

STDOUT_KEEP_BYTES = 1024 * 1024  # the child prints one JSON line; keep the last MiB at most
STDERR_KEEP_BYTES = 64 * 1024  # the tail of the log, for operators

_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
# The ways to get a private network namespace, best first: plain (needs CAP_SYS_ADMIN, e.g. root)
# and inside a new user namespace (unprivileged, where the kernel allows user namespaces).
_NETNS_FLAGS = (_CLONE_NEWNET, _CLONE_NEWUSER | _CLONE_NEWNET)


def _load_libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.unshare.argtypes = [ctypes.c_int]
        libc.unshare.restype = ctypes.c_int
    except (OSError, AttributeError):  # not Linux
        return None
    return libc


# Loaded once in the parent: the preexec_fn then only makes the call.
_libc = _load_libc()


@dataclass(frozen=True)
class SandboxLimits:
    timeout_seconds: float = 300
    memory_bytes: int = 8 * GiB
    cpu_seconds: int = 600
    max_file_bytes: int = 8 * GiB
    threads: int = 2
    open_files: int = 1024


@dataclass(frozen=True)
class ValidationReport:
    """What the child measured; mirrors its success JSON."""

    architecture: str
    parameter_count: int
    dtype: str
    context_length: int | None
    vocab_size: int
    has_chat_template: bool
    load_seconds: float
    tokens_per_second: float
    sample: str
    converted: bool

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> ValidationReport:
        values = {field.name: payload[field.name] for field in fields(cls)}
        return cls(**values)


class ValidationFailed(Exception):
    """Validation did not pass. `reason` is for the uploader; `details` (the child's stderr
    tail) is for operators' logs only."""

    def __init__(self, reason: str, *, details: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.details = details


@dataclass(frozen=True)
class SandboxResult:
    """How a sandboxed child ended. `returncode` is negative for a signal (asyncio's way)."""

    returncode: int
    stdout: bytes
    stderr: bytes
    timed_out: bool
    network_namespace: bool


# ---- network namespace --------------------------------------------------------------------------


def _unshare(flags: int) -> None:
    assert _libc is not None
    if _libc.unshare(flags) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"unshare({flags:#x}) failed: {os.strerror(errno)}")


_netns_flags: int | None = None
_netns_probed = False


async def network_namespace_flags() -> int | None:
    """The unshare() flags that give a child its own network namespace on this machine, or None
    where none work (then only the in-process guard stands between a model and the network).
    Found once by starting a trivial child with each candidate."""
    global _netns_flags, _netns_probed
    if _netns_probed:
        return _netns_flags
    found: int | None = None
    if _libc is not None:
        for flags in _NETNS_FLAGS:
            try:
                proc = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-S",
                    "-c",
                    "",
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                    env={},
                    preexec_fn=functools.partial(_unshare, flags),
                )
            except (OSError, subprocess.SubprocessError):  # the preexec_fn raised
                continue
            if await proc.wait() == 0:
                found = flags
                break
    if found is None:
        logger.warning(
            "no network namespace can be created here; model validation relies on the "
            "in-process network guard alone"
        )
    _netns_flags, _netns_probed = found, True
    return found


# ---- spawning -----------------------------------------------------------------------------------


def sandbox_environment(workdir: Path, limits: SandboxLimits) -> dict[str, str]:
    """The child's whole environment: nothing is copied from the parent's."""
    threads = str(max(1, limits.threads))
    home = workdir / "home"
    return {
        "PATH": os.pathsep.join(
            [str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"]
        ),
        "HOME": str(home),
        "TMPDIR": str(workdir / "tmp"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "HF_HOME": str(home / "huggingface"),
        "PYTHONPATH": str(CODE_ROOT),
        "PYTHONNOUSERSITE": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "PYTHONIOENCODING": "utf-8",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
        "CUDA_VISIBLE_DEVICES": "",  # validation runs on CPU
        "OMP_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
        "OPENBLAS_NUM_THREADS": threads,
        "NUMEXPR_NUM_THREADS": threads,
        "VECLIB_MAXIMUM_THREADS": threads,
        "RAYON_NUM_THREADS": threads,
        "TOKENIZERS_PARALLELISM": "false",
    }


def _make_preexec(limits: SandboxLimits, netns_flags: int | None) -> Callable[[], None]:
    memory = int(limits.memory_bytes)
    cpu = max(1, int(limits.cpu_seconds))
    max_file = int(limits.max_file_bytes)
    open_files = int(limits.open_files)

    def preexec() -> None:  # runs in the child between fork and exec: keep it to syscalls
        if netns_flags is not None:
            _unshare(netns_flags)
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        # At the soft limit the kernel sends SIGXCPU, at the hard one SIGKILL.
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_file, max_file))
        resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        os.nice(10)

    return preexec


def _make_dirs(*paths: Path) -> None:
    for path in paths:
        path.mkdir(parents=True, exist_ok=True)


async def _drain(stream: asyncio.StreamReader | None, keep: int) -> bytes:
    """Read a pipe to its end, keeping only its last `keep` bytes."""
    if stream is None:
        return b""
    kept = bytearray()
    while chunk := await stream.read(65536):
        kept += chunk
        if len(kept) > keep:
            del kept[:-keep]
    return bytes(kept)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


async def run_sandboxed(
    args: Sequence[str],
    *,
    limits: SandboxLimits,
    extra_env: Mapping[str, str] | None = None,
) -> SandboxResult:
    """Run `python <args>` in the sandbox (limits, scrubbed environment, throwaway working
    directory, own session, no network) and collect how it ended."""
    netns_flags = await network_namespace_flags()
    with tempfile.TemporaryDirectory(prefix="llmnet-sandbox-") as tmp:
        workdir = Path(tmp)
        env = sandbox_environment(workdir, limits)
        env.update(extra_env or {})
        _make_dirs(Path(env["HOME"]), Path(env["TMPDIR"]))
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=workdir,
            env=env,
            start_new_session=True,  # its own process group, killed as a whole
            preexec_fn=_make_preexec(limits, netns_flags),
        )
        readers = asyncio.gather(
            _drain(proc.stdout, STDOUT_KEEP_BYTES), _drain(proc.stderr, STDERR_KEEP_BYTES)
        )
        timed_out = False
        try:
            try:
                await asyncio.wait_for(proc.wait(), timeout=limits.timeout_seconds)
            except TimeoutError:
                timed_out = True
        finally:
            # Also on cancellation, and for anything the child left behind in its group.
            _kill_group(proc.pid)
            if proc.returncode is None:
                await proc.wait()
            try:
                stdout, stderr = await asyncio.wait_for(readers, timeout=10)
            except TimeoutError:  # a descendant that left the group still holds a pipe
                readers.cancel()
                stdout, stderr = b"", b""
    assert proc.returncode is not None
    return SandboxResult(
        returncode=proc.returncode,
        stdout=stdout,
        stderr=stderr,
        timed_out=timed_out,
        network_namespace=netns_flags is not None,
    )


# ---- validation ---------------------------------------------------------------------------------


def _size(n: int) -> str:
    return f"{n / GiB:.1f} GiB" if n >= GiB else f"{n / 1024**2:.0f} MiB"


def _last_json_line(stdout: bytes) -> dict[str, Any] | None:
    for line in reversed(stdout.decode("utf-8", "replace").splitlines()):
        line = line.strip()
        if not line:
            continue
        try:
            payload = json.loads(line)
        except json.JSONDecodeError:
            return None
        return payload if isinstance(payload, dict) else None
    return None


def _signal_reason(sig: int, limits: SandboxLimits) -> str:
    if sig == signal.SIGXCPU:
        return f"the model used more than {limits.cpu_seconds} s of CPU time"
    if sig == signal.SIGXFSZ:
        return f"the model tried to write a file larger than {_size(limits.max_file_bytes)}"
    return f"the model ran out of memory or crashed (signal {sig})"


def _explain(result: SandboxResult, limits: SandboxLimits) -> ValidationReport:
    details = result.stderr.decode("utf-8", "replace")
    if result.timed_out:
        raise ValidationFailed(
            f"validation took longer than {limits.timeout_seconds:g} s", details=details
        )
    if result.returncode < 0:
        raise ValidationFailed(_signal_reason(-result.returncode, limits), details=details)
    payload = _last_json_line(result.stdout)
    if payload is not None and payload.get("ok") is True and result.returncode == 0:
        try:
            return ValidationReport.from_payload(payload)
        except (KeyError, TypeError) as exc:
            raise ValidationFailed(
                f"validation produced an incomplete report ({exc})", details=details
            ) from exc
    if payload is not None and payload.get("ok") is False and payload.get("error"):
        reason = str(payload["error"])
        if reason.startswith("the model ran out of memory"):
            reason += f" (the limit is {_size(limits.memory_bytes)})"
        raise ValidationFailed(reason, details=details)
    last_line = next((ln for ln in reversed(details.splitlines()) if ln.strip()), "")
    reason = f"validation crashed (exit code {result.returncode})"
    if "MemoryError" in last_line or "memory" in last_line.lower():
        reason = f"the model ran out of memory or crashed (exit code {result.returncode})"
    raise ValidationFailed(reason, details=details)


def _sandbox_args(
    model_dir: Path, output_dir: Path, gguf_file: str | None, max_new_tokens: int
) -> list[str]:
    # The child works in another directory: hand it absolute paths.
    model_dir, output_dir = model_dir.absolute(), output_dir.absolute()
    output_dir.mkdir(parents=True, exist_ok=True)
    args = ["-s", "-m", SANDBOX_MODULE, "--model-dir", str(model_dir)]
    args += ["--output-dir", str(output_dir), "--max-new-tokens", str(max_new_tokens)]
    if gguf_file is not None:
        args += ["--gguf-file", gguf_file]
    return args


async def run_sandbox(
    model_dir: Path,
    output_dir: Path,
    *,
    limits: SandboxLimits,
    gguf_file: str | None = None,
    max_new_tokens: int = 8,
) -> ValidationReport:
    """Validate the model in `model_dir` (or its `gguf_file`, converted into `output_dir`) in a
    sandboxed child. Raises `ValidationFailed` with a reason for the uploader."""
    args = _sandbox_args(Path(model_dir), Path(output_dir), gguf_file, max_new_tokens)
    result = await run_sandboxed(args, limits=limits)
    try:
        return _explain(result, limits)
    except ValidationFailed as failure:
        logger.info(
            "model validation failed: %s (exit %s)\n%s",
            failure.reason,
            result.returncode,
            failure.details[-4000:],
        )
        raise
