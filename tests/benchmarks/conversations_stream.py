"""Conversations: 16 concurrent conversations of 6 turns each through the gateway, against the
same prompts sent to the raw `/v1/chat/completions` in the same run.

The demo model (SmolLM2-135M-Instruct, seeded and validated as `tests.benchmarks.inference`
does) answers greedily, `max_tokens` 32 per turn. The 16 conversations go turn by turn: each
turn is a wave of 16 messages sent at once (`POST .../messages`, SSE; the platform builds each
turn's context from the stored history, streams through the answer's Redis stream, and stores
every message), and beside it a wave of exactly the same chat histories (the conversations'
own earlier answers included) sent at once to `/v1/chat/completions`. Which wave of a turn goes
first alternates from turn to turn. The prefix cache is off for both (the replayed prompts would
otherwise come from it whole).

Paired waves seconds apart, rather than each phase's whole run minutes apart: at 16 the time to
first token is mostly the prefill of 16 histories (seconds on 2 CPUs), so the machine's own
drift between two phase runs (up to ±7%, some hundreds of ms) hid a difference of tens. After an
untimed round (the warm-up), two rounds of 16 new conversations are measured; each phase reports
its TTFT p50 per round.
Per request: time to first token from the moment it was sent (first `delta` event / first
content chunk), the completion tokens. Targets: conversation tokens/s >= 0.9x raw, and TTFT p50
at most 50 ms above raw's. The same also runs with one conversation, where nothing queues and
the difference is the conversation path's own work per turn.

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
ROUNDS = 2
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


def _p50_ms(samples: list[Sample]) -> float:
    ttfts = [s.ttft for s in samples if s.error is None and s.ttft is not None]
    return percentile(ttfts, 50) * 1000 if ttfts else float("nan")


@dataclass
class Phase:
    name: str
    samples: list[Sample] = field(default_factory=list)
    elapsed: float = 0.0
    run_p50s: list[float] = field(default_factory=list)  # TTFT p50 of each round, ms
    turn_p50s: dict[int, list[float]] = field(default_factory=dict)  # of each wave, ms
    _round_start: int = 0

    def add_wave(self, turn: int, samples: list[Sample], elapsed: float) -> None:
        self.samples += samples
        self.elapsed += elapsed
        self.turn_p50s.setdefault(turn, []).append(_p50_ms(samples))

    def end_round(self) -> None:
        self.run_p50s.append(_p50_ms(self.samples[self._round_start :]))
        self._round_start = len(self.samples)

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


async def _new_conversation(session: aiohttp.ClientSession, model: str, max_tokens: int) -> str:
    async with session.post(
        "/api/v1/conversations",
        json={"model": model, "parameters": {"temperature": 0, "max_tokens": max_tokens}},
    ) as response:
        response.raise_for_status()
        conversation_id: str = (await response.json())["id"]
    return conversation_id


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


async def _conversation_wave(
    session: aiohttp.ClientSession, ids: list[str], turn: int, phase: Phase
) -> list[str]:
    """The next turn of every conversation, sent at once; their answers."""
    started = time.perf_counter()
    question = QUESTIONS[turn]
    results = await asyncio.gather(*(_turn(session, i, question) for i in ids))
    phase.add_wave(turn, [sample for sample, _ in results], time.perf_counter() - started)
    return [answer for _, answer in results]


async def _raw_wave(
    session: aiohttp.ClientSession,
    model: str,
    histories: list[list[dict[str, str]]],
    max_tokens: int,
    turn: int,
    phase: Phase,
) -> None:
    """The same chat histories to /v1/chat/completions, sent at once."""
    started = time.perf_counter()
    samples = await asyncio.gather(
        *(_raw(session, model, list(history), max_tokens) for history in histories)
    )
    phase.add_wave(turn, samples, time.perf_counter() - started)


async def _round(
    session: aiohttp.ClientSession,
    model: str,
    conversations: int,
    turns: int,
    max_tokens: int,
    ours: Phase,
    raw: Phase,
) -> None:
    """`conversations` new conversations, turn by turn: each turn a wave of their messages sent
    at once, and a wave of the same chat histories to /v1/chat/completions (first on every
    other turn)."""
    ids = await asyncio.gather(
        *(_new_conversation(session, model, max_tokens) for _ in range(conversations))
    )
    histories: list[list[dict[str, str]]] = [[] for _ in ids]
    for turn in range(turns):
        for history in histories:
            history.append({"role": "user", "content": QUESTIONS[turn]})
        if turn % 2:
            await _raw_wave(session, model, histories, max_tokens, turn, raw)
            answers = await _conversation_wave(session, ids, turn, ours)
        else:
            answers = await _conversation_wave(session, ids, turn, ours)
            await _raw_wave(session, model, histories, max_tokens, turn, raw)
        for history, answer in zip(histories, answers, strict=True):
            history.append({"role": "assistant", "content": answer})
    ours.end_round()
    raw.end_round()


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
        # Warm-up: the model loads, the first batch shapes are built; then an untimed round
        # (the first at full width on a fresh process and database runs slower).
        await _raw(session, model, [{"role": "user", "content": "Hello"}], 4)
        await _round(
            session, model, conversations, turns, max_tokens, Phase("warm-up"), Phase("warm-up")
        )
        ours = Phase("conversations")
        raw = Phase("raw /v1/chat/completions")
        for _ in range(ROUNDS):
            await _round(session, model, conversations, turns, max_tokens, ours, raw)
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
        f"{'tokens':>8}{'errors':>8}  TTFT p50 of each round",
    ]
    for phase in (ours, raw):
        runs = " / ".join(f"{p50:.0f}" for p50 in phase.run_p50s)
        lines.append(
            f"{phase.name:<28}{len(phase.samples):>9}{phase.ttft_ms(50):>9.0f}ms"
            f"{phase.ttft_ms(95):>8.0f}ms{phase.tokens_per_s:>9.1f}{phase.tokens:>8}"
            f"{phase.errors:>8}  {runs} ms"
        )
    lines.append("TTFT p50 per turn, conversations / raw, each round:")
    for turn, p50s in ours.turn_p50s.items():
        pairs = ", ".join(
            f"{a:.0f} / {b:.0f}" for a, b in zip(p50s, raw.turn_p50s[turn], strict=True)
        )
        lines.append(f"  turn {turn + 1}: {pairs} ms")
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
