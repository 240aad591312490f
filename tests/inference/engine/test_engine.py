"""The engine on real tiny models (CPU, float32): greedy output is token-for-token what
`model.generate(do_sample=False)` gives, alone and inside a batch that requests join and leave."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch

from services.inference.engine import (
    Arrivals,
    DuplicateRequest,
    Engine,
    EngineClosed,
    EngineOptions,
    GenerationFailed,
    PromptTooLong,
    QueueFull,
    SamplingParams,
    TokenEvent,
)
from services.inference.engine.cpu import packable
from services.inference.engine.scheduler import CHUNK_SHARE_OF_STEP
from shared.model_files import ModelFileError
from shared.model_loading import load_causal_lm
from tests.models_hub.tiny_models import build_tiny_gpt2, build_tiny_llama, build_tokenizer

PROMPTS = [
    "Hello, world! How are",
    "The quick brown fox jumps over the lazy dog. A small model learns to speak one",
    "Cats",
    "Once upon a time there was a little robot who wanted to write poems.",
    'JSON is common as well: {"name"',
    "Trains leave the station at nine, ten and",
]
GREEDY = SamplingParams(temperature=0, max_tokens=40)


@dataclass
class Tiny:
    model: Any
    tokenizer: Any
    directory: Path
    refs: dict[tuple[str, int, float], list[int]] = field(default_factory=dict)

    def ids(self, prompt: str) -> list[int]:
        return list(self.tokenizer(prompt)["input_ids"])

    def reference(self, prompt: str, max_new_tokens: int = 40, penalty: float = 1.0) -> list[int]:
        """model.generate(do_sample=False): the tokens after the prompt (EOS included)."""
        key = (prompt, max_new_tokens, penalty)
        if key not in self.refs:
            ids = torch.tensor([self.ids(prompt)])
            with torch.inference_mode():
                out = self.model.generate(
                    ids,
                    attention_mask=torch.ones_like(ids),
                    do_sample=False,
                    max_new_tokens=max_new_tokens,
                    repetition_penalty=penalty,
                )
            self.refs[key] = out[0, ids.shape[1] :].tolist()
        return self.refs[key]

    @property
    def eos(self) -> int:
        return int(self.tokenizer.eos_token_id)


def _load(directory: Path) -> Tiny:
    model, tokenizer = load_causal_lm(directory)
    return Tiny(model, tokenizer, directory)


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Tiny:
    return _load(build_tiny_llama(tmp_path_factory.mktemp("llama")))


@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory: pytest.TempPathFactory) -> Tiny:
    return _load(build_tiny_gpt2(tmp_path_factory.mktemp("gpt2")))


@pytest.fixture
async def make_engine() -> AsyncIterator[Callable[..., Engine]]:
    engines: list[Engine] = []

    def make(tiny: Tiny, **options: Any) -> Engine:
        engine = Engine(tiny.model, tiny.tokenizer, options=EngineOptions(**options))
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        await engine.close()


@dataclass
class Result:
    events: list[TokenEvent]

    @property
    def tokens(self) -> list[int]:
        return [e.token_id for e in self.events if e.token_id is not None]

    @property
    def text(self) -> str:
        return "".join(e.text for e in self.events)

    @property
    def last(self) -> TokenEvent:
        return self.events[-1]


async def collect(
    stream: AsyncIterator[TokenEvent],
    *,
    started: asyncio.Event | None = None,
    after: int = 3,
) -> Result:
    events = []
    async for event in stream:
        events.append(event)
        if started is not None and len(events) >= after:
            started.set()
    if started is not None:
        started.set()
    return Result(events)


def strip_eos(tiny: Tiny, tokens: list[int]) -> list[int]:
    return tokens[:-1] if tokens and tokens[-1] == tiny.eos else tokens


# ---- greedy equals model.generate ----------------------------------------------------------------


async def test_greedy_alone_equals_generate(tiny_llama: Tiny, make_engine: Any) -> None:
    engine = make_engine(tiny_llama)
    for i, prompt in enumerate(PROMPTS):
        result = await collect(engine.generate(f"alone-{i}", tiny_llama.ids(prompt), GREEDY))
        expected = tiny_llama.reference(prompt)
        assert result.tokens == expected, prompt
        assert result.last.completion_tokens == len(expected)
        assert result.last.prompt_tokens == len(tiny_llama.ids(prompt))
        assert result.last.finish_reason == ("stop" if expected[-1] == tiny_llama.eos else "length")
        assert result.text == tiny_llama.tokenizer.decode(strip_eos(tiny_llama, expected))


async def _joiners(tiny: Tiny, engine: Engine) -> dict[str, Result]:
    """Requests of different lengths and parameters that join a running batch in waves."""
    first, second = asyncio.Event(), asyncio.Event()
    # a ignores EOS so that it surely runs while the others join; compare its output up to
    # the reference's EOS (`prefix_of_a`)
    long_greedy = SamplingParams(temperature=0, max_tokens=60, ignore_eos=True)
    tasks = {
        "a": asyncio.create_task(
            collect(engine.generate("a", tiny.ids(PROMPTS[1]), long_greedy), started=first)
        )
    }
    await first.wait()
    assert engine.stats()["running"] == 1  # a is mid-way when the next wave joins
    wave = {
        "b": (PROMPTS[2], GREEDY),
        "c": (PROMPTS[3], SamplingParams(temperature=0.9, top_p=0.9, seed=11, max_tokens=30)),
        "d": (PROMPTS[0], SamplingParams(temperature=0.7, top_k=1, max_tokens=40)),
    }
    for name, (prompt, params) in wave.items():
        started = second if name == "c" else None
        tasks[name] = asyncio.create_task(
            collect(engine.generate(name, tiny.ids(prompt), params), started=started)
        )
    await second.wait()
    wave = {
        "e": (PROMPTS[4], GREEDY),
        "f": (PROMPTS[5], SamplingParams(temperature=1.2, top_k=20, seed=5, max_tokens=25)),
        "g": (PROMPTS[3], SamplingParams(temperature=0, max_tokens=40, stop=("\x00",))),
    }
    for name, (prompt, params) in wave.items():
        tasks[name] = asyncio.create_task(collect(engine.generate(name, tiny.ids(prompt), params)))
    return {name: await task for name, task in tasks.items()}


def assert_a(results: dict[str, Result], tiny: Tiny) -> None:
    expected = tiny.reference(PROMPTS[1], 60)
    assert len(results["a"].tokens) == 60
    assert results["a"].tokens[: len(expected)] == expected


async def test_greedy_inside_a_changing_batch_equals_generate(
    tiny_llama: Tiny, make_engine: Any
) -> None:
    engine = make_engine(tiny_llama)
    results = await _joiners(tiny_llama, engine)
    assert_a(results, tiny_llama)
    assert results["b"].tokens == tiny_llama.reference(PROMPTS[2])
    assert results["d"].tokens == tiny_llama.reference(PROMPTS[0])  # top_k=1 is greedy
    assert results["e"].tokens == tiny_llama.reference(PROMPTS[4])
    g = tiny_llama.reference(PROMPTS[3])
    assert results["g"].tokens == g[: len(results["g"].tokens)]
    stats = engine.stats()
    generated = sum(r.last.completion_tokens for r in results.values())
    assert stats["tokens_generated"] == generated
    # The requests really shared decoding steps, and joined in several prefills.
    assert stats["steps"] < generated / 2
    assert stats["prefills"] >= 3
    assert stats["running"] == 0
    assert stats["kv_cache_bytes"] == 0


async def test_gpt2_greedy_in_batch_equals_generate(tiny_gpt2: Tiny, make_engine: Any) -> None:
    # GPT-2 has learned absolute position embeddings: wrong position ids under left padding
    # would change its output at once.
    engine = make_engine(tiny_gpt2, prefill="batched")
    results = await _joiners(tiny_gpt2, engine)
    assert_a(results, tiny_gpt2)
    for name, prompt in (("b", PROMPTS[2]), ("d", PROMPTS[0]), ("e", PROMPTS[4])):
        assert results[name].tokens == tiny_gpt2.reference(prompt), name


@pytest.fixture(scope="module")
def tiny_mistral(tmp_path_factory: pytest.TempPathFactory) -> Tiny:
    """A sliding-window model (window 6, shorter than the prompts): the engine keeps full-length
    KV rows and the model's own mask does the windowing."""
    from transformers import MistralConfig, MistralForCausalLM

    directory = tmp_path_factory.mktemp("mistral")
    tokenizer = build_tokenizer(directory)
    ids: dict[str, Any] = {t: tokenizer.convert_tokens_to_ids(t) for t in ("<s>", "</s>", "<pad>")}
    torch.manual_seed(0)
    config = MistralConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        sliding_window=6,
        bos_token_id=ids["<s>"],
        eos_token_id=ids["</s>"],
        pad_token_id=ids["<pad>"],
    )
    model = MistralForCausalLM(config)
    torch.nn.Module.eval(model)
    return Tiny(model, tokenizer, directory)


async def test_sliding_window_model_in_batch_equals_generate(
    tiny_mistral: Tiny, make_engine: Any
) -> None:
    engine = make_engine(tiny_mistral)
    assert engine.batching == "padded"
    results = await _joiners(tiny_mistral, engine)
    assert_a(results, tiny_mistral)
    for name, prompt in (("b", PROMPTS[2]), ("d", PROMPTS[0]), ("e", PROMPTS[4])):
        assert results[name].tokens == tiny_mistral.reference(prompt), name


async def test_serial_batching_equals_generate(tiny_llama: Tiny, make_engine: Any) -> None:
    engine = make_engine(tiny_llama, batching="serial")
    assert engine.batching == "serial"
    results = await _joiners(tiny_llama, engine)
    assert_a(results, tiny_llama)
    assert results["e"].tokens == tiny_llama.reference(PROMPTS[4])


async def test_onednn_packed_model_equals_generate(tiny_llama: Tiny, make_engine: Any) -> None:
    # The engine packs the linear layers of a model it loaded itself; greedy output stays the
    # dense model's (the references come from the unpacked fixture model).
    engine = Engine.load(
        tiny_llama.directory, options=EngineOptions(max_batch_size=8, cpu_onednn="on")
    )
    try:
        assert engine.cpu_linear == "onednn"
        assert engine.stats()["cpu_linear"] == "onednn"
        results = await _joiners(tiny_llama, engine)
        assert_a(results, tiny_llama)
        for name, prompt in (("b", PROMPTS[2]), ("d", PROMPTS[0]), ("e", PROMPTS[4])):
            assert results[name].tokens == tiny_llama.reference(prompt), name
    finally:
        await engine.close()
    # a model object handed to the engine is left alone unless asked; "auto" leaves small
    # layers (all of the tiny model's) dense
    assert make_engine(tiny_llama).cpu_linear == "dense"
    auto = Engine.load(tiny_llama.directory)
    assert auto.cpu_linear == "dense"
    await auto.close()


async def test_packed_bf16_model_equals_the_dense_bf16_one(tiny_llama: Tiny) -> None:
    # Where oneDNN runs bf16, a bf16 model's linear layers are packed too, every one of them
    # (the tiny model's are all small), with the dense bf16 model's greedy output.
    engines = [
        Engine.load(tiny_llama.directory, dtype=torch.bfloat16, options=options)
        for options in (
            EngineOptions(max_batch_size=8, cpu_onednn="off"),
            EngineOptions(max_batch_size=8, cpu_onednn="auto"),
        )
    ]
    dense, packed = engines
    try:
        assert dense.cpu_linear == "dense"
        assert packed.cpu_linear == ("onednn" if packable(torch.bfloat16) else "dense")
        for prompt in PROMPTS:
            expected = await collect(dense.generate("d", tiny_llama.ids(prompt), GREEDY))
            got = await collect(packed.generate("p", tiny_llama.ids(prompt), GREEDY))
            assert got.tokens == expected.tokens, prompt
    finally:
        for engine in engines:
            await engine.close()


async def test_a_busy_event_loop_does_not_hold_the_engine_up(
    tiny_llama: Tiny, make_engine: Any
) -> None:
    # The engine waits for the event loop to take each step's events, but only briefly: while
    # the loop is blocked, decoding goes on, and no token is lost.
    engine = make_engine(tiny_llama)
    stream = engine.generate("busy", tiny_llama.ids(PROMPTS[1]), GREEDY)
    first = await anext(stream)
    steps = engine.stats()["steps"]
    time.sleep(0.5)  # noqa: ASYNC251 (blocking the loop on purpose: no event is taken)
    assert engine.stats()["steps"] - steps >= 10
    rest = [event async for event in stream]
    tokens = [event.token_id for event in (first, *rest) if event.token_id is not None]
    assert tokens == tiny_llama.reference(PROMPTS[1])


async def test_a_model_broken_by_packing_is_loaded_again(
    tiny_llama: Tiny, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.inference.engine import cpu

    probe = cpu._probe_logits
    calls = []

    def drifting(model: Any) -> torch.Tensor:
        calls.append(1)
        logits = probe(model)
        return logits + 1.0 if len(calls) == 2 else logits  # the packed model "differs"

    monkeypatch.setattr(cpu, "_probe_logits", drifting)
    engine = Engine.load(tiny_llama.directory, options=EngineOptions(cpu_onednn="on"))
    try:
        assert engine.cpu_linear == "dense"
        assert engine.options.cpu_onednn == "off"
        assert len(calls) == 2
        result = await collect(engine.generate("x", tiny_llama.ids(PROMPTS[0]), GREEDY))
        assert result.tokens == tiny_llama.reference(PROMPTS[0])
    finally:
        await engine.close()


async def test_loading_runs_on_a_thread_that_ends_with_it(
    tiny_llama: Tiny, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # OpenMP keeps a team of worker threads for every thread that ran torch's parallel code;
    # the loading thread ends, so only the engine's own team is left (Engine._on_own_thread).
    import shared.model_loading

    loaders: list[threading.Thread] = []
    real = shared.model_loading.load_causal_lm

    def recording(*args: Any, **kwargs: Any) -> Any:
        loaders.append(threading.current_thread())
        return real(*args, **kwargs)

    monkeypatch.setattr(shared.model_loading, "load_causal_lm", recording)
    engine = Engine.load(tiny_llama.directory, options=EngineOptions(tune_seconds=0.5))
    try:
        assert loaders
        assert all(t is not threading.current_thread() for t in loaders)
        assert not any(t.is_alive() for t in loaders)
        result = await collect(engine.generate("x", tiny_llama.ids(PROMPTS[0]), GREEDY))
        assert result.tokens == tiny_llama.reference(PROMPTS[0])
    finally:
        await engine.close()
    # what goes wrong while loading reaches the caller as it was raised
    with pytest.raises(ModelFileError):
        Engine.load(tmp_path / "missing")


async def test_prefill_modes_agree(tiny_llama: Tiny, make_engine: Any) -> None:
    params = SamplingParams(temperature=0, max_tokens=20)
    for mode in ("batched", "separate", "auto"):
        engine = make_engine(tiny_llama, prefill=mode)
        results = await asyncio.gather(
            *(
                collect(engine.generate(f"{mode}-{i}", tiny_llama.ids(p), params))
                for i, p in enumerate(PROMPTS)
            )
        )
        for prompt, result in zip(PROMPTS, results, strict=True):
            assert result.tokens == tiny_llama.reference(prompt, 20), (mode, prompt)


async def test_a_long_prompt_is_prefilled_in_chunks_between_decoding_steps(
    tiny_llama: Tiny, make_engine: Any
) -> None:
    engine = make_engine(tiny_llama, prefill_chunk_tokens=16)
    long_prompt = " ".join(PROMPTS)  # over 100 tokens: 7 chunks of 16 or more
    assert len(tiny_llama.ids(long_prompt)) > 6 * 16
    started = asyncio.Event()
    running = asyncio.create_task(
        collect(
            engine.generate(
                "running",
                tiny_llama.ids(PROMPTS[1]),
                SamplingParams(temperature=0, max_tokens=120, ignore_eos=True),
            ),
            started=started,
        )
    )
    await started.wait()
    # The running stream keeps getting tokens while the long prompt is prefilled: one decoding
    # step after each chunk, instead of a pause for the whole prompt.
    before = engine.stats()["steps"]
    long_events = engine.generate("long", tiny_llama.ids(long_prompt), GREEDY)
    first = await long_events.__anext__()
    chunks = engine.stats()["prefill_chunks"]
    assert chunks >= 7
    assert engine.stats()["steps"] - before >= chunks - 1
    rest = await collect(long_events)
    # Chunked or whole, the prompt gives what model.generate gives.
    assert [first.token_id, *rest.tokens] == tiny_llama.reference(long_prompt)
    beside = await running
    assert len(beside.tokens) == 120
    expected = tiny_llama.reference(PROMPTS[1], 120)
    assert beside.tokens[: len(expected)] == expected


async def test_chunks_are_sized_from_the_last_chunks_pass(
    tiny_llama: Tiny, make_engine: Any
) -> None:
    """Each chunk of a long prompt is sized so its pass takes CHUNK_SHARE_OF_STEP of a decoding
    step, from how long the last chunk's pass took: a running stream then waits for its own
    step plus one chunk, within twice its pace."""
    engine = make_engine(tiny_llama, prefill_chunk_tokens=512)
    scheduler = engine._scheduler
    scheduler._step_s = 0.100
    share = CHUNK_SHARE_OF_STEP * scheduler._step_s
    scheduler._prefill_token_s = 0.001
    scheduler._last_chunk = None
    assert scheduler._chunk_tokens() == round(share / 0.001)  # the first: from a token's cost
    scheduler._last_chunk = (100, 1.5 * share)  # took too long: the next is smaller
    assert scheduler._chunk_tokens() == 66
    scheduler._last_chunk = (100, 0.75 * share)  # room to spare: larger, by at most 2x
    assert scheduler._chunk_tokens() == 133
    scheduler._last_chunk = (100, 0.1 * share)
    assert scheduler._chunk_tokens() == 200
    scheduler._last_chunk = (300, 0.1 * share)
    assert scheduler._chunk_tokens() == 512  # never past the setting
    scheduler._last_chunk = (20, 10 * share)
    assert scheduler._chunk_tokens() == 16  # nor under the floor


async def test_repetition_penalty_greedy_equals_generate(
    tiny_llama: Tiny, make_engine: Any
) -> None:
    engine = make_engine(tiny_llama)
    params = SamplingParams(temperature=0, max_tokens=40, repetition_penalty=1.3)
    results = await asyncio.gather(
        collect(engine.generate("pen", tiny_llama.ids(PROMPTS[1]), params)),
        collect(engine.generate("plain", tiny_llama.ids(PROMPTS[3]), GREEDY)),
    )
    assert results[0].tokens == tiny_llama.reference(PROMPTS[1], penalty=1.3)
    assert results[1].tokens == tiny_llama.reference(PROMPTS[3])
    assert results[0].tokens != tiny_llama.reference(PROMPTS[1])


# ---- per-request sampling ------------------------------------------------------------------------


async def test_seeded_sampling_is_reproducible_and_seed_dependent(
    tiny_llama: Tiny, make_engine: Any
) -> None:
    runs = [await _joiners(tiny_llama, make_engine(tiny_llama)) for _ in range(2)]
    for name in ("c", "f"):
        assert runs[0][name].tokens == runs[1][name].tokens, name
        assert runs[0][name].last.finish_reason in ("stop", "length")
    engine = make_engine(tiny_llama)
    ids = tiny_llama.ids(PROMPTS[3])
    by_seed = {}
    for seed in (11, 12, 13):
        params = SamplingParams(temperature=0.9, top_p=0.9, seed=seed, max_tokens=30)
        by_seed[seed] = (await collect(engine.generate(f"s{seed}", ids, params))).tokens
    assert by_seed[11] == runs[0]["c"].tokens  # alone or in a batch: the same draws
    assert len({tuple(tokens) for tokens in by_seed.values()}) == 3


# ---- limits and stops ----------------------------------------------------------------------------


async def test_max_tokens_finishes_with_length(tiny_llama: Tiny, make_engine: Any) -> None:
    engine = make_engine(tiny_llama)
    params = SamplingParams(temperature=0.8, seed=3, max_tokens=7, ignore_eos=True)
    result = await collect(engine.generate("len", tiny_llama.ids(PROMPTS[0]), params))
    assert len(result.events) == 7
    assert [e.completion_tokens for e in result.events] == list(range(1, 8))
    assert [e.finish_reason for e in result.events] == [None] * 6 + ["length"]
    assert result.text == tiny_llama.tokenizer.decode(result.tokens, skip_special_tokens=True)
    one = await collect(
        engine.generate("one", tiny_llama.ids(PROMPTS[1]), SamplingParams(max_tokens=1))
    )
    assert len(one.events) == 1
    assert one.last.finish_reason in ("length", "stop")


async def test_eos_finishes_with_stop_and_no_text(tiny_llama: Tiny, make_engine: Any) -> None:
    ending = [p for p in PROMPTS if tiny_llama.reference(p)[-1] == tiny_llama.eos]
    assert ending, "the tiny model emits EOS for at least one prompt"
    engine = make_engine(tiny_llama)
    for prompt in ending:
        result = await collect(engine.generate("eos", tiny_llama.ids(prompt), GREEDY))
        expected = tiny_llama.reference(prompt)
        assert result.tokens == expected
        assert result.last.token_id == tiny_llama.eos
        assert result.last.finish_reason == "stop"
        assert result.text == tiny_llama.tokenizer.decode(expected[:-1])


def _spanning_stop(tiny: Tiny, tokens: list[int]) -> str:
    """A stop string made of the text of two consecutive clean tokens, from the middle."""
    decode = tiny.tokenizer.decode
    for k in range(3, len(tokens) - 1):
        left, right = decode([tokens[k]]), decode([tokens[k + 1]])
        if (
            left.strip()
            and right.strip()
            and "\ufffd" not in left + right
            and tokens[k + 1] != tiny.eos
        ):
            return str(left[-2:] + right[:2])
    raise AssertionError("no two clean consecutive tokens in the reference")


async def test_stop_sequence_spanning_tokens(tiny_llama: Tiny, make_engine: Any) -> None:
    prompt = next(p for p in PROMPTS if tiny_llama.reference(p)[-1] != tiny_llama.eos)
    expected = tiny_llama.reference(prompt)
    full = tiny_llama.tokenizer.decode(expected)
    stop = _spanning_stop(tiny_llama, expected)
    assert len(stop) >= 2
    assert stop in full
    engine = make_engine(tiny_llama)
    params = SamplingParams(temperature=0, max_tokens=40, stop=(stop, "never-in-output"))
    results = await asyncio.gather(
        collect(engine.generate("stop", tiny_llama.ids(prompt), params)),
        collect(engine.generate("other", tiny_llama.ids(PROMPTS[4]), GREEDY)),
    )
    result = results[0]
    assert result.last.finish_reason == "stop"
    assert result.text == full[: full.index(stop)]
    assert stop not in result.text
    # It stopped at the token that completed the stop string, not later.
    n = result.last.completion_tokens
    assert result.tokens == expected[:n]
    assert stop in tiny_llama.tokenizer.decode(expected[:n])
    assert stop not in tiny_llama.tokenizer.decode(expected[: n - 1])
    assert results[1].tokens == tiny_llama.reference(PROMPTS[4])


# ---- queueing, aborts, errors --------------------------------------------------------------------


async def test_abort_frees_the_slot_within_one_step(tiny_llama: Tiny, make_engine: Any) -> None:
    engine = make_engine(tiny_llama, max_batch_size=1, max_waiting=4)
    long = SamplingParams(temperature=0, max_tokens=200, ignore_eos=True)
    stream_a = engine.generate("a", tiny_llama.ids(PROMPTS[0]), long)
    first = await stream_a.__anext__()
    assert first.finish_reason is None
    stream_b = engine.generate("b", tiny_llama.ids(PROMPTS[4]), GREEDY)
    stream_c = engine.generate("c", tiny_llama.ids(PROMPTS[2]), GREEDY)
    stats = engine.stats()
    assert stats["running"] == 1
    assert stats["waiting"] == 2

    # A waiting request leaves the queue at once.
    engine.abort("c")
    c_events = [event async for event in stream_c]
    assert [(e.finish_reason, e.completion_tokens) for e in c_events] == [("abort", 0)]
    assert engine.stats()["waiting"] == 1

    engine.abort("a")
    generated_at_abort = engine.stats()["tokens_generated"]
    rest = [event async for event in stream_a]
    assert rest[-1].finish_reason == "abort"
    assert rest[-1].token_id is None
    # At most the step already under way finished after the abort.
    assert rest[-1].completion_tokens <= generated_at_abort + 1
    assert rest[-1].completion_tokens < 200

    b = await collect(stream_b)
    assert b.tokens == tiny_llama.reference(PROMPTS[4])
    stats = engine.stats()
    assert stats["requests_finished"]["abort"] == 2
    assert stats["running"] == 0
    assert stats["waiting"] == 0
    engine.abort("a")  # already over: nothing happens
    engine.abort("unknown")


async def test_queue_full(tiny_llama: Tiny, make_engine: Any) -> None:
    engine = make_engine(tiny_llama, max_batch_size=1, max_waiting=1)
    long = SamplingParams(temperature=0, max_tokens=240, ignore_eos=True)
    stream_a = engine.generate("a", tiny_llama.ids(PROMPTS[2]), long)
    await stream_a.__anext__()  # a is running: the batch is full
    stream_b = engine.generate("b", tiny_llama.ids(PROMPTS[2]), GREEDY)  # waits
    with pytest.raises(QueueFull) as caught:
        engine.generate("c", tiny_llama.ids(PROMPTS[2]), GREEDY)
    assert caught.value.retry_after >= 1
    assert caught.value.status_code == 429
    assert caught.value.headers["Retry-After"].isdigit()
    await stream_a.aclose()
    assert (await collect(stream_b)).tokens == tiny_llama.reference(PROMPTS[2])


async def test_prompt_too_long_and_bad_requests(tiny_llama: Tiny, make_engine: Any) -> None:
    engine = make_engine(tiny_llama)
    assert engine.context_length == 256
    with pytest.raises(PromptTooLong) as caught:
        engine.generate("long", [5] * 250, SamplingParams(max_tokens=10))
    assert caught.value.status_code == 400
    assert "256" in caught.value.detail
    with pytest.raises(PromptTooLong):
        engine.generate("empty", [], GREEDY)
    # exactly the context is fine
    ok = await collect(engine.generate("fits", [5] * 246, SamplingParams(max_tokens=10)))
    assert ok.last.finish_reason is not None
    stream = engine.generate("dup", tiny_llama.ids(PROMPTS[0]), GREEDY)
    with pytest.raises(DuplicateRequest):
        engine.generate("dup", tiny_llama.ids(PROMPTS[0]), GREEDY)
    assert await stream is stream  # a stream may be awaited, then iterated
    await collect(stream)
    assert engine.stats()["waiting"] == 0


async def test_stream_closed_early_aborts_its_request(tiny_llama: Tiny, make_engine: Any) -> None:
    engine = make_engine(tiny_llama)
    long = SamplingParams(temperature=0, max_tokens=240, ignore_eos=True)
    async with engine.generate("x", tiny_llama.ids(PROMPTS[0]), long) as stream:
        await stream.__anext__()
    for _ in range(500):
        if engine.stats()["requests_finished"]["abort"] == 1:
            break
        await asyncio.sleep(0.01)
    assert engine.stats()["requests_finished"]["abort"] == 1
    assert engine.stats()["running"] == 0
    # the id can be used again once the request is over
    result = await collect(engine.generate("x", tiny_llama.ids(PROMPTS[0]), GREEDY))
    assert result.tokens == tiny_llama.reference(PROMPTS[0])


async def test_a_dropped_stream_aborts_its_request(tiny_llama: Tiny, make_engine: Any) -> None:
    engine = make_engine(tiny_llama, max_batch_size=1)
    long = SamplingParams(temperature=0, max_tokens=240, ignore_eos=True)
    stream = engine.generate("gone", tiny_llama.ids(PROMPTS[0]), long)
    waiting = engine.generate("queued", tiny_llama.ids(PROMPTS[2]), long)
    await stream.__anext__()
    del stream, waiting  # e.g. the handler was cancelled: nobody reads these any more
    for _ in range(500):
        if engine.stats()["requests_finished"]["abort"] == 2:
            break
        await asyncio.sleep(0.01)
    stats = engine.stats()
    assert stats["requests_finished"]["abort"] == 2
    assert stats["running"] == 0
    assert stats["waiting"] == 0
    assert stats["tokens_generated"] < 240


async def test_model_error_fails_the_batch_and_the_engine_goes_on(
    tiny_llama: Tiny, make_engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(tiny_llama)
    backend = engine._scheduler._backend
    original = backend.decode

    def broken(tokens: Any) -> Any:
        monkeypatch.setattr(backend, "decode", original)
        raise RuntimeError("out of memory")

    monkeypatch.setattr(backend, "decode", broken)
    with pytest.raises(GenerationFailed):
        await collect(engine.generate("x", tiny_llama.ids(PROMPTS[0]), GREEDY))
    assert "out of memory" in (await engine.health())["last_error"]
    result = await collect(engine.generate("y", tiny_llama.ids(PROMPTS[0]), GREEDY))
    assert result.tokens == tiny_llama.reference(PROMPTS[0])


async def test_close_aborts_running_requests(tiny_llama: Tiny) -> None:
    engine = Engine(tiny_llama.model, tiny_llama.tokenizer, name="tiny")
    assert (await engine.health())["status"] == "ok"
    long = SamplingParams(temperature=0, max_tokens=240, ignore_eos=True)
    stream = engine.generate("x", tiny_llama.ids(PROMPTS[0]), long)
    await stream.__anext__()
    await engine.close()
    events = [event async for event in stream]
    assert events[-1].finish_reason == "abort"
    assert (await engine.health())["status"] == "closed"
    with pytest.raises(EngineClosed):
        engine.generate("y", tiny_llama.ids(PROMPTS[0]), GREEDY)
    stats = engine.stats()
    assert stats["model"] == "tiny"
    assert stats["kv_cache_bytes"] == 0
    assert stats["parameter_bytes"] > 0
    await engine.close()  # twice is fine


# ---- scoring -------------------------------------------------------------------------------------


async def test_scoring_matches_the_model_window_by_window_while_serving_goes_on(
    tiny_llama: Tiny, make_engine: Any
) -> None:
    engine = make_engine(tiny_llama)
    ids = tiny_llama.ids(" ".join(PROMPTS))
    window = 16
    expected = 0.0
    with torch.inference_mode():
        for start in range(0, len(ids), window):
            chunk = torch.tensor([ids[start : start + window]])
            if chunk.shape[1] < 2:
                continue
            # `loss` is the mean over the chunk's scored tokens (all but its first).
            expected += float(tiny_llama.model(input_ids=chunk, labels=chunk).loss) * (
                chunk.shape[1] - 1
            )

    generation = asyncio.create_task(
        collect(engine.generate("beside", tiny_llama.ids(PROMPTS[0]), GREEDY))
    )
    total, scored, windows = await engine.score(ids, window)
    served = await generation

    assert windows == -(-len(ids) // window) - (len(ids) % window == 1)
    assert scored == len(ids) - windows
    assert total == pytest.approx(expected, rel=1e-4)
    assert strip_eos(tiny_llama, served.tokens) == strip_eos(
        tiny_llama, tiny_llama.reference(PROMPTS[0])
    )


async def test_scoring_on_a_closed_engine_is_refused(tiny_llama: Tiny, make_engine: Any) -> None:
    engine = make_engine(tiny_llama)
    await engine.close()
    with pytest.raises(EngineClosed):
        await engine.score(tiny_llama.ids(PROMPTS[1]), 16)


# ---- prefix cache ------------------------------------------------------------------------------


def _greedy_after(tiny: Tiny, ids: list[int], max_new_tokens: int) -> list[int]:
    """model.generate(do_sample=False) on these ids: the tokens after them."""
    tensor = torch.tensor([ids])
    with torch.inference_mode():
        out = tiny.model.generate(
            tensor,
            attention_mask=torch.ones_like(tensor),
            do_sample=False,
            max_new_tokens=max_new_tokens,
        )
    return [int(t) for t in out[0, len(ids) :]]


async def test_a_next_turn_prefills_only_what_follows_the_previous_turn(
    tiny_llama: Tiny, make_engine: Any
) -> None:
    engine = make_engine(tiny_llama)
    params = SamplingParams(temperature=0, max_tokens=24, ignore_eos=True)
    first = tiny_llama.ids(" ".join(PROMPTS[:4]))  # a conversation's first turn
    answer = (await collect(engine.generate("turn-1", first, params))).tokens
    second = first + answer + tiny_llama.ids(" And then? Tell me more")
    before = engine.stats()
    result = await collect(engine.generate("turn-2", second, params))
    after = engine.stats()
    # Same tokens as a model that sees the whole prompt, with the blocks of the first turn's
    # prompt and answer reused (the answer's last token never ran through the model).
    assert result.tokens == _greedy_after(tiny_llama, second, 24)
    assert after["prefix_cache_hits"] == before["prefix_cache_hits"] + 1
    reused = after["prefix_cache_hit_tokens"] - before["prefix_cache_hit_tokens"]
    assert reused == (len(first) + len(answer) - 1) // 16 * 16
    assert reused > len(first) // 16 * 16
    assert after["prefix_cache_bytes"] > 0


async def test_prompts_prefilled_together_are_cached_each(
    tiny_llama: Tiny, make_engine: Any
) -> None:
    engine = make_engine(tiny_llama, prefill="batched")
    prompts = [p for p in PROMPTS if len(tiny_llama.ids(p)) > 16]
    assert len(prompts) >= 2
    params = SamplingParams(temperature=0, max_tokens=8)
    await asyncio.gather(
        *(
            collect(engine.generate(f"a{i}", tiny_llama.ids(p), params))
            for i, p in enumerate(prompts)
        )
    )
    assert engine.stats()["prefix_cache_hits"] == 0
    again = await asyncio.gather(
        *(
            collect(engine.generate(f"b{i}", tiny_llama.ids(p), params))
            for i, p in enumerate(prompts)
        )
    )
    assert engine.stats()["prefix_cache_hits"] == len(prompts)
    for prompt, result in zip(prompts, again, strict=True):
        assert result.tokens == tiny_llama.reference(prompt, 8)


async def test_a_burst_sharing_only_a_short_cached_prefix_is_prefilled_together(
    tiny_llama: Tiny, make_engine: Any
) -> None:
    # Chat prompts share their template's system prompt: resuming each from that short cached
    # prefix would cost one forward pass per prompt instead of one for the burst.
    engine = make_engine(tiny_llama, prefill="batched")
    system = tiny_llama.ids(" ".join(PROMPTS))[:16]
    params = SamplingParams(temperature=0, max_tokens=8)
    await collect(engine.generate("warm", system + tiny_llama.ids(PROMPTS[0]), params))
    burst = [system + tiny_llama.ids(f"{p} {PROMPTS[1]}") for p in PROMPTS[2:6]]
    assert all(engine._scheduler._backend.cached_prefix(ids) == 16 for ids in burst)
    assert all(len(ids) > 32 for ids in burst)
    before = engine.stats()
    with engine._scheduler._cond:  # the batch loop waits, so it admits the burst at one turn
        streams = [engine.generate(f"b{i}", ids, params) for i, ids in enumerate(burst)]
    results = await asyncio.gather(*(collect(stream) for stream in streams))
    after = engine.stats()
    # One forward pass for the burst, each row starting after the shared cached block.
    assert after["prefills"] == before["prefills"] + 1
    assert after["prefix_cache_hits"] == before["prefix_cache_hits"] + len(burst)
    reused = after["prefix_cache_hit_tokens"] - before["prefix_cache_hit_tokens"]
    assert reused == 16 * len(burst)
    for ids, result in zip(burst, results, strict=True):
        assert result.tokens == _greedy_after(tiny_llama, ids, 8)


@pytest.mark.parametrize("model", ["tiny_llama", "tiny_gpt2"])
async def test_next_turns_of_several_conversations_are_prefilled_together(
    model: str, request: pytest.FixtureRequest, make_engine: Any
) -> None:
    # Each row starts after its own conversation's cached history, of different lengths, and
    # one prompt has nothing cached at all: still one forward pass, and each answer is the one
    # the model gives the whole prompt (GPT-2's learned positions would show a wrong position).
    tiny: Tiny = request.getfixturevalue(model)
    engine = make_engine(tiny, prefill="batched")
    params = SamplingParams(temperature=0, max_tokens=10)
    firsts = [tiny.ids(" ".join(PROMPTS[i : i + n])) for i, n in ((0, 2), (1, 4), (3, 3))]
    nexts = []
    for number, first in enumerate(firsts):
        answer = (await collect(engine.generate(f"first-{number}", first, params))).tokens
        nexts.append(first + answer + tiny.ids(f" {PROMPTS[number]} and then?"))
    nexts.append(tiny.ids("A new conversation: " + PROMPTS[5]))
    cached = [engine._scheduler._backend.cached_prefix(ids) for ids in nexts]
    assert all(cached[:3])
    assert len(set(cached[:3])) > 1
    assert cached[3] == 0
    before = engine.stats()
    with engine._scheduler._cond:  # the batch loop waits, so it admits them at one turn
        streams = [engine.generate(f"next-{i}", ids, params) for i, ids in enumerate(nexts)]
    results = await asyncio.gather(*(collect(stream) for stream in streams))
    after = engine.stats()
    assert after["prefills"] == before["prefills"] + 1
    reused = after["prefix_cache_hit_tokens"] - before["prefix_cache_hit_tokens"]
    assert reused == sum(cached)
    for ids, result in zip(nexts, results, strict=True):
        assert result.tokens == _greedy_after(tiny, ids, 10)


async def test_no_prefix_cache_when_it_is_given_no_memory(
    tiny_llama: Tiny, make_engine: Any
) -> None:
    engine = make_engine(tiny_llama, prefix_cache_bytes=0)
    ids = tiny_llama.ids(" ".join(PROMPTS[:3]))
    for name in ("one", "two"):
        result = await collect(engine.generate(name, ids, GREEDY))
        assert result.tokens == tiny_llama.reference(" ".join(PROMPTS[:3]))
    assert engine.stats()["prefix_cache_hits"] == 0
    assert engine.stats()["prefix_cache_entries"] == 0


# ---- requests on their way: the queue held so they share one prefill pass ---------------------

ARRIVING = SamplingParams(temperature=0, max_tokens=6)


def _slow_prefill_measured(engine: Any, seconds_per_token: float) -> None:
    """As if a prefill pass had been measured this slow, so a hold is long enough to observe."""
    engine._scheduler._prefill_token_s = seconds_per_token


async def test_requests_on_their_way_are_prefilled_with_one_already_waiting(
    tiny_llama: Tiny, make_engine: Any
) -> None:
    engine = make_engine(tiny_llama, admission_hold_s=30.0, prefill="batched")
    arrivals = Arrivals()
    engine.follow(arrivals)
    _slow_prefill_measured(engine, 1.0)  # a pass would take seconds: worth waiting for
    before = engine.stats()["prefills"]
    with (
        arrivals.expecting() as first,
        arrivals.expecting() as second,
        arrivals.expecting() as third,
    ):
        leader = engine.generate("leader", tiny_llama.ids(PROMPTS[0]), ARRIVING, first)
        # The leader reached an idle engine; the others are still on their way.
        await asyncio.sleep(0.3)
        assert engine.stats()["prefills"] == before
        streams = [
            leader,
            engine.generate("second", tiny_llama.ids(PROMPTS[2]), ARRIVING, second),
            engine.generate("third", tiny_llama.ids(PROMPTS[4]), ARRIVING, third),
        ]
        results = await asyncio.wait_for(asyncio.gather(*(collect(s) for s in streams)), timeout=30)
    assert engine.stats()["prefills"] == before + 1  # one pass for all three
    for prompt, result in zip((PROMPTS[0], PROMPTS[2], PROMPTS[4]), results, strict=True):
        assert result.tokens == tiny_llama.reference(prompt, 6)


async def test_the_hold_lasts_no_longer_than_the_pass_it_waits_to_share(
    tiny_llama: Tiny, make_engine: Any
) -> None:
    engine = make_engine(tiny_llama, admission_hold_s=30.0)
    arrivals = Arrivals()
    engine.follow(arrivals)
    ids = tiny_llama.ids(PROMPTS[0])
    _slow_prefill_measured(engine, 0.4 / len(ids))  # a pass of about 0.4 s
    with arrivals.expecting() as arrival, arrivals.expecting():  # the second never comes
        started = time.monotonic()
        result = await asyncio.wait_for(
            collect(engine.generate("alone", ids, ARRIVING, arrival)), timeout=30
        )
        waited = time.monotonic() - started
        assert arrivals.pending == 1
    assert result.tokens == tiny_llama.reference(PROMPTS[0], 6)
    assert waited >= 0.4


async def test_the_setting_caps_the_hold(tiny_llama: Tiny, make_engine: Any) -> None:
    engine = make_engine(tiny_llama, admission_hold_s=0.2)
    arrivals = Arrivals()
    engine.follow(arrivals)
    _slow_prefill_measured(engine, 100.0)  # measured far longer than the setting allows
    ids = tiny_llama.ids(PROMPTS[0])
    with arrivals.expecting() as arrival, arrivals.expecting():  # the second never comes
        started = time.monotonic()
        # Held for the setting's 0.2 s, not the hundreds of seconds measured.
        result = await asyncio.wait_for(
            collect(engine.generate("capped", ids, ARRIVING, arrival)), timeout=30
        )
        assert time.monotonic() - started >= 0.2
    assert result.tokens == tiny_llama.reference(PROMPTS[0], 6)


async def test_a_zero_setting_never_holds(tiny_llama: Tiny, make_engine: Any) -> None:
    engine = make_engine(tiny_llama, admission_hold_s=0)
    arrivals = Arrivals()
    engine.follow(arrivals)
    _slow_prefill_measured(engine, 100.0)
    scheduler = engine._scheduler
    with arrivals.expecting(), arrivals.expecting() as arrival, scheduler._cond:
        stream = engine.generate("unheld", tiny_llama.ids(PROMPTS[0]), ARRIVING, arrival)
        assert arrivals.pending == 1
        assert scheduler._hold_s() == 0
    result = await asyncio.wait_for(collect(stream), timeout=30)
    assert result.tokens == tiny_llama.reference(PROMPTS[0], 6)


async def test_nothing_is_held_when_nothing_is_on_its_way(
    tiny_llama: Tiny, make_engine: Any
) -> None:
    engine = make_engine(tiny_llama, admission_hold_s=30.0)
    arrivals = Arrivals()
    engine.follow(arrivals)
    _slow_prefill_measured(engine, 100.0)
    scheduler = engine._scheduler
    with arrivals.expecting() as arrival, scheduler._cond:
        stream = engine.generate("only", tiny_llama.ids(PROMPTS[0]), ARRIVING, arrival)
        assert arrivals.pending == 0
        assert scheduler._hold_s() == 0
    result = await asyncio.wait_for(collect(stream), timeout=30)
    assert result.tokens == tiny_llama.reference(PROMPTS[0], 6)
