"""Gateway overhead: one authenticated light GET, direct to accounts and through the gateway.

The direct request carries the identity headers the gateway would forward, so both paths do
the same work in accounts; the difference is the gateway's (JWT check, Redis admission,
proxying). Targets: at most +3 ms at p50, and at least 50% of the direct requests/s at 32
concurrent clients.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from tests.benchmarks.harness import (
    bench_database,
    bench_user,
    percentile,
    reset_redis_db,
    services,
)

PATH = "/api/v1/users/me"
REQUESTS_PER_ROUND = {1: 150, 32: 640}  # split evenly across the clients
ROUNDS = 4  # direct and gateway alternate, so drifting machine load hits both alike


@dataclass
class Result:
    name: str
    concurrency: int
    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0
    errors: int = 0

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies, 50) * 1000

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies, 99) * 1000

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.elapsed


async def _round(session: aiohttp.ClientSession, result: Result) -> None:
    per_client = REQUESTS_PER_ROUND[result.concurrency] // result.concurrency

    async def client() -> None:
        for _ in range(per_client):
            started = time.perf_counter()
            async with session.get(PATH) as response:
                await response.read()
                if response.status != 200:
                    result.errors += 1
            result.latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(result.concurrency)))
    result.elapsed += time.perf_counter() - started


async def _compare(
    targets: dict[str, tuple[str, dict[str, str]]], concurrency: int
) -> list[Result]:
    results = {name: Result(name, concurrency) for name in targets}
    sessions = {
        name: aiohttp.ClientSession(
            base_url=url,
            headers=headers,
            connector=aiohttp.TCPConnector(limit=concurrency),
        )
        for name, (url, headers) in targets.items()
    }
    try:
        for name, session in sessions.items():  # warm up connections and caches
            await _round(session, Result(name, concurrency))
        for _ in range(ROUNDS):
            for name, session in sessions.items():
                await _round(session, results[name])
    finally:
        for session in sessions.values():
            await session.close()
    return list(results.values())


async def run() -> list[str]:
    await reset_redis_db()
    with tempfile.TemporaryDirectory() as work:
        async with bench_database() as database_url:
            with services(database_url, Path(work), ["accounts", "gateway"]) as bench:
                user = await bench_user(bench, "bench")
                targets = {
                    "direct": (bench.urls["accounts"], user.direct_headers),
                    "gateway": (bench.urls["gateway"], user.gateway_headers),
                }
                results: list[Result] = []
                for concurrency in (1, 32):
                    results += await _compare(targets, concurrency)
    return _report(results)


def _report(results: list[Result]) -> list[str]:
    lines = [
        "Gateway benchmark: GET /api/v1/users/me (JWT), direct vs through the gateway",
        f"{'path':<9}{'clients':>8}{'p50 ms':>9}{'p99 ms':>9}{'req/s':>9}{'errors':>8}",
    ]
    for r in results:
        lines.append(
            f"{r.name:<9}{r.concurrency:>8}{r.p50_ms:>9.2f}{r.p99_ms:>9.2f}"
            f"{r.rps:>9.0f}{r.errors:>8}"
        )
    by_key = {(r.name, r.concurrency): r for r in results}
    single = by_key["gateway", 1].p50_ms - by_key["direct", 1].p50_ms
    share = by_key["gateway", 32].rps / by_key["direct", 32].rps
    lines.append(
        f"latency added at p50, 1 client:  {single:+.2f} ms  (target <= +3 ms: "
        f"{'met' if single <= 3 else 'MISSED'})"
    )
    lines.append(
        f"throughput kept, 32 clients:    {share:.0%}  (target >= 50%: "
        f"{'met' if share >= 0.5 else 'MISSED'})"
    )
    return lines
