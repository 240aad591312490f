"""Run the platform's services as child processes and keep an eye on them.

Exports:
    ProcessSpec: what to run (name, argv, env, port to health-check, cwd).
    Supervisor: start() / wait_ready(timeout) / run_forever() -> int / stop(timeout).
    SupervisorError: a child failed to start, died early or never became ready.
    service_specs(env, python=sys.executable) -> list[ProcessSpec]: the platform's process table.
    service_urls(env) -> dict[str, str]: base URL of each HTTP service, keyed by name.
    service_url_env(env) -> dict[str, str]: the same as ACCOUNTS_URL=... style variables.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any

import httpx

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT_BASE",
    "REPO_ROOT",
    "ProcessSpec",
    "Supervisor",
    "SupervisorError",
    "service_specs",
    "service_url_env",
    "service_urls",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT_BASE = 8000

# (name, uvicorn app factory, offset from LLMNET_PORT_BASE, URL variable for other services)
HTTP_SERVICES: tuple[tuple[str, str, int, str | None], ...] = (
    ("accounts", "services.accounts.app:create_app", 1, "ACCOUNTS_URL"),
    ("models_hub", "services.models_hub.app:create_app", 2, "MODELS_HUB_URL"),
    ("inference", "services.inference.app:create_app", 3, "INFERENCE_URL"),
    ("feed", "services.feed.app:create_app", 4, "FEED_URL"),
    ("gateway", "services.gateway.app:create_app", 0, None),
)
WORKERS: tuple[tuple[str, str], ...] = (
    ("accounts-worker", "services.accounts.worker.WorkerSettings"),
    ("models-hub-worker", "services.models_hub.worker.WorkerSettings"),
)


class SupervisorError(RuntimeError):
    """A child could not start, exited early or never became healthy; or bad settings."""


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    argv: list[str]
    env: dict[str, str]
    port: int | None = None
    cwd: Path | None = None
    # Where /healthz is polled; differs from the bind host when that is a wildcard.
    health_host: str = "127.0.0.1"

    @property
    def health_url(self) -> str | None:
        return None if self.port is None else f"http://{self.health_host}:{self.port}/healthz"


# --------------------------------------------------------------------------- process table


def _connect_host(bind_host: str) -> str:
    if bind_host in ("", "0.0.0.0", "::", "localhost"):
        return "127.0.0.1"
    return f"[{bind_host}]" if ":" in bind_host else bind_host


def _bind_settings(env: dict[str, str]) -> tuple[str, int]:
    host = env.get("LLMNET_HOST") or DEFAULT_HOST
    raw_base = env.get("LLMNET_PORT_BASE") or str(DEFAULT_PORT_BASE)
    try:
        base = int(raw_base)
    except ValueError:
        raise SupervisorError(f"LLMNET_PORT_BASE must be an integer, got {raw_base!r}") from None
    return host, base


def service_urls(env: dict[str, str]) -> dict[str, str]:
    """Base URL of each HTTP service (gateway included), keyed by service name."""
    host, base = _bind_settings(env)
    connect = _connect_host(host)
    return {name: f"http://{connect}:{base + offset}" for name, _, offset, _ in HTTP_SERVICES}


def service_url_env(env: dict[str, str]) -> dict[str, str]:
    """ACCOUNTS_URL, MODELS_HUB_URL, ... as the services expect them in their environment."""
    urls = service_urls(env)
    return {var: urls[name] for name, _, _, var in HTTP_SERVICES if var is not None}


def _fast_server_options() -> list[str]:
    # Checked in this interpreter: children normally run the same one (sys.executable).
    options: list[str] = []
    if importlib.util.find_spec("uvloop") is not None:
        options += ["--loop", "uvloop"]
    if importlib.util.find_spec("httptools") is not None:
        options += ["--http", "httptools"]
    return options


def service_specs(env: dict[str, str], python: str = sys.executable) -> list[ProcessSpec]:
    """The platform's processes; ports follow LLMNET_HOST and LLMNET_PORT_BASE in ``env``."""
    host, base = _bind_settings(env)
    health_host = _connect_host(host).strip("[]")
    child_env = {
        **env,
        **service_url_env(env),
        # Children write through a pipe; unbuffered output keeps their logs timely.
        "PYTHONUNBUFFERED": "1",
    }
    fast = _fast_server_options()
    specs = [
        ProcessSpec(
            name=name,
            argv=[
                python,
                "-m",
                "uvicorn",
                target,
                "--factory",
                "--host",
                host,
                "--port",
                str(base + offset),
                "--no-access-log",
                *fast,
            ],
            env=child_env,
            port=base + offset,
            cwd=REPO_ROOT,
            health_host=health_host,
        )
        for name, target, offset, _ in HTTP_SERVICES
    ]
    specs += [
        ProcessSpec(name=name, argv=[python, "-m", "arq", target], env=child_env, cwd=REPO_ROOT)
        for name, target in WORKERS
    ]
    return specs


# --------------------------------------------------------------------------- supervisor


def _describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


def _exit_status(returncode: int) -> int:
    """Map a child's unexpected exit to our own exit code: never 0, shell-style for signals."""
    if returncode < 0:
        return 128 - returncode
    return returncode or 1


class Supervisor:
    """Starts each ProcessSpec in its own process group and stops them all together."""

    def __init__(self, specs: Iterable[ProcessSpec], *, poll_interval: float = 0.2) -> None:
        self.specs = list(specs)
        names = [spec.name for spec in self.specs]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate process names in {names}")
        self.poll_interval = poll_interval
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._readers: list[threading.Thread] = []
        self._output_lock = threading.Lock()
        self._signal_received: int | None = None

    # ----------------------------------------------------------------- output

    def _emit(self, stream_name: str, line: str) -> None:
        with self._output_lock:
            # Looked up on every write so that redirections (pytest capture) are honoured.
            target: IO[str] = getattr(sys, stream_name)
            try:
                target.write(line)
                target.flush()
            except (OSError, ValueError):
                pass  # our own stdout is gone (closed pipe); the child must not die of it

    def log(self, message: str) -> None:
        self._emit("stderr", f"[launcher] {message}\n")

    def _pump(self, name: str, source: IO[bytes], stream_name: str) -> None:
        prefix = f"[{name}] "
        with source:
            for raw in iter(source.readline, b""):
                text = raw.decode(errors="replace").rstrip("\r\n")
                self._emit(stream_name, prefix + text + "\n")

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Spawn every process that is not already running."""
        for spec in self.specs:
            if spec.name in self.processes:
                continue
            try:
                # Own session: Ctrl-C reaches only us, and we stop children in a controlled
                # way; it also lets stop() signal a child together with its own children.
                process = subprocess.Popen(  # noqa: S603 - argv comes from trusted specs
                    spec.argv,
                    env=spec.env,
                    cwd=spec.cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    start_new_session=True,
                )
            except OSError as exc:
                self.stop()
                raise SupervisorError(f"could not start {spec.name}: {exc}") from exc
            self.processes[spec.name] = process
            for source, stream_name in ((process.stdout, "stdout"), (process.stderr, "stderr")):
                assert source is not None
                reader = threading.Thread(
                    target=self._pump,
                    args=(spec.name, source, stream_name),
                    name=f"output-{spec.name}-{stream_name}",
                    daemon=True,
                )
                reader.start()
                self._readers.append(reader)

    def exited(self) -> dict[str, int]:
        """Return code of every child that is no longer running, by name."""
        codes: dict[str, int] = {}
        for name, process in self.processes.items():
            returncode = process.poll()
            if returncode is not None:
                codes[name] = returncode
        return codes

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Block until every spec with a port answers 200 on /healthz.

        Raises SupervisorError if a child exits first or the timeout passes.
        """
        pending = {spec.name: spec.health_url for spec in self.specs if spec.health_url}
        missing = [name for name in pending if name not in self.processes]
        if missing:
            raise SupervisorError(f"not started: {', '.join(missing)}; call start() first")
        deadline = time.monotonic() + timeout
        # trust_env=False: an HTTP(S)_PROXY in the environment must not capture loopback.
        client_timeout = httpx.Timeout(2.0, connect=1.0)
        with httpx.Client(timeout=client_timeout, trust_env=False) as client:
            while pending:
                for name, returncode in self.exited().items():
                    raise SupervisorError(
                        f"{name} exited ({_describe_exit(returncode)}) before the platform "
                        "was ready; see its output above"
                    )
                for name, url in list(pending.items()):
                    with contextlib.suppress(httpx.HTTPError):
                        if client.get(url).status_code == 200:
                            del pending[name]
                if not pending:
                    return
                if time.monotonic() >= deadline:
                    raise SupervisorError(
                        f"not healthy after {timeout:.0f}s: {', '.join(sorted(pending))}"
                    )
                time.sleep(self.poll_interval)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Only set a flag: signal handlers interrupt arbitrary code, so they must not stop
        # processes or take locks themselves.
        self._signal_received = signum

    def run_forever(self) -> int:
        """Block until SIGINT/SIGTERM (returns 0) or until a child exits (returns non-zero).

        All children are stopped before returning.
        """
        self._signal_received = None
        previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                previous[signum] = signal.signal(signum, self._on_signal)
        try:
            while True:
                if self._signal_received is not None:
                    name = signal.Signals(self._signal_received).name
                    self.log(f"received {name}, stopping")
                    status = 0
                    break
                exited = self.exited()
                if exited:
                    name, returncode = next(iter(exited.items()))
                    self.log(
                        f"{name} exited unexpectedly ({_describe_exit(returncode)}); "
                        "stopping the others"
                    )
                    status = _exit_status(returncode)
                    break
                time.sleep(self.poll_interval)
            # Stopping inside the handler scope: a second Ctrl-C only re-sets the flag
            # instead of raising KeyboardInterrupt half-way through the shutdown.
            self.stop()
        finally:
            for restored, handler in previous.items():
                signal.signal(restored, handler)
        return status

    @staticmethod
    def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
        # Children lead their own session, so their pid is also their process group id.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signum)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM every process group, wait up to ``timeout`` s, then SIGKILL stragglers."""
        running = {name: p for name, p in self.processes.items() if p.poll() is None}
        for process in running.values():
            self._signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for name, process in running.items():
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.log(f"{name} did not stop within {timeout:.0f}s; killing it")
        for process in running.values():
            # Also reaches grandchildren that outlived their parent.
            self._signal_group(process, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(5)
        for reader in self._readers:
            reader.join(timeout=2)
        self._readers = [reader for reader in self._readers if reader.is_alive()]
