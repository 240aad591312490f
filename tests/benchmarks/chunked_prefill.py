"""Chunked prefill: how running streams fare while a long prompt joins their batch.

The engine alone (no HTTP) on the demo model (SmolLM2-135M-Instruct, validated as
`tests.benchmarks.inference` does, tuned at load as the service does): 4 greedy streams decode;
once each has its first tokens, a prompt of about 3,000 tokens arrives. The gaps between the
running streams' token events (inter-token latency): p50 outside the window from the long
prompt's arrival to its first token (their own pace), p95 and max inside it; and the long
prompt's own time to first token. Whole-prompt prefill (`prefill_chunk_tokens` 0) and chunked
prefill (the default) run A-B-B-A on the same weights. Target: ITL p95 in the window <= 2x the
p50 outside it.

    python -m tests.benchmarks.chunked_prefill [--streams 4] [--prompt-tokens 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import uvloop

from services.inference.engine import Engine, SamplingParams
from services.inference.engine.scheduler import CHUNK_SHARE_OF_STEP
from tests.benchmarks.harness import (
    bench_database,
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
    tuned_and_pinned,
)

STREAMS = 4
PROMPT_TOKENS = 3000
STREAM_TOKENS = 200
TARGET_RATIO = 2.0
TEXT = (
    "Lighthouses stood on rocks and headlands along dangerous coasts, and their keepers trimmed "
    "the wicks, wound the clockwork and logged every ship that passed in the night. "
)


@dataclass
class Trial:
    name: str
    pace: list[float] = field(default_factory=list)  # the running streams' gaps outside
    window: list[float] = field(default_factory=list)  # their gaps while the prompt prefills
    long_ttft: float = 0.0
    chunks: int = 0


async def _trial(engine: Engine, name: str, streams: int, prompt: list[int]) -> Trial:
    trial = Trial(name)
    started = [asyncio.Event() for _ in range(streams)]
    arrived: list[float] = []  # [long prompt sent, its first token]
    stamps: list[list[float]] = [[] for _ in range(streams)]
    chunks_before = engine.stats()["prefill_chunks"]

    async def running(index: int) -> None:
        params = SamplingParams(temperature=0, max_tokens=STREAM_TOKENS, ignore_eos=True)
        base = engine.tokenizer(f"Story {index}: {TEXT}")["input_ids"]
        async with engine.generate(f"{name}-run-{index}", base, params) as stream:
            async for _ in stream:
                stamps[index].append(time.perf_counter())
                if len(stamps[index]) == 5:
                    started[index].set()

    async def long_prompt() -> None:
        for event in started:
            await event.wait()
        params = SamplingParams(temperature=0, max_tokens=4, ignore_eos=True)
        arrived.append(time.perf_counter())
        async with engine.generate(f"{name}-long", prompt, params) as stream:
            async for _ in stream:
                if len(arrived) == 1:
                    arrived.append(time.perf_counter())

    await asyncio.gather(*(running(i) for i in range(streams)), long_prompt())
    sent, first = arrived
    trial.long_ttft = first - sent
    trial.chunks = engine.stats()["prefill_chunks"] - chunks_before
    for times in stamps:
        for before, after in itertools.pairwise(times):
            inside = after > sent and before < first
            (trial.window if inside else trial.pace).append(after - before)
    return trial


async def run(streams: int = STREAMS, prompt_tokens: int = PROMPT_TOKENS) -> list[str]:
    await reset_redis_db()
    with tempfile.TemporaryDirectory() as tmp, _scoped_environ(SERVICE_ENV):
        async with bench_database() as database_url:
            with services(database_url, Path(tmp), ["accounts", "models_hub"]) as bench:
                _, folder = await _prepare_model(bench)
        # Chunked: the defaults, tuned at load as the service does. Whole: the same choices
        # pinned, with chunking off.
        chunked, whole = await tuned_and_pinned(folder, prefill_chunk_tokens=0)
        try:
            unit = chunked.tokenizer(TEXT)["input_ids"]
            trials: list[Trial] = []
            for number, (name, engine) in enumerate(
                [("whole", whole), ("chunked", chunked), ("chunked", chunked), ("whole", whole)]
            ):
                # Its own first tokens each time: the prefix cache would hand a repeated
                # prompt back whole, and there would be nothing to prefill.
                head = chunked.tokenizer(f"Log {number}: ")["input_ids"]
                prompt = (head + unit * (prompt_tokens // len(unit) + 1))[:prompt_tokens]
                trials.append(await _trial(engine, name, streams, prompt))
            configuration = (
                f"engine configuration: dtype {chunked.dtype} (tuned), {chunked.cpu_threads} "
                f"threads, linear layers {chunked.cpu_linear}; chunks of at most "
                f"{chunked.options.prefill_chunk_tokens} tokens, each sized so its pass takes "
                f"{CHUNK_SHARE_OF_STEP:.0%} of a decoding step"
            )
        finally:
            await chunked.close()
            await whole.close()
    return _report(trials, streams, prompt_tokens, [machine_line(), configuration])


def _report(trials: list[Trial], streams: int, prompt_tokens: int, machine: list[str]) -> list[str]:
    lines = [
        f"Chunked prefill: {streams} greedy streams decoding while a {prompt_tokens}-token prompt "
        "arrives (engine alone, demo model); A-B-B-A",
        *machine,
        f"{'prefill':<10}{'pace p50':>10}{'window p95':>12}{'window max':>12}{'long TTFT':>11}"
        f"{'chunks':>8}",
    ]
    for trial in trials:
        lines.append(
            f"{trial.name:<10}{percentile(trial.pace, 50) * 1000:>8.0f}ms"
            f"{percentile(trial.window, 95) * 1000:>10.0f}ms"
            f"{max(trial.window, default=0.0) * 1000:>10.0f}ms{trial.long_ttft:>10.2f}s"
            f"{trial.chunks:>8}"
        )
    for name in ("whole", "chunked"):
        mine = [t for t in trials if t.name == name]
        p50 = percentile([g for t in mine for g in t.pace], 50)
        p95 = percentile([g for t in mine for g in t.window], 95)
        ratio = p95 / p50 if p50 else float("nan")
        verdict = "PASS" if ratio <= TARGET_RATIO else "FAIL"
        lines.append(
            f"{name}: ITL p95 in the window / ITL p50 outside it = {ratio:.1f}x "
            f"(target <= {TARGET_RATIO:.0f}x) " + (verdict if name == "chunked" else "(reference)")
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=STREAMS)
    parser.add_argument("--prompt-tokens", type=int, default=PROMPT_TOKENS)
    args = parser.parse_args()

    async def go() -> int:
        if not await database_answers():
            print("benchmarks need PostgreSQL (TEST_DATABASE_URL) and Redis (TEST_REDIS_URL)")
            return 2
        print("\n".join(await run(args.streams, args.prompt_tokens)), flush=True)
        return 0

    return uvloop.run(go())


if __name__ == "__main__":
    sys.exit(main())
