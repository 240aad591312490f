"""SIGTERM to real processes. A service: readiness turns red while requests are still served,
then the server stops listening, a running request finishes, an open event stream goes on for
the grace and then ends with an `error` event, and the process exits without uvicorn's
backstop having to cancel anything. A worker: a job finishing within the grace finishes; one
that does not is cancelled and runs again on the next worker."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from arq import create_pool
from arq.connections import RedisSettings

from tests.conftest import REDIS_URL, TEST_SERVERS
from tests.shared.test_events import free_port

DRAIN = 1.5
GRACE = 2.0
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": TEST_SERVERS.database_url,
        "REDIS_URL": REDIS_URL,
        "INTERNAL_TOKEN": "i" * 32,
        "SERVICE_TOKEN": "s" * 32,
        "LLMNET_DATA_DIR": str(tmp_path),
        "SHUTDOWN_DRAIN_SECONDS": str(DRAIN),
        "SHUTDOWN_GRACE_SECONDS": str(GRACE),
    }
    process = subprocess.Popen(
        [
            sys.executable, "-m", "uvicorn", "tests.shared.shutdown_probe:create_app",
            "--factory", "--port", str(port), "--timeout-graceful-shutdown", "30",
        ],
        cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert time.monotonic() < deadline, "the service did not start"
        time.sleep(0.1)
    yield process, url
    if process.poll() is None:
        process.kill()
    process.wait(10)


async def _read_stream(url: str, events: list[dict[str, str]]) -> None:
    async with (
        httpx.AsyncClient(timeout=30) as client,
        client.stream("GET", f"{url}/stream") as response,
    ):
        event: dict[str, str] = {}
        async for line in response.aiter_lines():
            if not line:
                if event:
                    events.append(event)
                event = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(": ")
                event[name] = value


async def test_sigterm_drains_then_lets_work_finish_then_ends_streams(service) -> None:  # type: ignore[no-untyped-def]
    process, url = service
    events: list[dict[str, str]] = []
    reading = asyncio.create_task(_read_stream(url, events))
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        running = asyncio.create_task(client.get("/slow", params={"seconds": DRAIN + 1}))
        await asyncio.sleep(0.5)
        sent = time.monotonic()
        process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.3)

        # Draining: red to probes, still serving new requests.
        async with httpx.AsyncClient(base_url=url, timeout=5) as fresh:
            ready = await fresh.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["status"] == "draining"
            assert (await fresh.get("/slow", params={"seconds": 0})).status_code == 200

        # After the drain: no longer listening; the running request still gets its answer.
        await asyncio.sleep(DRAIN)
        with pytest.raises(httpx.ConnectError):
            async with httpx.AsyncClient(base_url=url, timeout=5) as late:
                await late.get("/healthz")
        assert (await running).json() == {"done": True}

    await asyncio.wait_for(reading, DRAIN + GRACE + 5)
    ended = time.monotonic() - sent
    assert events[-1]["event"] == "error"
    assert json.loads(events[-1]["data"])["code"] == "shutting_down"
    assert len(events) > 5  # the stream went on through the drain and the grace
    assert DRAIN + GRACE - 0.5 <= ended <= DRAIN + GRACE + 2

    await asyncio.to_thread(process.wait, 10)
    stderr = process.stderr.read() if process.stderr else ""
    assert "timeout graceful shutdown exceeded" not in stderr


def _worker(tmp_path: Path, queue: str, grace: float) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "DATABASE_URL": TEST_SERVERS.database_url,
        "REDIS_URL": REDIS_URL,
        "INTERNAL_TOKEN": "i" * 32,
        "SERVICE_TOKEN": "s" * 32,
        "LLMNET_DATA_DIR": str(tmp_path),
        "SHUTDOWN_GRACE_SECONDS": str(grace),
        "TEST_QUEUE": queue,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "arq", "tests.shared.shutdown_worker.WorkerSettings"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


async def _until(condition: Callable[[], Awaitable[int]], seconds: float = 30) -> None:
    """Poll `condition` (a Redis read: another process writes it) until it holds."""
    for _ in range(int(seconds / 0.05)):
        if await condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


async def test_a_worker_lets_a_job_finish_within_the_grace(tmp_path: Path) -> None:
    queue, key = f"test:shutdown:{uuid.uuid4()}", f"nap:{uuid.uuid4()}"
    redis = await create_pool(RedisSettings.from_dsn(REDIS_URL))
    worker = _worker(tmp_path, queue, grace=5)
    try:
        await redis.enqueue_job("nap", key, 1.5, _queue_name=queue)
        await _until(lambda: redis.exists(f"{key}:started"))
        worker.send_signal(signal.SIGTERM)
        await asyncio.to_thread(worker.wait, 15)
        assert await redis.lrange(f"{key}:done", 0, -1) == [b"1"]
    finally:
        worker.kill()
        await redis.aclose()


async def test_a_job_still_running_after_the_grace_is_run_again(tmp_path: Path) -> None:
    queue, key = f"test:shutdown:{uuid.uuid4()}", f"nap:{uuid.uuid4()}"
    redis = await create_pool(RedisSettings.from_dsn(REDIS_URL))
    worker = _worker(tmp_path, queue, grace=1)
    try:
        await redis.enqueue_job("nap", key, 60, _queue_name=queue)
        await _until(lambda: redis.exists(f"{key}:started"))
        stopping = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        await asyncio.to_thread(worker.wait, 15)
        assert time.monotonic() - stopping < 10  # not the job's 60 s
        assert await redis.llen(f"{key}:done") == 0

        worker = _worker(tmp_path, queue, grace=1)  # the next worker runs it again
        await _until(lambda: redis.exists(f"{key}:done"))
        assert await redis.lrange(f"{key}:done", 0, -1) == [b"2"]
    finally:
        worker.kill()
        await redis.aclose()
