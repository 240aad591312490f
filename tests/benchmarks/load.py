"""Load and soak: the live feed and inference streams at once, through the gateway.

`--listeners` live-feed (SSE) clients follow the demo model while `--streams` streaming chat
completions (64 greedy tokens each, one after another per stream) run for `--seconds`, and the
model publishes a post every `--post-every` seconds (committed with its event as the
generation job commits one). The services and the feed worker are real processes. Reported:
posts delivered against published x listeners (target: equal), errors on either side (target:
none), the p95 delivery delay, the inference requests, tokens/s and TTFT p95, and each
service's resident memory after a 15 s warm-up under the same load and after the run (target:
growth <= 10%).

Limits raised for the run: the gateway's per-user rate limit (the harness raises it for every
benchmark) and the inference service's concurrent generations per user (64); the streams
belong to four users, eight each, and the listeners are 200 different people.

    python -m tests.benchmarks.load [--seconds 60] [--listeners 200] [--streams 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import psutil
import uvloop
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from services.feed.models import ModelFollow
from services.models_hub.models import Model
from services.models_hub.seed import DEMO_SLUG
from shared.auth.tokens import TokenSigner
from shared.db import create_engine, create_sessionmaker, session_scope
from shared.events import EventRelay
from tests.benchmarks.feed import Sessions, _publish, _signer, _token, _worker
from tests.benchmarks.harness import (
    REDIS_URL,
    BenchUser,
    bench_database,
    bench_user,
    database_answers,
    machine_line,
    percentile,
    reset_redis_db,
    services,
)
from tests.benchmarks.inference import SERVICE_ENV, _prepare_model, _scoped_environ

SECONDS = 60.0
LISTENERS = 200
STREAMS = 32
STREAM_USERS = 4
POST_EVERY = 0.5
MAX_TOKENS = 64
WARMUP_SECONDS = 15.0
TARGET_GROWTH = 0.10
PROMPTS = ["Tell me about lighthouses.", "Why is the sky blue?", "Name three rivers."]


@dataclass
class Load:
    published: dict[str, float] = field(default_factory=dict)  # text -> commit time
    received: list[dict[str, float]] = field(default_factory=list)  # per listener
    feed_errors: list[str] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)
    tokens: int = 0
    requests: int = 0
    inference_errors: list[str] = field(default_factory=list)
    elapsed: float = 0.0


async def _listen(
    client: aiohttp.ClientSession,
    headers: dict[str, str],
    mine: dict[str, float],
    ready: asyncio.Event,
    load: Load,
) -> None:
    try:
        async with client.get("/api/v1/feed/stream", headers=headers) as response:
            if response.status != 200:
                load.feed_errors.append(f"stream: {response.status}")
                return
            event = ""
            async for raw in response.content:
                line = raw.decode().rstrip("\n")
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:") and event == "ready":
                    ready.set()
                elif line.startswith("data:") and event == "post":
                    mine.setdefault(json.loads(line[5:])["content"], time.perf_counter())
                elif line.startswith("data:") and event == "error":
                    load.feed_errors.append(f"stream error event: {line[5:].strip()}")
    except aiohttp.ClientError as exc:
        load.feed_errors.append(f"stream: {type(exc).__name__}: {exc}")


async def _completion(
    client: aiohttp.ClientSession, headers: dict[str, str], model: str, prompt: str, load: Load
) -> None:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "temperature": 0,
        "max_tokens": MAX_TOKENS,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    sent = time.perf_counter()
    first: float | None = None
    try:
        async with client.post("/v1/chat/completions", json=body, headers=headers) as response:
            if response.status != 200:
                load.inference_errors.append(f"{response.status}: {(await response.text())[:200]}")
                return
            async for line in response.content:
                data = line.decode().strip()
                if not data.startswith("data:") or data == "data: [DONE]":
                    continue
                chunk = json.loads(data[5:])
                if "error" in chunk:
                    load.inference_errors.append(f"stream error: {chunk['error']}")
                    return
                choices = chunk.get("choices") or []
                if first is None and choices and choices[0]["delta"].get("content"):
                    first = time.perf_counter() - sent
                if chunk.get("usage"):
                    load.tokens += chunk["usage"]["completion_tokens"]
    except aiohttp.ClientError as exc:
        load.inference_errors.append(f"{type(exc).__name__}: {exc}")
        return
    load.requests += 1
    if first is not None:
        load.ttfts.append(first)


async def _publisher(
    sessionmaker: Sessions, model: uuid.UUID, owner: uuid.UUID, until: float, every: float,
    load: Load, label: str,
) -> None:  # fmt: skip
    n = 0
    while time.perf_counter() < until:
        text = f"{label} {n}"
        _, load.published[text] = await _publish(sessionmaker, model, owner, text)
        n += 1
        await asyncio.sleep(every)


async def _all_delivered(load: Load, within: float = 15.0) -> None:
    deadline = time.perf_counter() + within
    while time.perf_counter() < deadline:
        if all(len(r) >= len(load.published) for r in load.received):
            return
        await asyncio.sleep(0.1)


def _rss(pids: dict[str, int]) -> dict[str, int]:
    return {name: psutil.Process(pid).memory_info().rss for name, pid in pids.items()}


async def _demo_model(sessionmaker: Sessions) -> tuple[uuid.UUID, uuid.UUID]:
    async with session_scope(sessionmaker) as session:
        row = (
            await session.execute(select(Model.id, Model.owner_id).where(Model.slug == DEMO_SLUG))
        ).one()
    return row[0], row[1]


async def run(
    seconds: float = SECONDS,
    listeners: int = LISTENERS,
    streams: int = STREAMS,
    post_every: float = POST_EVERY,
) -> list[str]:
    await reset_redis_db()
    load = Load(received=[{} for _ in range(listeners)])
    env = {**SERVICE_ENV, "INFERENCE_MAX_CONCURRENT_PER_USER": "64"}
    with tempfile.TemporaryDirectory() as tmp, _scoped_environ(env):
        async with bench_database() as database_url:
            names = ["accounts", "models_hub", "inference", "feed", "gateway"]
            with services(database_url, Path(tmp), names) as bench, _worker(bench.env):
                ref, _ = await _prepare_model(bench)
                users = [await bench_user(bench, f"loader{n}") for n in range(STREAM_USERS)]
                engine = create_engine(database_url, pool_size=5)
                sessionmaker = create_sessionmaker(engine)
                redis = Redis.from_url(REDIS_URL, decode_responses=True)
                relay = asyncio.create_task(EventRelay(sessionmaker, redis).run())
                try:
                    model_id, owner_id = await _demo_model(sessionmaker)
                    people = [uuid.uuid4() for _ in range(listeners)]
                    async with session_scope(sessionmaker) as session:
                        await session.execute(
                            insert(ModelFollow).values(
                                [{"user_id": p, "model_id": model_id} for p in people]
                            )
                        )
                    signer = _signer(Path(tmp))
                    before, after = await _drive(
                        bench.urls["gateway"], bench.pids, ref, users, people, signer,
                        sessionmaker, model_id, owner_id, seconds, streams, post_every, load,
                    )  # fmt: skip
                finally:
                    relay.cancel()
                    await asyncio.gather(relay, return_exceptions=True)
                    await redis.aclose()
                    await engine.dispose()
    return _report(load, before, after, seconds, listeners, streams, post_every)


async def _drive(
    gateway: str,
    pids: dict[str, int],
    model: str,
    users: list[BenchUser],
    people: list[uuid.UUID],
    signer: TokenSigner,
    sessionmaker: Sessions,
    model_id: uuid.UUID,
    owner_id: uuid.UUID,
    seconds: float,
    streams: int,
    post_every: float,
    load: Load,
) -> tuple[dict[str, int], dict[str, int]]:
    timeout = aiohttp.ClientTimeout(total=None, sock_read=120)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(gateway, timeout=timeout, connector=connector) as client:
        ready = [asyncio.Event() for _ in people]
        listening = [
            asyncio.create_task(
                _listen(client, _token(signer, p), load.received[n], ready[n], load)
            )
            for n, p in enumerate(people)
        ]
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in ready)), 120)

        async def phase(seconds: float, into: Load, label: str) -> None:
            until = time.perf_counter() + seconds

            async def stream(n: int) -> None:
                headers = users[n % len(users)].gateway_headers
                k = 0
                while time.perf_counter() < until:
                    prompt = PROMPTS[(n + k) % len(PROMPTS)]
                    await _completion(client, headers, model, prompt, into)
                    k += 1

            await asyncio.gather(
                _publisher(sessionmaker, model_id, owner_id, until, post_every, load, label),
                *(stream(n) for n in range(streams)),
            )

        # Warm-up under the same load (the model loads, the batch and its KV buffers reach
        # their working size); memory is read after it, so growth is what the run added.
        await phase(WARMUP_SECONDS, Load(), "warm-up")
        await _all_delivered(load)
        load.published.clear()
        for mine in load.received:
            mine.clear()
        before = _rss(pids)

        started = time.perf_counter()
        await phase(seconds, load, "load")
        load.elapsed = time.perf_counter() - started
        await _all_delivered(load)
        for task in listening:
            task.cancel()
        await asyncio.gather(*listening, return_exceptions=True)
    await asyncio.sleep(2)  # the services let go of the closed streams
    return before, _rss(pids)


def _report(
    load: Load,
    before: dict[str, int],
    after: dict[str, int],
    seconds: float,
    listeners: int,
    streams: int,
    post_every: float,
) -> list[str]:
    published = set(load.published)
    expected = len(published) * listeners
    delivered = sum(len(set(r) & published) for r in load.received)
    delays = [r[t] - load.published[t] for r in load.received for t in r if t in published]
    delay_p95 = percentile(delays, 95) * 1000 if delays else float("nan")
    errors = len(load.feed_errors) + len(load.inference_errors)
    growth = {name: after[name] / before[name] - 1 for name in before}
    worst = max(growth.values())
    ok = delivered == expected and errors == 0 and worst <= TARGET_GROWTH
    lines = [
        f"Load: {listeners} live-feed clients and {streams} inference streams through the "
        f"gateway for {seconds:.0f} s, a post every {post_every:g} s (demo model, "
        f"max_tokens {MAX_TOKENS})",
        machine_line(),
        f"live feed: {len(published)} posts, delivered {delivered}/{expected}, p95 delay "
        f"{delay_p95:.0f} ms, errors {len(load.feed_errors)}",
        f"inference: {load.requests} completions, {load.tokens / load.elapsed:.1f} tok/s, "
        f"TTFT p95 {percentile(load.ttfts, 95) * 1000:.0f} ms, errors "
        f"{len(load.inference_errors)}",
        "resident memory after warm-up -> after the run: "
        + ", ".join(
            f"{name} {before[name] / 2**20:.0f} -> {after[name] / 2**20:.0f} MiB "
            f"({growth[name]:+.1%})"
            for name in before
        ),
        f"targets (all delivered, no errors, memory growth <= {TARGET_GROWTH:.0%}): "
        f"{'met' if ok else 'MISSED'}",
    ]
    first_error = next(iter(load.feed_errors + load.inference_errors), None)
    if first_error:
        lines.append(f"first error: {first_error}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=SECONDS)
    parser.add_argument("--listeners", type=int, default=LISTENERS)
    parser.add_argument("--streams", type=int, default=STREAMS)
    parser.add_argument("--post-every", type=float, default=POST_EVERY)
    args = parser.parse_args()

    async def go() -> int:
        if not await database_answers():
            print("benchmarks need PostgreSQL (TEST_DATABASE_URL) and Redis (TEST_REDIS_URL)")
            return 2
        lines = await run(args.seconds, args.listeners, args.streams, args.post_every)
        print("\n".join(lines), flush=True)
        return 0

    return uvloop.run(go())


if __name__ == "__main__":
    sys.exit(main())
