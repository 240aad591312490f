"""The supervisor against real child processes: readiness, restarts, signals, the port plan."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from llmnet.launcher.supervisor import (
    EmbeddedPorts,
    ProcessSpec,
    Supervisor,
    SupervisorError,
    embedded_ports,
    service_specs,
    stop_timeout,
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@contextlib.contextmanager
def sigterm_when(condition: Callable[[], bool], within: float = 30.0) -> Iterator[None]:
    """SIGTERM this process (as `kill` would the launcher) once `condition` holds, or after
    `within` seconds whatever happens, so that a failing test cannot hang in run_forever;
    nothing is sent once the block has ended."""
    done = threading.Event()

    def watch() -> None:
        deadline = time.monotonic() + within
        while not (condition() or done.is_set()) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not done.is_set():
            os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


HEALTH_SERVER = textwrap.dedent(
    """
    import http.server, sys

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/healthz" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    print("listening", flush=True)
    http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
    """
)
IGNORES_SIGTERM = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
)


def test_supervisor_waits_for_health_and_stops_everything(
    capsys: pytest.CaptureFixture[str],
) -> None:
    ports = [free_port(), free_port()]
    specs = [
        ProcessSpec(
            f"web{i}", [sys.executable, "-c", HEALTH_SERVER, str(port)], dict(os.environ), port
        )
        for i, port in enumerate(ports)
    ]
    specs.append(
        ProcessSpec("stubborn", [sys.executable, "-c", IGNORES_SIGTERM], dict(os.environ), None)
    )
    supervisor = Supervisor(specs)
    supervisor.start()
    try:
        supervisor.wait_ready(timeout=15)
    finally:
        started = time.monotonic()
        supervisor.stop(timeout=2)
    assert time.monotonic() - started < 10
    for process in supervisor.processes.values():
        assert process.returncode is not None
        assert pid_gone(process.pid)
    assert supervisor.processes["stubborn"].returncode == -9
    assert "[web0] listening" in capsys.readouterr().out


# Exits with code 3 the first time (leaving a marker), then says so and runs until stopped.
EXITS_ONCE = textwrap.dedent(
    """
    import os, sys, time
    marker = sys.argv[1]
    if not os.path.exists(marker):
        open(marker, "w").close()
        sys.exit(3)
    open(marker + ".again", "w").close()
    time.sleep(60)
    """
)


def test_a_child_that_exits_is_restarted_and_sigterm_stops_everything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    supervisor = Supervisor(
        [
            ProcessSpec(
                "web", [sys.executable, "-c", HEALTH_SERVER, str(port)], dict(os.environ), port
            ),
            ProcessSpec(
                "flaky",
                [sys.executable, "-c", EXITS_ONCE, str(tmp_path / "marker")],
                dict(os.environ),
                None,
            ),
        ],
        restart_delay=0.1,
    )
    supervisor.start()
    web_pid = supervisor.processes["web"].pid

    with sigterm_when((tmp_path / "marker.again").exists):
        try:
            status = supervisor.run_forever()
        finally:
            supervisor.stop(timeout=2)

    assert status == 0
    assert (tmp_path / "marker.again").exists()  # it ran again
    assert supervisor.restarts == {"flaky": 1}
    assert supervisor.processes["web"].pid == web_pid  # the others kept running
    for process in supervisor.processes.values():
        assert pid_gone(process.pid)
    captured = capsys.readouterr()
    assert "flaky exited unexpectedly (exit code 3)" in captured.err
    assert "received SIGTERM, stopping" in captured.err


# Runs a while, then exits; forever.
EXITS_AFTER = "import sys, time; time.sleep(float(sys.argv[1])); sys.exit(1)"


def _restart_delays(err: str, name: str) -> list[str]:
    return re.findall(rf"\] {name} exited unexpectedly .*; restarting it in ([0-9.]+)s", err)


def test_restart_delays_double_up_to_a_cap_and_reset_after_a_healthy_run(
    capsys: pytest.CaptureFixture[str],
) -> None:
    supervisor = Supervisor(
        [
            ProcessSpec("crasher", [sys.executable, "-c", EXITS_AFTER, "0"], dict(os.environ)),
            ProcessSpec("steady", [sys.executable, "-c", EXITS_AFTER, "1.5"], dict(os.environ)),
        ],
        restart_delay=0.1,
        max_restart_delay=0.4,
        healthy_after=1.0,
    )
    supervisor.start()

    def enough_restarts() -> bool:
        return (
            supervisor.restarts.get("crasher", 0) >= 4 and supervisor.restarts.get("steady", 0) >= 2
        )

    with sigterm_when(enough_restarts):
        try:
            assert supervisor.run_forever() == 0
        finally:
            supervisor.stop(timeout=2)

    err = capsys.readouterr().err
    assert _restart_delays(err, "crasher")[:4] == ["0.1", "0.2", "0.4", "0.4"]
    # Each run of `steady` lasted longer than healthy_after: never a longer delay.
    assert set(_restart_delays(err, "steady")) == {"0.1"}


def test_wait_ready_reports_a_child_that_died() -> None:
    supervisor = Supervisor(
        [
            ProcessSpec(
                "broken",
                [sys.executable, "-c", "raise SystemExit(2)"],
                dict(os.environ),
                free_port(),
            ),
        ]
    )
    supervisor.start()
    try:
        with pytest.raises(SupervisorError, match="broken exited"):
            supervisor.wait_ready(timeout=10)
    finally:
        supervisor.stop(timeout=2)


def test_service_specs_follow_host_and_port_base() -> None:
    specs = {s.name: s for s in service_specs({"LLMNET_PORT_BASE": "9000"}, python="py")}
    assert list(specs) == [
        "accounts",
        "models_hub",
        "inference",
        "feed",
        "gateway",
        "accounts-worker",
        "models-hub-worker",
        "finetune-worker",
        "feed-worker",
        "inference-worker",
    ]
    assert specs["finetune-worker"].service == "models_hub"
    assert specs["gateway"].port == 9000
    assert specs["feed"].port == 9004
    assert specs["accounts-worker"].port is None
    assert specs["accounts-worker"].argv == [
        "py",
        "-m",
        "arq",
        "services.accounts.worker.WorkerSettings",
    ]
    assert specs["accounts"].argv[:10] == [
        "py",
        "-m",
        "uvicorn",
        "services.accounts.app:create_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        "9001",
        "--no-access-log",
    ]
    # uvicorn's backstop comes after the services' own grace (shared/shutdown.py).
    assert specs["accounts"].argv[10:12] == ["--timeout-graceful-shutdown", "25"]
    later = service_specs({"SHUTDOWN_GRACE_SECONDS": "60"}, python="py")
    assert all("65" in s.argv for s in later if "uvicorn" in s.argv)
    assert stop_timeout({"SHUTDOWN_DRAIN_SECONDS": "5", "SHUTDOWN_GRACE_SECONDS": "60"}) == 75
    env = specs["gateway"].env
    assert env["ACCOUNTS_URL"] == "http://127.0.0.1:9001"
    assert env["MODELS_HUB_URL"] == "http://127.0.0.1:9002"
    assert env["INFERENCE_URL"] == "http://127.0.0.1:9003"
    assert env["FEED_URL"] == "http://127.0.0.1:9004"


def test_embedded_ports_follow_the_port_base_so_instances_do_not_collide() -> None:
    assert embedded_ports({}) == EmbeddedPorts(postgres=55432, redis=56379)
    second = embedded_ports({"LLMNET_PORT_BASE": "8100"})
    assert second == EmbeddedPorts(postgres=55532, redis=56479)
    assert embedded_ports({"LLMNET_POSTGRES_PORT": "6000", "LLMNET_REDIS_PORT": "6001"}) == (
        EmbeddedPorts(postgres=6000, redis=6001)
    )
    with pytest.raises(SupervisorError, match="LLMNET_REDIS_PORT"):
        embedded_ports({"LLMNET_PORT_BASE": "18000"})
    with pytest.raises(SupervisorError, match="must be an integer"):
        embedded_ports({"LLMNET_POSTGRES_PORT": "fifty"})
