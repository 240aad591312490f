"""Prefix cache: time to first token of a conversation's turns, with and without it.

The engine alone (no HTTP) on the demo model (SmolLM2-135M-Instruct, validated as
`tests.benchmarks.inference` does, tuned at load as the service does): one conversation of 6
turns, each turn's prompt the chat template over the whole history (as the conversations
service renders it), 128 greedy tokens per answer (`--answer-tokens`). With the prefix cache
(the default) a turn prefills only what follows the previous turn's prompt; without it
(`prefix_cache_bytes` 0, the same tuned choices pinned) the whole history every turn. Each
trial is a new conversation (its system prompt names it), so its first turn finds nothing
cached; A-B-B-A. Target: the 6th turn's time to first token with the cache <= 0.4x without.

    python -m tests.benchmarks.prefix_cache [--turns 6]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import uvloop

from services.inference.engine import Engine, SamplingParams
from tests.benchmarks.conversations_stream import QUESTIONS
from tests.benchmarks.harness import (
    bench_database,
    database_answers,
    machine_line,
    reset_redis_db,
    services,
)
from tests.benchmarks.inference import (
    SERVICE_ENV,
    _prepare_model,
    _scoped_environ,
    tuned_and_pinned,
)

TURNS = 6
ANSWER_TOKENS = 128
TARGET_RATIO = 0.4


@dataclass
class Trial:
    name: str
    ttfts: list[float] = field(default_factory=list)  # per turn
    prompt_tokens: list[int] = field(default_factory=list)
    reused: int = 0  # prompt tokens the cache supplied, over all turns


async def _conversation(
    engine: Engine, name: str, number: int, turns: int, answer_tokens: int
) -> Trial:
    trial = Trial(name)
    messages: list[dict[str, str]] = [
        {"role": "system", "content": f"Conversation {number}: answer briefly."}
    ]
    params = SamplingParams(temperature=0, max_tokens=answer_tokens, ignore_eos=True)
    before = engine.stats().get("prefix_cache_hit_tokens", 0)
    for turn, question in enumerate(QUESTIONS[:turns]):
        messages.append({"role": "user", "content": question})
        ids = engine.chat_prompt(messages)
        trial.prompt_tokens.append(len(ids))
        sent = time.perf_counter()
        tokens: list[int] = []
        async with engine.generate(f"{name}-{number}-{turn}", ids, params) as stream:
            async for event in stream:
                if not tokens:
                    trial.ttfts.append(time.perf_counter() - sent)
                if event.token_id is not None:
                    tokens.append(event.token_id)
        answer = str(engine.tokenizer.decode(tokens, skip_special_tokens=True))
        messages.append({"role": "assistant", "content": answer})
    trial.reused = engine.stats().get("prefix_cache_hit_tokens", 0) - before
    return trial


async def run(turns: int = TURNS, answer_tokens: int = ANSWER_TOKENS) -> list[str]:
    await reset_redis_db()
    with tempfile.TemporaryDirectory() as tmp, _scoped_environ(SERVICE_ENV):
        async with bench_database() as database_url:
            with services(database_url, Path(tmp), ["accounts", "models_hub"]) as bench:
                _, folder = await _prepare_model(bench)
        cached, plain = await tuned_and_pinned(folder, prefix_cache_bytes=0)
        try:
            trials = []
            plan = [("cache", cached), ("no cache", plain), ("no cache", plain), ("cache", cached)]
            for number, (name, engine) in enumerate(plan):
                trials.append(await _conversation(engine, name, number, turns, answer_tokens))
            configuration = (
                f"engine configuration: dtype {cached.dtype} (tuned), {cached.cpu_threads} "
                f"threads, linear layers {cached.cpu_linear}; prefix cache "
                f"{cached.options.prefix_cache_bytes // 2**20} MiB"
            )
        finally:
            await cached.close()
            await plain.close()
    return _report(trials, turns, answer_tokens, [machine_line(), configuration])


def _report(trials: list[Trial], turns: int, answer_tokens: int, machine: list[str]) -> list[str]:
    lines = [
        f"Prefix cache: a {turns}-turn conversation, {answer_tokens} greedy tokens per answer "
        "(engine alone, demo model); time to first token per turn; A-B-B-A",
        *machine,
        f"{'trial':<10}"
        + "".join(f"{f'turn {n + 1}':>9}" for n in range(turns))
        + f"{'reused':>8}",
    ]
    for trial in trials:
        lines.append(
            f"{trial.name:<10}"
            + "".join(f"{t * 1000:>7.0f}ms" for t in trial.ttfts)
            + f"{trial.reused:>8}"
        )
    lines.append("prompt tokens per turn: " + ", ".join(str(n) for n in trials[0].prompt_tokens))

    def last(name: str) -> float:
        mine = [t.ttfts[-1] for t in trials if t.name == name]
        return sum(mine) / len(mine)

    ratio = last("cache") / last("no cache")
    lines.append(
        f"turn {turns} TTFT with / without the prefix cache: {ratio:.2f}x "
        f"({last('cache') * 1000:.0f} vs {last('no cache') * 1000:.0f} ms; target <= "
        f"{TARGET_RATIO}x) {'PASS' if ratio <= TARGET_RATIO else 'FAIL'}"
    )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=TURNS, choices=range(2, len(QUESTIONS) + 1))
    parser.add_argument("--answer-tokens", type=int, default=ANSWER_TOKENS)
    args = parser.parse_args()

    async def go() -> int:
        if not await database_answers():
            print("benchmarks need PostgreSQL (TEST_DATABASE_URL) and Redis (TEST_REDIS_URL)")
            return 2
        print("\n".join(await run(args.turns, args.answer_tokens)), flush=True)
        return 0

    return uvloop.run(go())


if __name__ == "__main__":
    sys.exit(main())
