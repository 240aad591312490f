"""`make test` on a machine without PostgreSQL or Redis: the suite starts embedded ones.

A pytest of its own runs a small test (tests/launcher/fallback_probe.py) with
TEST_DATABASE_URL and TEST_REDIS_URL pointed at closed ports, on ports and a data dir of its
own, and must find a migrated database and a Redis there, then stop both when it ends. The
machine's own servers are never involved.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from llmnet.launcher.ci_servers import answers, ensure_test_servers, worker_redis_url

ROOT = Path(__file__).resolve().parents[2]


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Not under pytest's tmp_path: any pytest starting meanwhile takes the o+x that the
    # PostgreSQL account needs off /tmp/pytest-of-<user>.
    with tempfile.TemporaryDirectory(prefix="llmnet-fallback-") as folder:
        yield Path(folder)


@pytest.mark.timeout(600)
def test_the_suite_falls_back_to_embedded_servers_and_stops_them(data_dir: Path) -> None:
    closed_postgres, closed_redis, postgres_port, redis_port = free_ports(4)
    out = data_dir / "probe.json"
    env = {
        # Not a parallel worker's session (ports and Redis database of its own): a plain one.
        **{k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")},
        "TEST_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{closed_postgres}/postgres",
        "TEST_REDIS_URL": f"redis://127.0.0.1:{closed_redis}/15",
        "LLMNET_TEST_DATA_DIR": str(data_dir / "data"),
        "LLMNET_TEST_POSTGRES_PORT": str(postgres_port),
        "LLMNET_TEST_REDIS_PORT": str(redis_port),
        "FALLBACK_PROBE_OUT": str(out),
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/launcher/fallback_probe.py",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    probe = json.loads(out.read_text())
    assert probe["started"] == ["PostgreSQL", "Redis"]
    assert urlsplit(probe["admin_database_url"]).port == postgres_port
    assert urlsplit(probe["database_url"]).port == postgres_port
    assert urlsplit(probe["redis_url"]).port == redis_port
    assert probe["users_table"] == 1
    assert (data_dir / "data" / "postgres" / "PG_VERSION").is_file()
    # The session stopped what it started.
    assert not listening(postgres_port)
    assert not listening(redis_port)


def test_servers_that_answer_are_used_as_they_are(tmp_path: Path) -> None:
    # This session's own servers answer (whichever they are): nothing is started for them.
    database_url = os.environ["TEST_DATABASE_URL"]
    redis_url = os.environ["TEST_REDIS_URL"]
    servers = ensure_test_servers(tmp_path, database_url, redis_url)
    assert servers.started == []
    assert (servers.database_url, servers.redis_url) == (database_url, redis_url)
    servers.stop()
    assert not (tmp_path / "postgres").exists()
    # stop() left them alone.
    assert answers(database_url, 5432)
    assert answers(redis_url, 6379)


def test_parallel_workers_never_share_a_redis_database() -> None:
    """`make test` runs a worker per CPU; each flushes its Redis database between tests."""
    base = "redis://:secret@127.0.0.1:6379/15"
    databases = [urlsplit(worker_redis_url(base, worker)).path for worker in range(4)]
    assert databases == ["/15", "/14", "/13", "/12"]
    assert worker_redis_url(base, 1).startswith("redis://:secret@127.0.0.1:6379/")
    assert worker_redis_url("redis://127.0.0.1:6379/0", 1).endswith("/15")  # wraps within 16
