"""The feed at scale, through the gateway: home timelines, fan-out, trending, live delivery.

Seeds (straight into the tables with COPY, not through the API) `--people` people, `--models`
models, `--posts` posts and a follow graph of ~`--follows` models per person, plus one model
followed by `--fanout-followers` people. Services and the feed worker run as real processes.
Then measures through the gateway:

- home timeline, first page, for random people (p50/p95/p99; the first read of each person
  builds their timeline in Redis and is left out): target p95 < 25 ms;
- fan-out: a post by the model with many followers, from its commit to the moment the last
  follower's (built) home timeline has it: target < 2 s;
- the trending page (p95): target < 50 ms;
- `--sse-clients` live feed (SSE) clients receiving `--sse-posts` published posts: delivered
  must equal published; p95 delivery delay target < 500 ms.

    python -m tests.benchmarks.feed                                # full scale (minutes)
    python -m tests.benchmarks.feed --people 300 --models 50 --posts 3000 --follows 10 \\
        --fanout-followers 200 --sse-clients 20 --sse-posts 10     # a quick run
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg
import uvloop
from redis.asyncio import Redis
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.feed.models import AuthorKind, ModelFollow, Post, PostStatus
from services.feed.posts.events import record_published
from services.feed.recommendations.store import user_key
from services.feed.timelines.store import home_key
from shared.auth.service_credentials import ServiceName
from shared.auth.tokens import TokenSigner, TokenType
from shared.db import create_engine, create_sessionmaker, session_scope, utcnow
from shared.events import EventRelay
from tests.benchmarks.harness import (
    REDIS_URL,
    SERVICE_TOKENS,
    bench_database,
    database_answers,
    database_machine_line,
    percentile,
    reset_redis_db,
    services,
)

TARGET_HOME_P95_MS = 25.0
TARGET_TRENDING_P95_MS = 50.0
TARGET_FANOUT_S = 2.0
TARGET_DELIVERY_P95_MS = 500.0
OWNERS = 200  # people who own the models
HOME_READS = 300
TRENDING_READS = 200
CONCURRENCY = 8


@dataclass(frozen=True)
class Scale:
    people: int = 10_000
    models: int = 2_000
    posts: int = 200_000
    follows: int = 100
    fanout_followers: int = 5_000
    sse_clients: int = 200
    sse_posts: int = 100


@dataclass
class Seeded:
    people: list[uuid.UUID]
    models: list[uuid.UUID]
    owners: dict[uuid.UUID, uuid.UUID]  # model -> owner
    fanout_followers: list[uuid.UUID]
    seconds: float = 0.0


@dataclass
class Timings:
    home: list[float] = field(default_factory=list)
    trending: list[float] = field(default_factory=list)
    fanout_s: float = float("nan")
    delays: list[float] = field(default_factory=list)
    delivered: int = 0
    expected: int = 0
    errors: int = 0
    startup_s: float = float("nan")


async def _seed(database_url: str, scale: Scale) -> Seeded:
    rng = random.Random(7)
    started = time.perf_counter()
    people = [uuid.uuid4() for _ in range(scale.people)]
    owner_ids = [uuid.uuid4() for _ in range(OWNERS)]
    models = [uuid.uuid4() for _ in range(scale.models)]
    owners = {m: owner_ids[i % OWNERS] for i, m in enumerate(models)}
    now = dt.datetime.now(dt.UTC)
    connection = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        await connection.copy_records_to_table(
            "models",
            columns=[
                "id", "owner_id", "owner_username", "slug", "name", "description", "card",
                "tags", "visibility", "source", "status", "default_params", "likes_count",
                "usage_count", "tokens_generated", "created_at", "updated_at",
            ],
            records=[
                (m, owners[m], f"owner{owner_ids.index(owners[m])}", f"m{i}", f"m{i}", "", "",
                 [], "public", "upload", "ready", "{}", 0, 0, 0, now, now)
                for i, m in enumerate(models)
            ],
        )  # fmt: skip
        posts = []
        for n in range(scale.posts):
            model = models[n % len(models)]
            at = now - dt.timedelta(seconds=scale.posts - n)
            post_id = uuid.uuid4()
            posts.append(
                (post_id, "model", model, "x/y", owners[model], "owner", owners[model],
                 f"seed-{n}", "{}", "seeded post", "published", post_id, 0, 0, 0, False,
                 at, at, at)
            )  # fmt: skip
        await connection.copy_records_to_table(
            "posts",
            columns=[
                "id", "author_kind", "model_id", "model_ref", "owner_id", "owner_username",
                "creator_id", "idempotency_key", "parameters", "content", "status", "root_id",
                "depth", "like_count", "reply_count", "deleted", "created_at", "updated_at",
                "published_at",
            ],
            records=posts,
        )  # fmt: skip
        fanout_model = models[0]
        fanout_followers = people[: scale.fanout_followers]
        follows: set[tuple[uuid.UUID, uuid.UUID]] = {(p, fanout_model) for p in fanout_followers}
        for person in people:
            for model in rng.sample(models, min(scale.follows, len(models))):
                follows.add((person, model))
        await connection.copy_records_to_table(
            "model_follows", columns=["user_id", "model_id", "created_at"],
            records=[(u, m, now) for u, m in follows],
        )  # fmt: skip
        await connection.execute("ANALYZE posts; ANALYZE model_follows; ANALYZE models")
    finally:
        await connection.close()
    return Seeded(people, models, owners, fanout_followers, time.perf_counter() - started)


def _signer(work: Path) -> TokenSigner:
    return TokenSigner((work / "jwt.pem").read_bytes(), issuer="llmnet", audience="llmnet")


def _token(signer: TokenSigner, user: uuid.UUID) -> dict[str, str]:
    token, _ = signer.issue(
        str(user), TokenType.ACCESS, 3600, extra={"username": f"p{user.hex[:8]}", "role": "user"}
    )
    return {"Authorization": f"Bearer {token}"}


@contextlib.contextmanager
def _worker(env: dict[str, str]) -> Iterator[None]:
    process = subprocess.Popen(
        [sys.executable, "-m", "arq", "services.feed.worker.WorkerSettings"],
        env={**env, "SERVICE_TOKEN": SERVICE_TOKENS[ServiceName.FEED]},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield None
    finally:
        process.terminate()
        process.wait(timeout=30)


async def _startup_jobs_done(redis: Redis, seeded: Seeded, within: float = 300.0) -> float:
    """Seconds until the worker's startup recommendations are stored: they take both CPUs for
    a while at this scale, and the reads are measured at steady state, after them."""
    started = time.perf_counter()
    key = user_key(str(seeded.people[0]))
    while time.perf_counter() - started < within:
        if await redis.exists(key):
            break
        await asyncio.sleep(0.5)
    return time.perf_counter() - started


async def _timed_get(
    session: aiohttp.ClientSession, path: str, headers: dict[str, str], into: list[float] | None
) -> bool:
    started = time.perf_counter()
    async with session.get(path, headers=headers) as response:
        await response.read()
        if into is not None:
            into.append(time.perf_counter() - started)
        return response.status == 200


async def _in_parallel(jobs: list[Awaitable[bool]], limit: int) -> list[bool]:
    gate = asyncio.Semaphore(limit)

    async def one(job: Awaitable[bool]) -> bool:
        async with gate:
            return bool(await job)

    return list(await asyncio.gather(*(one(j) for j in jobs)))


Sessions = async_sessionmaker[AsyncSession]


async def _publish(
    sessionmaker: Sessions, model: uuid.UUID, owner: uuid.UUID, text: str
) -> tuple[uuid.UUID, float]:
    """A published root post, committed with its `post.published` event as the generation job
    commits it; returns its id and the commit time (perf_counter)."""
    async with session_scope(sessionmaker) as session:
        post_id = uuid.uuid4()
        post = Post(
            id=post_id, author_kind=AuthorKind.MODEL, model_id=model, model_ref="x/y",
            owner_id=owner, owner_username="owner", creator_id=owner,
            idempotency_key=f"bench-{post_id}", content=text, status=PostStatus.PUBLISHED,
            root_id=post_id, depth=0, parameters={}, published_at=utcnow(),
        )  # fmt: skip
        session.add(post)
        await session.flush()
        record_published(session, post, None)
    return post_id, time.perf_counter()


async def _fan_out(redis: Redis, sessionmaker: Sessions, seeded: Seeded) -> float:
    model = seeded.models[0]
    post_id, committed = await _publish(sessionmaker, model, seeded.owners[model], "probe")
    keys = [home_key(u) for u in seeded.fanout_followers]
    deadline = time.perf_counter() + 60
    while time.perf_counter() < deadline:
        async with redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.zscore(key, str(post_id))
            scores = await pipe.execute()
        if all(score is not None for score in scores):
            return time.perf_counter() - committed
        await asyncio.sleep(0.005)
    return float("nan")


async def _sse(
    gateway: str,
    signer: TokenSigner,
    sessionmaker: Sessions,
    seeded: Seeded,
    scale: Scale,
    t: Timings,
) -> None:
    model = seeded.models[1]
    listeners = seeded.people[: scale.sse_clients]
    # Every listener follows the publishing model (added before they connect).
    async with session_scope(sessionmaker) as session:
        await session.execute(
            insert(ModelFollow)
            .values([{"user_id": u, "model_id": model} for u in listeners])
            .on_conflict_do_nothing()
        )
    sent: dict[str, float] = {}
    received: list[dict[str, float]] = [{} for _ in listeners]
    ready = [asyncio.Event() for _ in listeners]
    done = asyncio.Event()

    async def listen(n: int, client: aiohttp.ClientSession) -> None:
        headers = _token(signer, listeners[n])
        async with client.get("/api/v1/feed/stream", headers=headers) as response:
            event = ""
            async for raw in response.content:
                line = raw.decode().rstrip("\n")
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:") and event == "ready":
                    ready[n].set()
                elif line.startswith("data:") and event == "post":
                    body = json.loads(line[5:])
                    received[n].setdefault(body["content"], time.perf_counter())
                if done.is_set():
                    return

    timeout = aiohttp.ClientTimeout(total=None, sock_read=120)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(gateway, timeout=timeout, connector=connector) as client:
        tasks = [asyncio.create_task(listen(n, client)) for n in range(len(listeners))]
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in ready)), 120)
        for n in range(scale.sse_posts):
            text = f"live {n}"
            _, sent[text] = await _publish(sessionmaker, model, seeded.owners[model], text)
            await asyncio.sleep(0.02)
        deadline = time.perf_counter() + 15
        while time.perf_counter() < deadline:
            if all(len(r) >= len(sent) for r in received):
                break
            await asyncio.sleep(0.05)
        done.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    t.expected = len(sent) * len(listeners)
    t.delivered = sum(len(set(r) & set(sent)) for r in received)
    t.delays = [r[text] - sent[text] for r in received for text in r if text in sent]


async def run(scale: Scale | None = None) -> list[str]:
    scale = scale or Scale()
    await reset_redis_db()
    timings = Timings()
    rng = random.Random(11)
    with tempfile.TemporaryDirectory() as work:
        async with bench_database() as database_url:
            seeded = await _seed(database_url, scale)
            names = ["accounts", "models_hub", "feed", "gateway"]
            with services(database_url, Path(work), names) as bench, _worker(bench.env):
                signer = _signer(Path(work))
                engine = create_engine(database_url, pool_size=5)
                sessionmaker = create_sessionmaker(engine)
                redis = Redis.from_url(REDIS_URL, decode_responses=True)
                # Publishing here is like the generation job: its commit wakes a relay in the
                # same process, so events go out at once.
                relay = asyncio.create_task(EventRelay(sessionmaker, redis).run())
                gateway = bench.urls["gateway"]
                try:
                    timings.startup_s = await _startup_jobs_done(redis, seeded)
                    async with aiohttp.ClientSession(gateway) as session:
                        readers = rng.sample(seeded.people, min(HOME_READS, len(seeded.people)))
                        heads = {u: _token(signer, u) for u in {*readers, *seeded.fanout_followers}}
                        # First reads build the timelines (left out of the numbers).
                        oks = await _in_parallel(
                            [_timed_get(session, "/api/v1/feed/home", heads[u], None)
                             for u in {*readers, *seeded.fanout_followers}],
                            CONCURRENCY,
                        )  # fmt: skip
                        timings.errors += oks.count(False)
                        for user in readers:
                            ok = await _timed_get(
                                session, "/api/v1/feed/home", heads[user], timings.home
                            )
                            timings.errors += not ok
                        await asyncio.sleep(2)  # the worker's consumers are up
                        timings.fanout_s = await _fan_out(redis, sessionmaker, seeded)
                        for n in range(TRENDING_READS + 20):
                            into = timings.trending if n >= 20 else None
                            ok = await _timed_get(session, "/api/v1/feed/trending", {}, into)
                            timings.errors += not ok
                    await _sse(gateway, signer, sessionmaker, seeded, scale, timings)
                finally:
                    relay.cancel()
                    await asyncio.gather(relay, return_exceptions=True)
                    await redis.aclose()
                    await engine.dispose()
            machine = await database_machine_line(database_url)
    return _report(scale, seeded, timings, machine)


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def _report(scale: Scale, seeded: Seeded, t: Timings, machine: str) -> list[str]:
    ms = 1000
    home = [percentile(t.home, q) * ms for q in (50, 95, 99)]
    trending = percentile(t.trending, 95) * ms
    delay = percentile(t.delays, 95) * ms if t.delays else float("nan")
    return [
        f"Feed through the gateway: {scale.people} people, {scale.models} models, {scale.posts} "
        f"posts, ~{scale.follows} follows each (seeded with COPY in {seeded.seconds:.1f} s; "
        f"the worker's startup recommendations took {t.startup_s:.1f} s, measured after them)",
        machine,
        f"home timeline first page ({len(t.home)} people): p50 {home[0]:.2f} ms, "
        f"p95 {home[1]:.2f} ms, p99 {home[2]:.2f} ms  "
        f"(target p95 < {TARGET_HOME_P95_MS:.0f} ms: {_verdict(home[1] < TARGET_HOME_P95_MS)})",
        f"fan-out to {len(seeded.fanout_followers)} followers: {t.fanout_s:.3f} s  "
        f"(target < {TARGET_FANOUT_S:.0f} s: {_verdict(t.fanout_s < TARGET_FANOUT_S)})",
        f"trending page: p95 {trending:.2f} ms  (target < {TARGET_TRENDING_P95_MS:.0f} ms: "
        f"{_verdict(trending < TARGET_TRENDING_P95_MS)})",
        f"live feed: {scale.sse_clients} SSE clients x {scale.sse_posts} posts: delivered "
        f"{t.delivered}/{t.expected}, p95 delay {delay:.1f} ms  (target all delivered and "
        f"< {TARGET_DELIVERY_P95_MS:.0f} ms: "
        f"{_verdict(t.delivered == t.expected and delay < TARGET_DELIVERY_P95_MS)})",
        f"errors: {t.errors}",
    ]


async def _main(scale: Scale) -> int:
    if not await database_answers():
        print("benchmarks need PostgreSQL (TEST_DATABASE_URL) and Redis (TEST_REDIS_URL)")
        return 2
    print("\n".join(await run(scale)), flush=True)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = Scale()
    for name in Scale.__dataclass_fields__:
        flag = "--" + name.replace("_", "-")
        parser.add_argument(flag, type=int, default=getattr(defaults, name))
    sys.exit(uvloop.run(_main(Scale(**vars(parser.parse_args())))))
