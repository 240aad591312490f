"""Launcher tests against real servers and processes: no mocks."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import textwrap
import time
from pathlib import Path

import asyncpg
import pytest
import redis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.launcher.embedded import EmbeddedServiceError, start_postgres, start_redis
from shared.launcher.secrets import ensure_dev_secrets
from shared.launcher.supervisor import ProcessSpec, Supervisor, SupervisorError, service_specs


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


# --------------------------------------------------------------------------- Redis


def test_redis_persists_across_restarts(tmp_path: Path) -> None:
    port = free_port()
    server = start_redis(tmp_path, port=port)
    try:
        assert server.url == f"redis://127.0.0.1:{port}/0"
        client = redis.Redis.from_url(server.url, socket_timeout=5)
        client.set("greeting", "hello")
        assert client.get("greeting") == b"hello"
        client.close()
    finally:
        server.stop()
    assert server.process is not None
    assert server.process.returncode is not None

    server = start_redis(tmp_path, port=port)
    try:
        client = redis.Redis.from_url(server.url, socket_timeout=5)
        assert client.get("greeting") == b"hello"
        client.close()
    finally:
        server.stop()
    assert (tmp_path / "redis" / "appendonly.aof").exists()


def test_redis_adopts_own_server_and_rejects_foreign_port(tmp_path: Path) -> None:
    port = free_port()
    server = start_redis(tmp_path / "a", port=port)
    try:
        adopted = start_redis(tmp_path / "a", port=port)
        assert adopted.process is None
        with pytest.raises(EmbeddedServiceError, match="taken by a Redis"):
            start_redis(tmp_path / "b", port=port)
    finally:
        server.stop()


# --------------------------------------------------------------------------- PostgreSQL


async def _select_one(dsn: str) -> int:
    connection = await asyncpg.connect(dsn, timeout=10)
    try:
        return int(await connection.fetchval("select 1"))
    finally:
        await connection.close()


def test_postgres_starts_serves_llmnet_and_restarts(tmp_path: Path) -> None:
    port = free_port()
    server = start_postgres(tmp_path, port=port)
    try:
        assert server.database_url == f"postgresql+asyncpg://postgres@127.0.0.1:{port}/llmnet"
        assert asyncio.run(_select_one(server.dsn)) == 1
        # A second start while running adopts the same postmaster.
        assert start_postgres(tmp_path, port=port).port == port
    finally:
        server.stop()
    assert not (tmp_path / "postgres" / "postmaster.pid").exists()

    server = start_postgres(tmp_path, port=port)
    try:
        assert asyncio.run(_select_one(server.dsn)) == 1
    finally:
        server.stop()


# --------------------------------------------------------------------------- secrets


def test_dev_secrets_are_generated_once(tmp_path: Path) -> None:
    first = ensure_dev_secrets(tmp_path)
    second = ensure_dev_secrets(tmp_path)
    assert first == second
    assert len(first.internal_token) >= 32
    for path in (first.jwt_private_key_file, tmp_path / "internal_token"):
        assert path.stat().st_mode & 0o777 == 0o600
    key = serialization.load_pem_private_key(first.jwt_private_key_file.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.key_size == 2048


# --------------------------------------------------------------------------- supervisor

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


def test_run_forever_returns_nonzero_when_a_child_exits_early() -> None:
    port = free_port()
    supervisor = Supervisor(
        [
            ProcessSpec(
                "web", [sys.executable, "-c", HEALTH_SERVER, str(port)], dict(os.environ), port
            ),
            ProcessSpec(
                "crasher",
                [sys.executable, "-c", "import time, sys; time.sleep(0.5); sys.exit(3)"],
                dict(os.environ),
                None,
            ),
        ]
    )
    supervisor.start()
    try:
        assert supervisor.run_forever() == 3
    finally:
        supervisor.stop(timeout=2)
    assert pid_gone(supervisor.processes["web"].pid)


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
    ]
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
    env = specs["gateway"].env
    assert env["ACCOUNTS_URL"] == "http://127.0.0.1:9001"
    assert env["MODELS_HUB_URL"] == "http://127.0.0.1:9002"
    assert env["INFERENCE_URL"] == "http://127.0.0.1:9003"
    assert env["FEED_URL"] == "http://127.0.0.1:9004"
