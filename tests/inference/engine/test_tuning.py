"""Choosing the engine's configuration by measuring it at load (engine/tuning.py), on the real
tiny models: candidates are timed, the fastest agreeing one is kept, pins skip the search, and a
candidate whose greedy output drifts from the float32 reference is rejected."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from services.inference.engine import Engine, EngineOptions, SamplingParams
from services.inference.engine.cpu import packable
from services.inference.engine.tuning import (
    Candidate,
    CpuFeatures,
    TrialResult,
    TuningReport,
    Variant,
    _best,
    apply_variant,
    cpu_features,
    plan,
    thread_candidates,
    tune,
)
from shared.model_loading import load_causal_lm
from tests.models_hub.tiny_models import build_tiny_gpt2, build_tiny_llama

# int8 weights are off unless a setting asks for them: that choice is always the setting's.
TUNED = {"dtype": "tuned", "threads": "tuned", "packing": "tuned", "quantization": "pinned"}


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("tuning-llama") / "model")


@pytest.fixture(scope="module")
def llama(llama_dir: Path) -> tuple[Any, Any]:
    return load_causal_lm(llama_dir)


@pytest.fixture
def loaded() -> Iterator[list[Engine]]:
    engines: list[Engine] = []
    yield engines
    for engine in engines:
        engine.close_sync()


def _features(*flags: str, cpus: int = 2) -> CpuFeatures:
    return CpuFeatures(model="test CPU", flags=flags, capability="AVX2", cpus=cpus)


def _perturbed(base: Any, variant: Variant) -> Any:
    """The variant built as usual, from weights with noise added: an honest drifting model."""
    model = copy.deepcopy(base)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            parameter.add_(noise.to(parameter.dtype) * parameter.abs().mean() * 4)
    apply_variant(model, variant, batch_hint=8, pack_min_elements=0)
    return model


def test_load_measures_candidates_and_keeps_a_measured_one(
    llama_dir: Path, loaded: list[Engine]
) -> None:
    engine = Engine.load(llama_dir, options=EngineOptions(tune_seconds=10))
    loaded.append(engine)
    report = engine.tuning
    assert report is not None
    measured = [t for t in report.trials if t.status == "measured"]
    assert measured
    assert all((t.step_ms_1 or 0) > 0 and (t.step_ms_batch or 0) > 0 for t in measured)
    assert all((t.prefill_ms or 0) > 0 for t in measured)
    assert report.chosen in [t.candidate for t in measured]
    assert engine.dtype == report.chosen.variant.dtype
    assert engine.cpu_threads == report.chosen.threads
    assert engine.cpu_linear == ("onednn" if report.chosen.variant.packed else "dense")
    assert report.sources == TUNED
    assert report.features is not None
    assert report.features.cpus >= 1


def test_the_fastest_variant_is_timed_at_every_thread_count(
    llama_dir: Path, loaded: list[Engine]
) -> None:
    engine = Engine.load(llama_dir, options=EngineOptions(tune_seconds=10, cpu_onednn="off"))
    loaded.append(engine)
    report = engine.tuning
    assert report is not None
    assert report.features is not None
    counts = thread_candidates(report.features.cpus)
    by_variant: dict[Variant, set[int | None]] = {}
    for trial in report.trials:
        if trial.status == "measured":
            by_variant.setdefault(trial.candidate.variant, set()).add(trial.candidate.threads)
    # every variant at the most threads; one of them at every count
    assert all(max(counts) in timed for timed in by_variant.values())
    assert set(counts) in by_variant.values()


def _reference(llama: tuple[Any, Any], count: int) -> tuple[list[int], list[int]]:
    """A prompt's ids and the reference model's first `count` greedy tokens after it."""
    model, tokenizer = llama
    prompt = list(tokenizer("The quick brown fox")["input_ids"])
    ids = torch.tensor([prompt])
    with torch.inference_mode():
        out = model.generate(
            ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=count
        )
    return prompt, out[0, len(prompt) :].tolist()


async def test_the_tuned_engine_generates_like_the_reference(
    llama_dir: Path, llama: tuple[Any, Any], loaded: list[Engine]
) -> None:
    prompt, expected = _reference(llama, 8)
    engine = Engine.load(llama_dir, options=EngineOptions(tune_seconds=10))
    loaded.append(engine)
    stream = engine.generate("t", prompt, SamplingParams(temperature=0, max_tokens=8))
    tokens = [event.token_id async for event in stream if event.token_id is not None]
    assert tokens == expected


async def test_measured_threads_are_chosen_again_per_step_as_the_engine_serves(
    llama_dir: Path, llama: tuple[Any, Any], loaded: list[Engine]
) -> None:
    _, tokenizer = llama
    prompt, expected = _reference(llama, 12)
    served, _ = load_causal_lm(llama_dir)
    chosen = Candidate(Variant("float32"), 2)
    engine = Engine(
        served,
        tokenizer,
        options=EngineOptions(cpu_threads=2, cpu_onednn="off"),
        tuning=TuningReport(chosen=chosen, sources=TUNED, device="cpu", batch=8),
    )
    loaded.append(engine)
    stream = engine.generate("t", prompt, SamplingParams(temperature=0, max_tokens=12))
    tokens = [event.token_id async for event in stream if event.token_id is not None]
    assert tokens == expected  # the same answer whichever count each step ran with
    by_rows = engine.stats()["threads_by_rows"]
    assert set(by_rows) == {"1"}
    assert set(by_rows["1"]["step_ms"]) == {"1", "2"}  # both tried on the lone stream's steps
    assert by_rows["1"]["threads"] in (1, 2)
    # a pinned count is left alone
    pinned = Engine(
        copy.deepcopy(served), tokenizer, options=EngineOptions(cpu_threads=2, cpu_onednn="off")
    )
    loaded.append(pinned)
    assert pinned.stats()["threads_by_rows"] is None


def test_pinned_settings_skip_the_measurement(llama_dir: Path, loaded: list[Engine]) -> None:
    engine = Engine.load(
        llama_dir,
        dtype=torch.float32,
        options=EngineOptions(tune_seconds=10, cpu_threads=1, cpu_onednn="off"),
    )
    loaded.append(engine)
    report = engine.tuning
    assert report is not None
    assert report.trials == []
    assert report.sources == {
        "dtype": "pinned",
        "threads": "pinned",
        "packing": "pinned",
        "quantization": "pinned",
    }
    assert (engine.dtype, engine.cpu_threads, engine.cpu_linear) == ("float32", 1, "dense")


def test_a_pinned_choice_is_not_searched(llama_dir: Path, loaded: list[Engine]) -> None:
    engine = Engine.load(llama_dir, options=EngineOptions(tune_seconds=10, cpu_threads=1))
    loaded.append(engine)
    assert engine.tuning is not None
    assert engine.tuning.sources == {**TUNED, "threads": "pinned"}
    assert {t.candidate.threads for t in engine.tuning.trials} == {1}
    assert engine.cpu_threads == 1


def test_no_budget_keeps_the_fixed_choices(llama_dir: Path, loaded: list[Engine]) -> None:
    engine = Engine.load(llama_dir, options=EngineOptions(tune_seconds=0))
    loaded.append(engine)
    assert engine.tuning is None
    assert engine.dtype == "float32"
    assert engine.stats()["tuning"] is None


def test_a_packed_candidate_that_agrees_is_measured(llama: tuple[Any, Any]) -> None:
    model, tokenizer = llama
    variants = [Variant("float32"), Variant("float32", packed=True)]
    report = tune(model, tokenizer, variants, [1], sources=TUNED, budget_s=10, pack_min_elements=0)
    assert [(t.candidate.variant, t.status) for t in report.trials] == [
        (Variant("float32"), "measured"),
        (Variant("float32", packed=True), "measured"),
    ]


def test_a_drifting_candidate_is_rejected(llama: tuple[Any, Any]) -> None:
    model, tokenizer = llama
    variants = [Variant("float32"), Variant("float32", packed=True)]
    report = tune(model, tokenizer, variants, [1, 2], sources=TUNED, budget_s=10, build=_perturbed)
    rejected = [t for t in report.trials if t.candidate.variant.packed]
    assert [t.status for t in rejected] == ["rejected"]
    assert "differs from the float32 reference" in rejected[0].detail
    assert rejected[0].step_ms_1 is None
    assert report.chosen.variant == Variant("float32")


def test_a_drifting_bf16_model_is_served_in_fp32(
    llama: tuple[Any, Any], caplog: pytest.LogCaptureFixture
) -> None:
    model, tokenizer = llama
    with caplog.at_level("WARNING", logger="llmnet.inference.engine"):
        report = tune(
            model,
            tokenizer,
            [Variant("float32"), Variant("bfloat16")],
            [1],
            sources=TUNED,
            budget_s=10,
            build=_perturbed,
        )
    assert report.chosen.variant.dtype == "float32"
    assert "bfloat16 drifts from the float32 reference" in caplog.text


def test_the_time_box_skips_what_it_did_not_reach(llama: tuple[Any, Any]) -> None:
    model, tokenizer = llama
    variants = [Variant("float32"), Variant("bfloat16")]
    report = tune(model, tokenizer, variants, [1, 2], sources=TUNED, budget_s=1e-9)
    # one measurement of the reference always runs, so there is a measured choice
    assert [t.status for t in report.trials] == ["measured", "skipped", "skipped"]
    assert report.chosen == report.trials[0].candidate
    assert report.chosen.variant == Variant("float32")


def test_the_time_box_reaches_the_likeliest_winners_first(llama: tuple[Any, Any]) -> None:
    model, tokenizer = llama
    variants = [
        Variant("float32"),
        Variant("float32", packed=True),
        Variant("bfloat16"),
        Variant("bfloat16", packed=True),
    ]
    report = tune(model, tokenizer, variants, [1], sources=TUNED, budget_s=1e-9)
    # after the reference: the lower precision, packed first; float32 packing last
    assert [(t.candidate.variant, t.status) for t in report.trials] == [
        (Variant("float32"), "measured"),
        (Variant("bfloat16", packed=True), "skipped"),
        (Variant("bfloat16"), "skipped"),
        (Variant("float32", packed=True), "skipped"),
    ]


def test_gpu_dtypes_are_chosen_by_the_same_measurement(tmp_path: Path) -> None:
    # The GPU path (no thread counts, a dtype per variant) on CPU: every dtype is checked
    # against float32 and timed, and the choice is one that agreed.
    model, tokenizer = load_causal_lm(build_tiny_gpt2(tmp_path / "gpt2"))
    variants, counts = plan("cuda", features=None)
    report = tune(model, tokenizer, variants, counts, sources={"dtype": "tuned"}, budget_s=10)
    assert [t.candidate.variant.dtype for t in report.trials] == [
        "float32",
        "bfloat16",
        "float16",
    ]
    assert {t.status for t in report.trials} <= {"measured", "rejected"}
    chosen = next(t for t in report.trials if t.candidate == report.chosen)
    assert chosen.status == "measured"
    assert report.chosen.threads is None


def test_plan_offers_bf16_only_where_the_cpu_runs_it() -> None:
    plain, _ = plan("cpu", features=_features("avx2"))
    assert {v.dtype for v in plain} == {"float32"}
    amx, counts = plan("cpu", features=_features("avx2", "amx_tile", "amx_bf16"))
    assert Variant("bfloat16") in amx
    # packed bf16 is a candidate where oneDNN runs bf16 on this machine
    assert (Variant("bfloat16", packed=True) in amx) == packable(torch.bfloat16)
    assert counts == [1, 2]


def test_plan_on_gpu_tries_dtypes_only() -> None:
    assert plan("cuda:0", features=None) == (
        [Variant("float32"), Variant("bfloat16"), Variant("float16")],
        [None],
    )
    assert plan("cuda", features=None, cuda_bf16=False)[0] == [
        Variant("float32"),
        Variant("float16"),
    ]
    assert plan("cuda", features=None, dtype="bfloat16") == ([Variant("bfloat16")], [None])


def test_plan_keeps_pinned_choices() -> None:
    variants, counts = plan(
        "cpu", features=_features("avx512_bf16", cpus=8), dtype="float32", threads=3, packing=False
    )
    assert (variants, counts) == ([Variant("float32")], [3])


def test_plan_offers_int8_weights_only_when_asked() -> None:
    features = _features("avx512_bf16")
    assert all(not v.quantized for v in plan("cpu", features=features)[0])
    auto, _ = plan("cpu", features=features, quantization="auto")
    assert auto[0] == Variant("float32")  # the reference first, int8 one more candidate
    assert auto[-1] == Variant("float32", quantized=True)
    assert plan("cpu", features=features, quantization="on")[0] == [
        Variant("float32", quantized=True)
    ]
    # int8 layers take float32 activations on CPU only
    assert all(not v.quantized for v in plan("cpu", features=None, dtype="bfloat16")[0])
    assert all(not v.quantized for v in plan("cuda", features=None, quantization="on")[0])


def test_int8_weights_serve_in_a_quarter_of_the_memory(
    llama_dir: Path, loaded: list[Engine]
) -> None:
    dense = Engine.load(llama_dir, options=EngineOptions(cpu_onednn="off"))
    loaded.append(dense)
    engine = Engine.load(llama_dir, options=EngineOptions(cpu_quantization="on"))
    loaded.append(engine)
    assert engine.cpu_linear == "int8"
    assert engine.stats()["cpu_linear"] == "int8"
    # every linear weight now takes one byte instead of four; embeddings stay float32
    assert engine.parameter_bytes < 0.7 * dense.parameter_bytes


async def test_an_int8_engine_generates(llama_dir: Path, loaded: list[Engine]) -> None:
    engine = Engine.load(llama_dir, options=EngineOptions(cpu_quantization="on"))
    loaded.append(engine)
    prompt = list(engine.tokenizer("The quick brown fox")["input_ids"])
    stream = engine.generate("t", prompt, SamplingParams(temperature=0, max_tokens=6))
    tokens = [event.token_id async for event in stream if event.token_id is not None]
    assert len(tokens) == 6


def test_a_drifting_int8_candidate_is_rejected_and_measured_ones_kept(
    llama: tuple[Any, Any],
) -> None:
    model, tokenizer = llama
    int8 = Variant("float32", quantized=True)
    report = tune(
        model,
        tokenizer,
        [Variant("float32"), int8],
        [1],
        sources=TUNED,
        budget_s=10,
        build=_perturbed,
    )
    assert [(t.candidate.variant, t.status) for t in report.trials] == [
        (Variant("float32"), "measured"),
        (int8, "rejected"),
    ]
    assert report.chosen.variant == Variant("float32")
    assert report.as_dict()["trials"][1]["quantized"] is True


def test_an_agreeing_int8_candidate_is_timed(llama: tuple[Any, Any]) -> None:
    # Agreement with the reference is the tuner's gate; with the reference itself quantized
    # the two agree by construction, so the int8 copy must be timed like any variant.
    model, tokenizer = llama
    reference = copy.deepcopy(model)
    apply_variant(reference, Variant("float32", quantized=True), batch_hint=8)
    int8 = Variant("float32", quantized=True)
    report = tune(
        reference,
        tokenizer,
        [Variant("float32"), int8],
        [1],
        sources=TUNED,
        budget_s=10,
        build=lambda base, variant: copy.deepcopy(base),
    )
    trial = next(t for t in report.trials if t.candidate.variant == int8)
    assert trial.status == "measured"
    assert (trial.step_ms_1 or 0) > 0


def test_thread_candidates_span_the_cpus() -> None:
    assert thread_candidates(1) == [1]
    assert thread_candidates(2) == [1, 2]
    assert thread_candidates(16) == [1, 2, 4, 8, 15, 16]
    assert thread_candidates(64) == [1, 2, 4, 8, 63, 64]


def test_cpu_features_reads_the_flags_that_matter(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nmodel name\t: Example Xeon\n"
        "flags\t\t: fpu sse avx2 fma avx512f avx512_bf16 amx_tile amx_bf16\n"
    )
    features = cpu_features(cpuinfo)
    assert features.model == "Example Xeon"
    assert features.flags == ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")
    assert features.native_bf16
    assert not cpu_features(tmp_path / "missing").native_bf16


def test_a_much_faster_prefill_outweighs_slightly_slower_steps() -> None:
    """On AVX-512 BF16 without AMX, bf16 decode steps can be a little slower than packed
    float32 while its prefill (a new turn's prompt) is far faster: bf16 serves."""
    fp32 = Candidate(Variant("float32", packed=True), 2)
    bf16 = Candidate(Variant("bfloat16"), 2)
    trials = [
        TrialResult(fp32, "measured", step_ms_1=18.0, step_ms_batch=25.0, prefill_ms=60.0),
        TrialResult(bf16, "measured", step_ms_1=19.0, step_ms_batch=26.0, prefill_ms=35.0),
    ]
    assert _best(trials) == bf16
    assert _best([*trials[:1], TrialResult(bf16, "measured", 19.0, 26.0, 58.0)]) == fp32


def test_a_model_with_a_short_context_is_measured_within_it(
    tmp_path: Path, loaded: list[Engine]
) -> None:
    """The timed prefill is cut to the model's context (GPT-2's positions are a table)."""
    engine = Engine.load(
        build_tiny_gpt2(tmp_path / "short", positions=48), options=EngineOptions(tune_seconds=10)
    )
    loaded.append(engine)
    assert engine.tuning is not None
    measured = [t for t in engine.tuning.trials if t.status == "measured"]
    assert measured
    assert all((t.prefill_ms or 0) > 0 for t in measured)
