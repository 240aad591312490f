"""Upload throughput: a 1 GiB model version through the gateway into local storage.

Three measurements in one run: writing the same bytes straight to the storage disk (the
baseline the service cannot beat), uploading directly to the model hub, and uploading
through the gateway. The model hub's and gateway's resident memory is sampled throughout:
a streaming upload keeps it flat. Targets: >= 100 MB/s through the gateway, <= 64 MiB RSS
growth in the model hub.
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import httpx
import psutil

from tests.benchmarks.harness import bench_database, bench_user, reset_redis_db, services

SIZE = 1024**3
CHUNK = 1 << 20
BOUNDARY = "llmnet-bench-boundary"


@dataclass
class Result:
    name: str
    seconds: float
    rss_growth: dict[str, int]

    @property
    def mb_per_s(self) -> float:
        return SIZE / self.seconds / 1e6


def _safetensors_header() -> bytes:
    header = json.dumps(
        {"w": {"dtype": "F32", "shape": [SIZE // 4], "data_offsets": [0, SIZE]}}
    ).encode()
    header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header


def _part(name: str, filename: str) -> bytes:
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"; '
        f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()


async def _body() -> AsyncIterator[bytes]:
    """config + tokenizer + a 1 GiB safetensors file, generated as it is sent."""
    yield _part("files", "config.json") + json.dumps({"model_type": "llama"}).encode() + b"\r\n"
    yield _part("files", "tokenizer.json") + b'{"version": "1.0"}\r\n'
    yield _part("files", "model.safetensors") + _safetensors_header()
    block = os.urandom(CHUNK)
    for _ in range(SIZE // CHUNK):
        yield block
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


class RssSampler:
    def __init__(self, pids: dict[str, int]) -> None:
        self._processes = {name: psutil.Process(pid) for name, pid in pids.items()}
        self._start = {name: p.memory_info().rss for name, p in self._processes.items()}
        self._peak = dict(self._start)
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            for name, process in self._processes.items():
                self._peak[name] = max(self._peak[name], process.memory_info().rss)
            await asyncio.sleep(0.02)

    def __enter__(self) -> RssSampler:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()

    def growth(self) -> dict[str, int]:
        return {name: self._peak[name] - self._start[name] for name in self._processes}


async def _disk_baseline(directory: Path) -> Result:
    path = directory / "baseline.bin"
    block = os.urandom(CHUNK)
    started = time.perf_counter()
    with path.open("wb") as out:
        for _ in range(SIZE // CHUNK):
            out.write(block)
        out.flush()
        os.fsync(out.fileno())
    elapsed = time.perf_counter() - started
    path.unlink()
    return Result("disk write+fsync (base)", elapsed, {})


async def _upload(
    name: str, url: str, model_id: str, auth: dict[str, str], pids: dict[str, int]
) -> Result:
    headers = {**auth, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    with RssSampler(pids) as sampler:
        started = time.perf_counter()
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{url}/api/v1/models/{model_id}/versions",
                data=_body(),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=600),
            ) as response,
        ):
            body = await response.text()
        elapsed = time.perf_counter() - started
    if response.status != 202:
        raise RuntimeError(f"upload failed: {response.status} {body[:300]}")
    version = json.loads(body)
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        deleted = await client.delete(
            f"/api/v1/models/{model_id}/versions/{version['id']}", headers=auth
        )
        deleted.raise_for_status()
    return Result(name, elapsed, sampler.growth())


async def run() -> list[str]:
    await reset_redis_db()
    with tempfile.TemporaryDirectory() as work:
        async with bench_database() as database_url:
            with services(database_url, Path(work), ["accounts", "models_hub", "gateway"]) as bench:
                gateway = bench.urls["gateway"]
                user = await bench_user(bench, "uploader", developer=True)
                async with httpx.AsyncClient(base_url=gateway, timeout=30) as client:
                    created = await client.post(
                        "/api/v1/models", json={"name": "Big"}, headers=user.gateway_headers
                    )
                    model = created.json()
                watched = {"models_hub": bench.pids["models_hub"], "gateway": bench.pids["gateway"]}
                storage = Path(work) / "storage"
                storage.mkdir(exist_ok=True)
                results = [
                    await _disk_baseline(storage),
                    await _upload(
                        "direct to model hub",
                        bench.urls["models_hub"],
                        model["id"],
                        user.direct_headers,
                        watched,
                    ),
                    await _upload(
                        "through the gateway", gateway, model["id"], user.gateway_headers, watched
                    ),
                ]
    return _report(results)


def _report(results: list[Result]) -> list[str]:
    baseline, direct, through = results
    lines = [
        "Upload benchmark: one 1 GiB safetensors version, local storage backend",
        f"{'path':<24}{'MB/s':>8}{'vs disk':>9}{'hub RSS +MiB':>14}{'gw RSS +MiB':>13}",
    ]
    for r in results:
        hub = r.rss_growth.get("models_hub")
        gw = r.rss_growth.get("gateway")
        lines.append(
            f"{r.name:<24}{r.mb_per_s:>8.0f}{r.mb_per_s / baseline.mb_per_s:>9.2f}"
            f"{'' if hub is None else f'{hub / 2**20:.1f}':>14}"
            f"{'' if gw is None else f'{gw / 2**20:.1f}':>13}"
        )
    rate = through.mb_per_s
    growth = max(direct.rss_growth["models_hub"], through.rss_growth["models_hub"]) / 2**20
    lines.append(
        f"through the gateway: {rate:.0f} MB/s (target >= 100: "
        f"{'met' if rate >= 100 else 'MISSED'}); gateway/direct "
        f"{through.mb_per_s / direct.mb_per_s:.2f}"
    )
    lines.append(
        f"model hub peak RSS growth: {growth:.1f} MiB (target <= 64: "
        f"{'met' if growth <= 64 else 'MISSED'})"
    )
    return lines
