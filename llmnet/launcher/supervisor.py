"""Run the platform's services as child processes and keep an eye on them.

Exports:
    ProcessSpec: what to run (name, argv, env, port to health-check, cwd).
    Supervisor: start() / wait_ready(timeout) / run_forever() -> int / stop(timeout).
    SupervisorError: a child failed to start, died early or never became ready; or bad settings.
    service_specs(env, python=sys.executable) -> list[ProcessSpec]: the platform's process table.
    service_urls(env) -> dict[str, str]: base URL of each HTTP service, keyed by name.
    service_url_env(env) -> dict[str, str]: the same as ACCOUNTS_URL=... style variables.
    embedded_ports(env) -> EmbeddedPorts: where the embedded PostgreSQL and Redis listen.

Once the platform is up, a child that exits is restarted (after a delay that doubles with each
quick crash, capped, and starts over once the child has run a while); only SIGINT/SIGTERM stop
everything.
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

from llmnet.launcher.embedded import DEFAULT_POSTGRES_PORT, DEFAULT_REDIS_PORT

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT_BASE",
    "REPO_ROOT",
    "EmbeddedPorts",
    "ProcessSpec",
    "Supervisor",
    "SupervisorError",
    "embedded_ports",
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
    ("finetune-worker", "services.models_hub.finetune_worker.WorkerSettings"),
    ("feed-worker", "services.feed.worker.WorkerSettings"),
    ("inference-worker", "services.inference.worker.WorkerSettings"),
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
    # The service whose code it runs (a worker belongs to its service and shares its
    # credentials); empty for processes outside the platform's table.
    service: str = ""

    @property
    def health_url(self) -> str | None:
        return None if self.port is None else f"http://{self.health_host}:{self.port}/healthz"


# --------------------------------------------------------------------------- process table


def _connect_host(bind_host: str) -> str:
    if bind_host in ("", "0.0.0.0", "::", "localhost"):
        return "127.0.0.1"
    return f"[{bind_host}]" if ":" in bind_host else bind_host


def shutdown_seconds(env: dict[str, str]) -> tuple[float, float]:
    """(drain, grace) after SIGTERM, as the services read them (shared/settings.py)."""
    try:
        drain = float(env.get("SHUTDOWN_DRAIN_SECONDS") or 0)
        grace = float(env.get("SHUTDOWN_GRACE_SECONDS") or 20)
    except ValueError:
        raise SupervisorError("SHUTDOWN_DRAIN/GRACE_SECONDS must be numbers") from None
    return drain, grace


def stop_timeout(env: dict[str, str]) -> float:
    """How long a stopping platform waits for its processes before killing them: their
    drain and grace, and a margin."""
    drain, grace = shutdown_seconds(env)
    return drain + grace + 10


def _bind_settings(env: dict[str, str]) -> tuple[str, int]:
    host = env.get("LLMNET_HOST") or DEFAULT_HOST
    raw_base = env.get("LLMNET_PORT_BASE") or str(DEFAULT_PORT_BASE)
    try:
        base = int(raw_base)
    except ValueError:
        raise SupervisorError(f"LLMNET_PORT_BASE must be an integer, got {raw_base!r}") from None
    return host, base


@dataclass(frozen=True)
class EmbeddedPorts:
    postgres: int
    redis: int


def _port(env: dict[str, str], variable: str, derived: int) -> int:
    raw = env.get(variable)
    if raw:
        try:
            port = int(raw)
        except ValueError:
            raise SupervisorError(f"{variable} must be an integer, got {raw!r}") from None
        source = variable
    else:
        port, source = derived, "LLMNET_PORT_BASE"
    if not 1024 <= port <= 65535:
        raise SupervisorError(
            f"{source} puts the embedded server on port {port}, outside 1024-65535; "
            f"set {variable} to a free port"
        )
    return port


def embedded_ports(env: dict[str, str]) -> EmbeddedPorts:
    """Ports of the embedded PostgreSQL and Redis (``make run`` without DATABASE_URL/REDIS_URL).

    LLMNET_POSTGRES_PORT / LLMNET_REDIS_PORT when set; otherwise 55432 / 56379 moved by as
    much as LLMNET_PORT_BASE is from 8000, so that instances on different port bases (two
    ``make run`` on one machine) never share a server port.
    """
    _, base = _bind_settings(env)
    shift = base - DEFAULT_PORT_BASE
    return EmbeddedPorts(
        postgres=_port(env, "LLMNET_POSTGRES_PORT", DEFAULT_POSTGRES_PORT + shift),
        redis=_port(env, "LLMNET_REDIS_PORT", DEFAULT_REDIS_PORT + shift),
    )


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
    # uvicorn's own backstop: the services end their streams when the grace is up (see
    # shared/shutdown.py); this cancels whatever still runs a little later.
    backstop = str(int(shutdown_seconds(env)[1]) + 5)
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
                "--timeout-graceful-shutdown",
                backstop,
                *fast,
            ],
            env=child_env,
            port=base + offset,
            cwd=REPO_ROOT,
            health_host=health_host,
            service=name,
        )
        for name, target, offset, _ in HTTP_SERVICES
    ]
    specs += [
        ProcessSpec(
            name=name,
            argv=[python, "-m", "arq", target],
            env=child_env,
            cwd=REPO_ROOT,
            service=target.split(".")[1],  # services.<service>.<worker module>.WorkerSettings
        )
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


# A crashed child waits this long before its first restart, doubling with each quick crash.
RESTART_DELAY_S = 1.0
MAX_RESTART_DELAY_S = 30.0
# A child that ran at least this long before exiting counts as healthy: its next restart
# waits the first delay again.
HEALTHY_AFTER_S = 60.0


@dataclass
class _RestartState:
    delay: float
    due: float | None = None  # monotonic time of the pending restart
    count: int = 0


class Supervisor:
    """Starts each ProcessSpec in its own process group, restarts those that exit while the
    platform runs, and stops them all together."""

    def __init__(
        self,
        specs: Iterable[ProcessSpec],
        *,
        poll_interval: float = 0.2,
        restart_delay: float = RESTART_DELAY_S,
        max_restart_delay: float = MAX_RESTART_DELAY_S,
        healthy_after: float = HEALTHY_AFTER_S,
    ) -> None:
        self.specs = list(specs)
        names = [spec.name for spec in self.specs]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate process names in {names}")
        self.poll_interval = poll_interval
        self.restart_delay = restart_delay
        self.max_restart_delay = max_restart_delay
        self.healthy_after = healthy_after
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.restarts: dict[str, int] = {}
        self._started_at: dict[str, float] = {}
        self._restart_state: dict[str, _RestartState] = {}
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

    def _spawn(self, spec: ProcessSpec) -> None:
        # Own session: Ctrl-C reaches only us, and we stop children in a controlled way; it
        # also lets stop() signal a child together with its own children.
        process = subprocess.Popen(  # noqa: S603 - argv comes from trusted specs
            spec.argv,
            env=spec.env,
            cwd=spec.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self.processes[spec.name] = process
        self._started_at[spec.name] = time.monotonic()
        self._readers = [reader for reader in self._readers if reader.is_alive()]
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

    def start(self) -> None:
        """Spawn every process that is not already running."""
        for spec in self.specs:
            if spec.name in self.processes:
                continue
            try:
                self._spawn(spec)
            except OSError as exc:
                self.stop()
                raise SupervisorError(f"could not start {spec.name}: {exc}") from exc

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

    def _restart_due(self, spec: ProcessSpec, state: _RestartState) -> None:
        state.due = None
        state.count += 1
        self.restarts[spec.name] = state.count
        try:
            self._spawn(spec)
        except OSError as exc:
            self._schedule_restart(spec.name, state, f"could not be restarted ({exc})")
            return
        self.log(f"{spec.name} restarted (restart {state.count})")

    def _schedule_restart(self, name: str, state: _RestartState, why: str) -> None:
        delay = state.delay
        state.delay = min(state.delay * 2, self.max_restart_delay)
        state.due = time.monotonic() + delay
        self.log(f"{name} {why}; restarting it in {delay:.1f}s")

    def supervise(self) -> None:
        """One round: restart children whose delay is over, schedule those that just exited."""
        for spec in self.specs:
            state = self._restart_state.setdefault(spec.name, _RestartState(self.restart_delay))
            if state.due is not None:
                if time.monotonic() >= state.due:
                    self._restart_due(spec, state)
                continue
            process = self.processes.get(spec.name)
            returncode = None if process is None else process.poll()
            if process is None or returncode is None:
                continue
            ran = time.monotonic() - self._started_at[spec.name]
            if ran >= self.healthy_after:
                state.delay = self.restart_delay
            # Its own children (a validation sandbox, say) must not outlive it.
            self._signal_group(process, signal.SIGKILL)
            self._schedule_restart(
                spec.name,
                state,
                f"exited unexpectedly ({_describe_exit(returncode)}) after {ran:.0f}s",
            )

    def run_forever(self) -> int:
        """Keep every child running until SIGINT/SIGTERM, then stop them all and return 0.

        A child that exits is restarted after a delay (see RESTART_DELAY_S and friends): an
        outage of Redis or PostgreSQL, or a crash, must not take the platform down.
        """
        self._signal_received = None
        previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                previous[signum] = signal.signal(signum, self._on_signal)
        try:
            while self._signal_received is None:
                self.supervise()
                time.sleep(self.poll_interval)
            self.log(f"received {signal.Signals(self._signal_received).name}, stopping")
            # Stopping inside the handler scope: a second Ctrl-C only re-sets the flag
            # instead of raising KeyboardInterrupt half-way through the shutdown.
            self.stop()
        finally:
            for restored, handler in previous.items():
                signal.signal(restored, handler)
        return 0

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
