"""Conversations: 16 concurrent conversations of 6 turns each through the gateway, against the
same prompts sent to the raw `/v1/chat/completions` in the same run.

The demo model (SmolLM2-135M-Instruct, seeded and validated as `tests.benchmarks.inference`
does) answers greedily, `max_tokens` 32 per turn. Each conversation client sends its 6 turns one
after the other (`POST .../messages`, SSE), all 16 clients at once: the platform builds each
turn's context from the stored history, streams through the answer's Redis stream, and stores
every message. The raw phase replays exactly the same chat histories (the conversation's own
earlier answers included) to `/v1/chat/completions` with 16 concurrent clients, 6 requests each.
The prefix cache is off for both (the replayed prompts would otherwise come from it whole).
After an untimed conversation run (the warm-up), the phases run A-B-B-A (conversations, raw,
raw, conversations) and each reports both its runs.
Per request: time to first token from the moment it was sent (first `delta` event / first
content chunk), the completion tokens. Targets: conversation tokens/s >= 0.9x raw, and TTFT p50
at most 50 ms above raw's. At 16 conversations the time to first token is mostly queueing for
the prefill of 16 histories, and how the arrivals fall into prefill batches moves each run's
p50 by a few hundred ms either way (each run's p50 is printed); so the same A-B-B-A also runs
with one conversation, where nothing queues and the difference is the conversation path's own
work per turn.

    python -m tests.benchmarks.conversations_stream [--conversations 16] [--turns 6]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import uvloop

from tests.benchmarks.harness import (
    bench_database,
    bench_user,
    database_answers,
    machine_line,
    percentile,
    reset_redis_db,
    services,
)
from tests.benchmarks.inference import (
    SERVICE_ENV,
    _prepare_model,
    _scoped_environ,
    chosen_configuration,
)

CONVERSATIONS = 16
TURNS = 6
MAX_TOKENS = 32
TARGET_THROUGHPUT_RATIO = 0.9
TARGET_TTFT_OVERHEAD_MS = 50.0
QUESTIONS = [
    "Tell me about lighthouses.",
    "Why were they built on rocks?",
    "Who kept them running?",
    "What happened in storms?",
    "Are any still in use today?",
    "Summarise what you told me.",
]


@dataclass
class Sample:
    ttft: float | None = None
    tokens: int = 0
    error: str | None = None


@dataclass
class Phase:
    name: str
    samples: list[Sample] = field(default_factory=list)
    elapsed: float = 0.0
    run_p50s: list[float] = field(default_factory=list)  # TTFT p50 of each of its runs, ms

    def add_run(self, samples: list[Sample], elapsed: float) -> None:
        self.samples += samples
        self.elapsed += elapsed
        ttfts = [s.ttft for s in samples if s.error is None and s.ttft is not None]
        self.run_p50s.append(percentile(ttfts, 50) * 1000 if ttfts else float("nan"))

    @property
    def ok(self) -> list[Sample]:
        return [s for s in self.samples if s.error is None and s.ttft is not None]

    @property
    def errors(self) -> int:
        return len(self.samples) - len(self.ok)

    def ttft_ms(self, q: float) -> float:
        return percentile([s.ttft for s in self.ok if s.ttft is not None], q) * 1000

    @property
    def tokens(self) -> int:
        return sum(s.tokens for s in self.ok)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.elapsed if self.elapsed > 0 else float("nan")


def _events(buffer: str) -> tuple[list[tuple[str, str]], str]:
    """Complete SSE events (event, data) in `buffer`, and what is left of it."""
    events = []
    while "\n\n" in buffer:
        block, buffer = buffer.split("\n\n", 1)
        name, data = "message", ""
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data = line[5:].strip()
        if data:
            events.append((name, data))
    return events, buffer


async def _turn(
    session: aiohttp.ClientSession, conversation_id: str, question: str
) -> tuple[Sample, str]:
    """One turn as a stream; the sample and the answer's text."""
    sample, text = Sample(), ""
    sent = time.perf_counter()
    try:
        async with session.post(
            f"/api/v1/conversations/{conversation_id}/messages",
            json={"content": question},
            headers={"Accept": "text/event-stream"},
        ) as response:
            if response.status != 200:
                sample.error = f"{response.status}: {(await response.text())[:200]}"
                return sample, text
            buffer = ""
            async for chunk in response.content.iter_any():
                events, buffer = _events(buffer + chunk.decode())
                for name, data in events:
                    if name == "delta" and sample.ttft is None:
                        sample.ttft = time.perf_counter() - sent
                    if name == "done":
                        done = json.loads(data)
                        text = done["content"]
                        sample.tokens = done["completion_tokens"] or 0
                        if done["status"] != "complete":
                            sample.error = f"{done['status']}: {done['error']}"
    except aiohttp.ClientError as exc:
        sample.error = f"{type(exc).__name__}: {exc}"
    return sample, text


async def _conversation(
    session: aiohttp.ClientSession, model: str, turns: int, max_tokens: int
) -> tuple[list[Sample], list[list[dict[str, str]]]]:
    """One conversation of `turns` turns; its samples and each turn's chat history."""
    async with session.post(
        "/api/v1/conversations",
        json={"model": model, "parameters": {"temperature": 0, "max_tokens": max_tokens}},
    ) as response:
        response.raise_for_status()
        conversation_id = (await response.json())["id"]
    samples, histories, history = [], [], []
    for question in QUESTIONS[:turns]:
        history.append({"role": "user", "content": question})
        histories.append(list(history))
        sample, answer = await _turn(session, conversation_id, question)
        samples.append(sample)
        history.append({"role": "assistant", "content": answer})
    return samples, histories


async def _raw(
    session: aiohttp.ClientSession, model: str, messages: list[dict[str, str]], max_tokens: int
) -> Sample:
    sample = Sample()
    body = {
        "model": model,
        "messages": messages,
        "temperature": 0,
        "max_tokens": max_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    sent = time.perf_counter()
    try:
        async with session.post("/v1/chat/completions", json=body) as response:
            if response.status != 200:
                sample.error = f"{response.status}: {(await response.text())[:200]}"
                return sample
            async for line in response.content:
                data = line.decode().strip()
                if not data.startswith("data:") or data == "data: [DONE]":
                    continue
                chunk = json.loads(data[5:])
                choices = chunk.get("choices") or []
                if choices and choices[0]["delta"].get("content") and sample.ttft is None:
                    sample.ttft = time.perf_counter() - sent
                if chunk.get("usage"):
                    sample.tokens = chunk["usage"]["completion_tokens"]
    except aiohttp.ClientError as exc:
        sample.error = f"{type(exc).__name__}: {exc}"
    return sample


async def _measure(
    gateway: str,
    headers: dict[str, str],
    model: str,
    conversations: int,
    turns: int,
    max_tokens: int,
) -> tuple[Phase, Phase]:
    timeout = aiohttp.ClientTimeout(total=1800)
    connector = aiohttp.TCPConnector(limit=conversations * 2)
    async with aiohttp.ClientSession(
        gateway, headers=headers, timeout=timeout, connector=connector
    ) as session:
        # Warm-up: the model loads, the first batch shapes are built.
        await _raw(session, model, [{"role": "user", "content": "Hello"}], 4)

        async def converse(phase: Phase) -> list[list[dict[str, str]]]:
            started = time.perf_counter()
            results = await asyncio.gather(
                *(_conversation(session, model, turns, max_tokens) for _ in range(conversations))
            )
            phase.add_run(
                [s for samples, _ in results for s in samples], time.perf_counter() - started
            )
            return [history for _, histories in results for history in histories]

        async def replay(phase: Phase, histories: list[list[dict[str, str]]]) -> None:
            async def client(mine: list[list[dict[str, str]]]) -> list[Sample]:
                return [await _raw(session, model, messages, max_tokens) for messages in mine]

            started = time.perf_counter()
            # One client per conversation, its turns one after the other, as the conversations ran.
            per_client = [histories[i * turns : (i + 1) * turns] for i in range(conversations)]
            replayed = await asyncio.gather(*(client(mine) for mine in per_client))
            phase.add_run(
                [s for samples in replayed for s in samples], time.perf_counter() - started
            )

        # An untimed conversation run first: the first run at full width on a fresh process
        # and database was up to 1 s slower at TTFT p50 than the same phase later on. Then
        # A-B-B-A: each phase runs once early and once late, so neither gains from drift.
        await converse(Phase("warm-up"))
        ours = Phase("conversations")
        raw = Phase("raw /v1/chat/completions")
        histories = await converse(ours)
        await replay(raw, histories)
        await replay(raw, histories)
        await converse(ours)
    return ours, raw


async def run(
    conversations: int = CONVERSATIONS, turns: int = TURNS, max_tokens: int = MAX_TOKENS
) -> list[str]:
    await reset_redis_db()
    started = time.perf_counter()
    env = {
        **SERVICE_ENV,
        "INFERENCE_MAX_CONCURRENT_PER_USER": str(max(64, conversations * 2)),
        # The raw phase replays exactly the prompts the conversations just sent, which a prefix
        # cache would hand back almost whole: off, so both phases prefill alike and the
        # difference is the conversation path itself (tests.benchmarks.prefix_cache measures
        # the cache).
        "INFERENCE_PREFIX_CACHE_MB": "0",
    }
    with tempfile.TemporaryDirectory() as tmp, _scoped_environ(env):
        async with bench_database() as database_url:
            names = ["accounts", "models_hub", "inference", "gateway"]
            with services(database_url, Path(tmp), names) as bench:
                model, _ = await _prepare_model(bench)
                user = await bench_user(bench, "chatter")
                gateway, headers = bench.urls["gateway"], user.gateway_headers
                ours, raw = await _measure(
                    gateway, headers, model, conversations, turns, max_tokens
                )
                # The same with one conversation: nothing queues, so the difference in time to
                # first token is the conversation path's own work per turn.
                alone = await _measure(gateway, headers, model, 1, turns, max_tokens)
                chosen = await chosen_configuration(bench)
    total = time.perf_counter() - started
    lines = _report(ours, raw, conversations, turns, max_tokens, total, [machine_line(), chosen])
    return [*lines, _path_overhead(*alone)]


def _path_overhead(ours: Phase, raw: Phase) -> str:
    return (
        f"one conversation alone (no queueing), TTFT p50: {ours.ttft_ms(50):.0f} ms vs raw "
        f"{raw.ttft_ms(50):.0f} ms, the conversation path's own cost per turn "
        f"{ours.ttft_ms(50) - raw.ttft_ms(50):+.0f} ms"
    )


def _report(
    ours: Phase,
    raw: Phase,
    conversations: int,
    turns: int,
    max_tokens: int,
    total: float,
    machine: list[str],
) -> list[str]:
    lines = [
        f"Conversation streaming through the gateway: {conversations} concurrent conversations "
        f"of {turns} turns, demo model (SmolLM2-135M-Instruct, CPU), greedy, "
        f"max_tokens {max_tokens}; the same histories replayed to /v1/chat/completions "
        f"(whole run {total:.0f} s)",
        *machine,
        f"{'phase':<28}{'requests':>9}{'TTFT p50':>10}{'TTFT p95':>10}{'tok/s':>9}"
        f"{'tokens':>8}{'errors':>8}  TTFT p50 of each run",
    ]
    for phase in (ours, raw):
        runs = " / ".join(f"{p50:.0f}" for p50 in phase.run_p50s)
        lines.append(
            f"{phase.name:<28}{len(phase.samples):>9}{phase.ttft_ms(50):>9.0f}ms"
            f"{phase.ttft_ms(95):>8.0f}ms{phase.tokens_per_s:>9.1f}{phase.tokens:>8}"
            f"{phase.errors:>8}  {runs} ms"
        )
    ratio = ours.tokens_per_s / raw.tokens_per_s if raw.tokens_per_s else float("nan")
    overhead = ours.ttft_ms(50) - raw.ttft_ms(50)
    throughput_ok = ratio >= TARGET_THROUGHPUT_RATIO
    ttft_ok = overhead <= TARGET_TTFT_OVERHEAD_MS
    lines.append(
        f"tokens/s conversations/raw: {ratio:.2f}x (target >= {TARGET_THROUGHPUT_RATIO}x) "
        f"{'PASS' if throughput_ok else 'FAIL'}"
    )
    lines.append(
        f"TTFT p50 overhead: {overhead:+.0f} ms (target <= {TARGET_TTFT_OVERHEAD_MS:.0f} ms) "
        f"{'PASS' if ttft_ok else 'FAIL'}"
    )
    first_error = next((s.error for s in ours.samples + raw.samples if s.error), None)
    if first_error:
        lines.append(f"first error: {first_error}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=CONVERSATIONS)
    parser.add_argument("--turns", type=int, default=TURNS, choices=range(1, len(QUESTIONS) + 1))
    parser.add_argument("--max-tokens", type=int, default=MAX_TOKENS)
    args = parser.parse_args()

    async def go() -> int:
        if not await database_answers():
            print("benchmarks need PostgreSQL (TEST_DATABASE_URL) and Redis (TEST_REDIS_URL)")
            return 2
        print("\n".join(await run(args.conversations, args.turns, args.max_tokens)), flush=True)
        return 0

    return uvloop.run(go())


if __name__ == "__main__":
    sys.exit(main())
