"""Conversation list and search with 100k stored messages, through the gateway.

A few users own conversations whose messages are bulk-loaded with COPY (100k messages by
default; `--messages N` for a quick run). One client then asks the gateway, one request at a
time, for: the first page of a user's list, the next page (cursor), a search for a word in many
messages, a search for a rare word, and a phrase search. Target: p95 < 30 ms for each.

    python -m tests.benchmarks.conversations_list [--messages 100000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import random
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg
import uvloop

from tests.benchmarks.harness import (
    bench_database,
    bench_user,
    database_answers,
    database_machine_line,
    percentile,
    reset_redis_db,
    services,
)

USERS = 4
MESSAGES_PER_CONVERSATION = 20
DEFAULT_MESSAGES = 100_000
REQUESTS = 200  # per query, after a warm-up of 20
TARGET_P95_MS = 30.0
PAGE = 20

# Words of the generated text: a few common ones, many rare ones (Zipf-like draw).
_VOCABULARY = [f"w{i:04d}" for i in range(5000)]
_COMMON, _RARE = "w0003", "w4321"
_CUMULATIVE = list(itertools.accumulate(1 / (i + 1) for i in range(len(_VOCABULARY))))


@dataclass
class Result:
    name: str
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    items: int = 0

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies, 50) * 1000

    @property
    def p95_ms(self) -> float:
        return percentile(self.latencies, 95) * 1000


def _sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choices(_VOCABULARY, cum_weights=_CUMULATIVE, k=words))


async def _seed(database_url: str, owners: list[uuid.UUID], messages: int) -> int:
    """Conversations and messages straight into the tables with COPY; returns conversations."""
    rng = random.Random(42)
    now = dt.datetime.now(dt.UTC)
    model_id = uuid.uuid4()
    conversations: list[tuple[object, ...]] = []
    rows: list[tuple[object, ...]] = []
    count = max(1, messages // MESSAGES_PER_CONVERSATION)
    for n in range(count):
        conversation_id = uuid.uuid4()
        owner = owners[n % len(owners)]
        last = now - dt.timedelta(minutes=rng.randint(0, 60 * 24 * 90))
        parent: uuid.UUID | None = None
        for m in range(MESSAGES_PER_CONVERSATION):
            message_id = uuid.uuid4()
            at = last - dt.timedelta(minutes=MESSAGES_PER_CONVERSATION - m)
            role = "user" if m % 2 == 0 else "assistant"
            rows.append(
                (message_id, conversation_id, parent, role, owner, _sentence(rng, 25),
                 "complete", model_id, "bench/model", "{}", 0, 0, at, at)
            )  # fmt: skip
            parent = message_id
        conversations.append(
            (conversation_id, owner, _sentence(rng, 5), model_id, "bench/model", "{}", parent,
             last - dt.timedelta(hours=1), last)
        )  # fmt: skip
    connection = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        await connection.copy_records_to_table(
            "conversations",
            records=conversations,
            columns=["id", "owner_id", "title", "model_id", "model_ref", "parameters",
                     "current_message_id", "created_at", "updated_at"],
        )  # fmt: skip
        await connection.copy_records_to_table(
            "messages",
            records=rows[:messages],
            columns=["id", "conversation_id", "parent_id", "role", "author_id", "content",
                     "status", "model_id", "model_ref", "parameters", "trimmed_messages",
                     "trimmed_tokens", "created_at", "updated_at"],
        )  # fmt: skip
        await connection.execute("ANALYZE conversations; ANALYZE messages")
    finally:
        await connection.close()
    return len(conversations)


async def _measure(
    session: aiohttp.ClientSession, name: str, params: dict[str, str], *, follow: bool = False
) -> Result:
    result = Result(name)
    path = "/api/v1/conversations"
    if follow:  # the second page: the cursor of the first
        async with session.get(path, params={**params, "limit": str(PAGE)}) as response:
            params = {**params, "cursor": (await response.json())["next_cursor"]}
    for n in range(REQUESTS + 20):
        started = time.perf_counter()
        async with session.get(path, params={**params, "limit": str(PAGE)}) as response:
            body = await response.json()
            elapsed = time.perf_counter() - started
            if response.status != 200:
                result.errors += 1
                continue
        if n >= 20:
            result.latencies.append(elapsed)
            result.items = sum(len(g["items"]) for g in body["groups"])
    return result


async def run(messages: int = DEFAULT_MESSAGES) -> list[str]:
    await reset_redis_db()
    with tempfile.TemporaryDirectory() as work:
        async with bench_database() as database_url:
            with services(database_url, Path(work), ["accounts", "inference", "gateway"]) as bench:
                users = [await bench_user(bench, f"bench{i}") for i in range(USERS)]
                async with aiohttp.ClientSession(bench.urls["gateway"]) as probe:
                    owners = []
                    for user in users:
                        async with probe.get("/api/v1/users/me", headers=user.gateway_headers) as r:
                            owners.append(uuid.UUID((await r.json())["id"]))
                started = time.perf_counter()
                conversations = await _seed(database_url, owners, messages)
                seeded = time.perf_counter() - started
                async with aiohttp.ClientSession(
                    bench.urls["gateway"], headers=users[0].gateway_headers
                ) as session:
                    results = [
                        await _measure(session, "list, first page", {}),
                        await _measure(session, "list, next page", {}, follow=True),
                        await _measure(session, f"search common word ({_COMMON})", {"q": _COMMON}),
                        await _measure(session, f"search rare word ({_RARE})", {"q": _RARE}),
                        await _measure(session, "search phrase", {"q": f'"{_COMMON} {_COMMON}"'}),
                    ]
            machine = await database_machine_line(database_url)
    return _report(results, messages, conversations, seeded, machine)


def _report(
    results: list[Result], messages: int, conversations: int, seeded: float, machine: str
) -> list[str]:
    lines = [
        f"Conversation list/search through the gateway: {messages} messages in {conversations} "
        f"conversations of {USERS} users (seeded with COPY in {seeded:.1f} s); {REQUESTS} "
        "sequential requests each",
        machine,
        f"{'query':<34}{'p50 ms':>9}{'p95 ms':>9}{'items':>7}{'errors':>8}",
    ]
    for r in results:
        lines.append(f"{r.name:<34}{r.p50_ms:>9.2f}{r.p95_ms:>9.2f}{r.items:>7}{r.errors:>8}")
    worst = max(r.p95_ms for r in results)
    verdict = "met" if worst < TARGET_P95_MS and not any(r.errors for r in results) else "MISSED"
    lines.append(f"worst p95: {worst:.2f} ms  (target < {TARGET_P95_MS:.0f} ms: {verdict})")
    return lines


async def _main(messages: int) -> int:
    if not await database_answers():
        print("benchmarks need PostgreSQL (TEST_DATABASE_URL) and Redis (TEST_REDIS_URL)")
        return 2
    print("\n".join(await run(messages)), flush=True)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=DEFAULT_MESSAGES)
    sys.exit(uvloop.run(_main(parser.parse_args().messages)))
