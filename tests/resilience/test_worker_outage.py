"""An arq worker, run as `make run` runs it, waits out a Redis outage instead of exiting."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from llmnet.launcher.embedded import start_redis
from llmnet.launcher.supervisor import REPO_ROOT, WORKERS
from shared.jobs import create_job_pool
from shared.testing import generate_rsa_key

pytestmark = pytest.mark.timeout(120)

OUTAGE_SECONDS = 8.0
QUEUE = "llmnet:accounts"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_an_arq_worker_survives_a_redis_outage(tmp_path: Path, database_url: str) -> None:
    port = free_port()
    server = await asyncio.to_thread(start_redis, tmp_path, port=port)
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": server.url,
        "INTERNAL_TOKEN": "worker-test-internal-token",
        "SERVICE_TOKEN": "worker-test-service-token",
        "ACCOUNTS_JWT_PRIVATE_KEY_FILE": str(generate_rsa_key(tmp_path / "jwt.pem")),
        "LLMNET_DATA_DIR": str(tmp_path),
        "LOG_JSON": "false",
    }
    target = dict(WORKERS)["accounts-worker"]
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        worker = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "arq",
            target,
            env=env,
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    pool = await create_job_pool(server.url)
    try:
        job = await pool.enqueue_job("purge_expired_refresh_tokens", _queue_name=QUEUE)
        assert job is not None
        assert await job.result(timeout=60) == 0, log_path.read_text()

        await asyncio.to_thread(server.stop)
        await asyncio.sleep(OUTAGE_SECONDS)
        assert worker.returncode is None, log_path.read_text()
        server = await asyncio.to_thread(start_redis, tmp_path, port=port)

        job = await pool.enqueue_job("purge_expired_refresh_tokens", _queue_name=QUEUE)
        assert job is not None
        assert await job.result(timeout=30) == 0, log_path.read_text()
        assert worker.returncode is None, log_path.read_text()
        assert "Redis unavailable" in log_path.read_text()
    finally:
        await pool.aclose()
        worker.terminate()
        try:
            await asyncio.wait_for(worker.wait(), 15)
        except TimeoutError:
            worker.kill()
            await worker.wait()
        await asyncio.to_thread(server.stop)
