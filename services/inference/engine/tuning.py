"""Choosing how a model runs on this machine by measuring it, once, at load.

A fixed choice (say "one thread less than the CPUs, oneDNN-packed float32") that was fastest on
one machine can halve single-stream speed on another, and leaves bf16 unused on CPUs that run it
natively (AMX, AVX-512 BF16). So `tune` tries the configurations that matter on the device:

- CPU: the dtype (float32, plus bfloat16 where the CPU has `avx512_bf16` or `amx_bf16`), oneDNN
  packing of the linear layers (float32, and bfloat16 where oneDNN runs it; see `cpu.py`) on
  and off, int8 linear weights when INFERENCE_CPU_QUANTIZATION asks for them (see
  `quantization.py`), and the intra-op thread count (1, 2, 4, ... up to the CPUs this process
  may use);
- GPU: the dtype (bfloat16 where supported, float16, float32).

Each model variant (dtype x packing) is first checked against the float32 reference on probe
prompts: its greedy tokens must be the reference's, token for token, or the variant is rejected
(a model whose bf16 output drifts is served in float32, and the log says so). A variant that
agrees is then timed for a few decode steps at batch 1 and at a larger batch (`batch`), and
for one prefill (`PREFILL_TIMING_TOKENS`): every variant at the most threads first, then the
fastest variant at the other thread counts (timing the whole grid would cost its product, and
the dtype and packing that win rarely depend on the thread count). The fastest agreeing
candidate wins: the score is the sum of its step time at each batch size and of its prefill
time, each relative to the best measured, so neither single streams, full batches nor prompts
are sacrificed. The reference variant is measured first, so there is always a choice.

The whole search is time-boxed (`budget_s`, checked before each variant and each measurement:
it may run past it by one of them; one warm-up step before it is not counted), except that one
measurement of the reference always runs; what the budget did not reach is reported as
skipped. The agreement probe runs the probe prompts as one batch, and the reference's tokens
are computed only once a variant needs them. It runs where the model is loaded (`Engine.load`,
on a thread of its own that ends afterwards, so no OpenMP team outlives it and the engine's
thread later runs as the tuner measured: see `engine._on_own_thread`) and needs memory for the
reference plus one variant at a time. SmolLM2-135M on the shared 2-core test machine (AVX-512
BF16, no AMX): 4.5-5.9 s for fp32, bf16 and packed fp32 at 2 threads (the budget skipped bf16
at 1); it chose bf16 at 2 threads in three loads of three (33-37 ms/step alone, 40-42 ms at 8
rows, 134-137 ms for the prefill, against 39-44, 41-47 and 216-242 ms for packed fp32).

Threads: torch's thread count is process-wide in part. `torch.set_num_threads(n)` sets the
OpenMP thread count of the *calling* thread (OpenMP keeps it per thread) and, process-wide, the
size of torch's native intra-op pool and MKL's count. The tuning thread therefore sets each
candidate's count on itself while timing it and restores its own count afterwards; the chosen
count travels in `EngineOptions.cpu_threads` to the engine's scheduler thread, which calls
`torch.set_num_threads` on itself when its loop starts (scheduler.py), so every forward pass of
that engine runs with it. Several engines in one process each set their own OpenMP count; only the
process-wide pieces follow whichever engine set them last.

Each choice can be pinned (settings INFERENCE_DTYPE, INFERENCE_CPU_THREADS, INFERENCE_CPU_PACKING,
INFERENCE_CPU_QUANTIZATION):
a pinned choice is not searched, and with all of them pinned nothing is measured.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch

from services.inference.engine.cpu import (
    MIN_PACKED_ELEMENTS,
    PackingBroke,
    pack_linear_layers,
    packable,
)
from services.inference.engine.prompts import context_length
from services.inference.engine.quantization import int8_available, quantize_linear_int8

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = [
    "Candidate",
    "CpuFeatures",
    "TrialResult",
    "TuningReport",
    "Variant",
    "apply_variant",
    "build_variant",
    "cpu_features",
    "plan",
    "thread_candidates",
    "tune",
    "usable_cpus",
]

logger = logging.getLogger("llmnet.inference.engine")

#: Probe prompts for the agreement check; each gives `PROBE_TOKENS` greedy tokens.
PROBE_PROMPTS = (
    "The capital of France is",
    "def fibonacci(n):\n    ",
    "Once upon a time, in a small village,",
)
PROBE_TOKENS = 8
#: Decode steps timed per measurement (after one warm-up step), over a prompt this long.
TIMED_STEPS = 3
TIMING_PROMPT_TOKENS = 8
#: The timed prefill: one prompt this long. A new turn's prompt is hundreds of tokens, and its
#: prefill is where a dtype whose matmuls run in hardware gains most: decode steps alone, close
#: between packed float32 and bf16 on AVX-512 BF16, chose float32 on one run and bf16 on the
#: next, and float32's prefill there is 1.5x slower (time to first token 3.4 s against 2.0 s for
#: 16 conversations). Shorter prompts hide it under each layer's fixed cost (1.3x at 64 tokens).
PREFILL_TIMING_TOKENS = 128
#: The flags that matter for CPU inference, reported as they are found in /proc/cpuinfo.
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")

Status = Literal["measured", "rejected", "skipped", "failed"]
#: INFERENCE_CPU_QUANTIZATION: "off" never, "on" only int8 (pinned), "auto" int8 as a candidate.
Quantization = Literal["auto", "on", "off"]


# ---- the machine --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CpuFeatures:
    """What this CPU offers: its model name, the flags that matter, torch's kernel level."""

    model: str
    flags: tuple[str, ...]
    capability: str
    cpus: int

    @property
    def native_bf16(self) -> bool:
        """bfloat16 matmuls run in hardware (AMX or AVX-512 BF16), so bf16 may beat float32."""
        return "amx_bf16" in self.flags or "avx512_bf16" in self.flags

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "flags": list(self.flags),
            "capability": self.capability,
            "cpus": self.cpus,
            "native_bf16": self.native_bf16,
        }


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def cpu_features(cpuinfo: Path = Path("/proc/cpuinfo")) -> CpuFeatures:
    """Read the CPU's model and flags (Linux's /proc/cpuinfo; empty elsewhere)."""
    model, flags = "unknown", set[str]()
    with contextlib.suppress(OSError):
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and model == "unknown":
                model = value.strip()
            elif key == "flags" and not flags:
                flags = set(value.split())
    try:
        capability = str(torch.backends.cpu.get_cpu_capability())
    except Exception:  # older torch: the level is only informative
        capability = "unknown"
    return CpuFeatures(
        model=model,
        flags=tuple(f for f in CPU_FLAGS if f in flags),
        capability=capability,
        cpus=usable_cpus(),
    )


# ---- what is tried ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """How the weights are held: dtype ("float32", "bfloat16", "float16"), oneDNN packing, or
    int8 linear weights (`quantized`, float32 only)."""

    dtype: str
    packed: bool = False
    quantized: bool = False

    @property
    def label(self) -> str:
        return f"{self.dtype}{'-onednn' if self.packed else ''}{'-int8' if self.quantized else ''}"


@dataclass(frozen=True)
class Candidate:
    """One configuration: a variant and the intra-op thread count (None on GPU)."""

    variant: Variant
    threads: int | None

    @property
    def label(self) -> str:
        threads = "" if self.threads is None else f" x{self.threads} threads"
        return f"{self.variant.label}{threads}"


def thread_candidates(cpus: int, limit: int = 6) -> list[int]:
    """1, 2, 4, ... and the count just below and at `cpus`; at most `limit`, largest kept."""
    counts = {1, cpus, max(1, cpus - 1)}
    n = 2
    while n < cpus:
        counts.add(n)
        n *= 2
    ordered = sorted(counts)
    if len(ordered) > limit:
        ordered = [*ordered[: limit - 2], *ordered[-2:]]
    return ordered


def plan(
    device: str,
    *,
    features: CpuFeatures | None,
    dtype: str | None = None,
    threads: int | None = None,
    packing: bool | None = None,
    quantization: Quantization = "off",
    cuda_bf16: bool = True,
) -> tuple[list[Variant], list[int | None]]:
    """The variants and thread counts to try; a pinned choice (not None, or quantization "on")
    is the only option. The first variant is the float32 reference (or the pinned dtype's dense
    variant)."""
    if torch.device(device).type != "cpu":
        if dtype is not None:
            return [Variant(dtype)], [None]
        # float32 first: the reference, measured before anything else
        gpu = ["float32", *(["bfloat16"] if cuda_bf16 else []), "float16"]
        return [Variant(d) for d in gpu], [None]
    cpus = features.cpus if features is not None else usable_cpus()
    dtypes = [dtype] if dtype is not None else ["float32"]
    if dtype is None and features is not None and features.native_bf16:
        dtypes.append("bfloat16")
    variants: list[Variant] = []
    for name in dtypes:
        # oneDNN packs float32 and (where it runs bf16) bfloat16 layers; others stay dense
        can_pack = packable(getattr(torch, name))
        options = [False, True] if can_pack else [False]
        if packing is not None:
            options = [packing and can_pack]
        variants.extend(Variant(name, packed) for packed in options)
    if "float32" in dtypes and quantization != "off" and int8_available():
        int8 = Variant("float32", quantized=True)
        variants = [int8] if quantization == "on" else [*variants, int8]
    counts: list[int | None] = [threads] if threads is not None else [*thread_candidates(cpus)]
    return variants, counts


# ---- building and measuring ---------------------------------------------------------------------


def apply_variant(
    model: PreTrainedModel,
    variant: Variant,
    *,
    batch_hint: int,
    pack_min_elements: int = MIN_PACKED_ELEMENTS,
) -> bool:
    """Change `model` in place into `variant`. False when the variant does not apply (packing
    found no layer to pack, quantization no linear layer); raises `PackingBroke` when packing
    changed the model's outputs."""
    target = getattr(torch, variant.dtype)
    if next(model.parameters()).dtype != target:
        model.to(target)
    if variant.quantized:
        return quantize_linear_int8(model)
    if variant.packed:
        return pack_linear_layers(model, batch_hint=batch_hint, min_elements=pack_min_elements)
    return True


def build_variant(
    reference: PreTrainedModel,
    variant: Variant,
    *,
    batch_hint: int,
    pack_min_elements: int = MIN_PACKED_ELEMENTS,
) -> PreTrainedModel | None:
    """A copy of the reference model as `variant` (None when the variant does not apply)."""
    model = copy.deepcopy(reference)
    if not apply_variant(
        model, variant, batch_hint=batch_hint, pack_min_elements=pack_min_elements
    ):
        return None
    return model


#: `build(reference, variant)`: the model to try for a variant (None: not applicable).
Builder = Callable[["PreTrainedModel", Variant], "PreTrainedModel | None"]


@contextlib.contextmanager
def _threads(count: int | None) -> Iterator[None]:
    """Run with `count` intra-op threads on this thread, then restore its own count."""
    if count is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _vocab(model: PreTrainedModel) -> int:
    return int(model.config.get_text_config(decoder=True).vocab_size)


def _forward(model: PreTrainedModel, ids: torch.Tensor, cache: Any) -> torch.Tensor:
    """The last position's logits; the KV cache goes in as `cache`, as in kv.py."""
    out = model(input_ids=ids, cache=cache, use_cache=True, return_dict=True)
    logits: torch.Tensor = out.logits[:, -1, :]
    return logits


def probe_prompts(tokenizer: PreTrainedTokenizerBase | None, vocab: int) -> torch.Tensor:
    """The probe prompts as one batch of token ids: each cut to the shortest one's length, so
    they run together without padding (plain ids when the tokenizer gives none)."""
    prompts: list[list[int]] = []
    if tokenizer is not None:
        for text in PROBE_PROMPTS:
            with contextlib.suppress(Exception):
                ids = [int(i) for i in tokenizer(text)["input_ids"] if 0 <= int(i) < vocab]
                if len(ids) >= 2:
                    prompts.append(ids)
    if not prompts:
        prompts = [[(7 * i + 3) % vocab for i in range(8)]]
    length = min(len(p) for p in prompts)
    return torch.tensor([p[:length] for p in prompts], dtype=torch.long)


def greedy_tokens(model: PreTrainedModel, prompts: torch.Tensor, count: int) -> list[list[int]]:
    """`count` greedy tokens after each row of `prompts` (with the KV cache, as decoding runs;
    the rows run as one batch)."""
    from transformers import DynamicCache

    device = next(model.parameters()).device
    ids = prompts.to(device)
    cache = DynamicCache(config=model.config)
    steps: list[torch.Tensor] = []
    with torch.inference_mode():
        for _ in range(count):
            ids = _forward(model, ids, cache).float().argmax(-1, keepdim=True)
            steps.append(ids)
    tokens: list[list[int]] = torch.cat(steps, dim=1).tolist()
    return tokens


def decode_step_seconds(model: PreTrainedModel, batch: int, steps: int = TIMED_STEPS) -> float:
    """Median time of one decode step for `batch` rows (after a prefill and one warm-up step)."""
    from transformers import DynamicCache

    device = next(model.parameters()).device
    vocab = _vocab(model)
    row = [(11 * i + 5) % vocab for i in range(TIMING_PROMPT_TOKENS)]
    ids = torch.tensor([row] * batch, dtype=torch.long, device=device)
    cache = DynamicCache(config=model.config)
    times: list[float] = []
    with torch.inference_mode():
        logits = _forward(model, ids, cache)
        for _ in range(steps + 1):
            ids = logits.float().argmax(-1, keepdim=True)
            _sync(device)
            started = time.perf_counter()
            logits = _forward(model, ids, cache)
            _sync(device)
            times.append(time.perf_counter() - started)
    return statistics.median(times[1:] or times)


def prefill_seconds(model: PreTrainedModel, tokens: int = PREFILL_TIMING_TOKENS) -> float:
    """Time of a prefill of one `tokens`-long prompt (measured on a model that has run: a first
    pass at a new shape was no slower than the next)."""
    from transformers import DynamicCache

    device = next(model.parameters()).device
    vocab = _vocab(model)
    tokens = min(tokens, context_length(model))
    ids = torch.tensor([[(7 * i + 3) % vocab for i in range(tokens)]], device=device)
    with torch.inference_mode():
        cache = DynamicCache(config=model.config)
        _sync(device)
        started = time.perf_counter()
        _forward(model, ids, cache)
        _sync(device)
        return time.perf_counter() - started


# ---- the report ---------------------------------------------------------------------------------


@dataclass
class TrialResult:
    """One candidate's outcome: its step times (milliseconds) at batch 1 and at the report's
    batch size and its prefill time, or why it was not measured."""

    candidate: Candidate
    status: Status
    step_ms_1: float | None = None
    step_ms_batch: float | None = None
    prefill_ms: float | None = None
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "dtype": self.candidate.variant.dtype,
            "packing": self.candidate.variant.packed,
            "quantized": self.candidate.variant.quantized,
            "threads": self.candidate.threads,
            "status": self.status,
            "step_ms_1": self.step_ms_1,
            "step_ms_batch": self.step_ms_batch,
            "prefill_ms": self.prefill_ms,
            "detail": self.detail,
        }


@dataclass
class TuningReport:
    """The configuration chosen for one model, where each choice came from ("tuned", "pinned"
    or "default"), and every candidate's result."""

    chosen: Candidate
    sources: dict[str, str]
    device: str
    batch: int
    seconds: float = 0.0
    trials: list[TrialResult] = field(default_factory=list)
    features: CpuFeatures | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "dtype": self.chosen.variant.dtype,
            "packing": self.chosen.variant.packed,
            "quantized": self.chosen.variant.quantized,
            "threads": self.chosen.threads,
            "sources": dict(self.sources),
            "device": self.device,
            "batch": self.batch,
            "seconds": round(self.seconds, 4),
            "trials": [t.as_dict() for t in self.trials],
            "cpu": None if self.features is None else self.features.as_dict(),
        }


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def _best(measured: Sequence[TrialResult]) -> Candidate | None:
    """The candidate with the lowest sum of its step times at batch 1 and at the larger batch
    and its prefill time, each relative to the best measured (the first one on a tie)."""
    if not measured:
        return None
    best_1 = min(t.step_ms_1 or 0.0 for t in measured) or 1e-9
    best_batch = min(t.step_ms_batch or 0.0 for t in measured) or 1e-9
    best_prefill = min(t.prefill_ms or 0.0 for t in measured) or 1e-9

    def score(trial: TrialResult) -> float:
        return (
            (trial.step_ms_1 or 0.0) / best_1
            + (trial.step_ms_batch or 0.0) / best_batch
            + (trial.prefill_ms or 0.0) / best_prefill
        )

    return min(measured, key=score).candidate


def tune(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase | None,
    variants: Sequence[Variant],
    threads: Sequence[int | None],
    *,
    sources: dict[str, str],
    budget_s: float,
    batch: int = 8,
    features: CpuFeatures | None = None,
    build: Builder | None = None,
    pack_min_elements: int = MIN_PACKED_ELEMENTS,
    name: str = "model",
) -> TuningReport:
    """Measure every candidate (`variants` x `threads`) against `model`, the reference (dense,
    float32 unless the dtype is pinned): the variant that is the reference itself runs on it,
    every other one on a copy built by `build` (default `build_variant`), checked first for
    greedy agreement with the reference. Blocking: call it off the event loop. Returns the
    report; the caller applies the chosen variant to the model (`apply_variant`)."""
    parameter = next(model.parameters())
    device = parameter.device
    reference = Variant(str(parameter.dtype).removeprefix("torch."))
    if build is None:

        def build(base: PreTrainedModel, variant: Variant) -> PreTrainedModel | None:
            return build_variant(
                base, variant, batch_hint=batch, pack_min_elements=pack_min_elements
            )

    prompts = probe_prompts(tokenizer, _vocab(model))
    expected: list[list[int]] | None = None  # the reference's, once another variant needs them
    trials: list[TrialResult] = []
    skipped = "tuning time budget spent"

    def spent() -> bool:
        return time.monotonic() >= deadline and any(t.status == "measured" for t in trials)

    def instance(candidate: Candidate, check: bool) -> PreTrainedModel | None:
        """The model to time `candidate` on; None (with its trial recorded) when it cannot be
        built, does not apply, or drifts from the reference."""
        nonlocal expected
        variant = candidate.variant
        if variant == reference:
            return model
        try:
            built = build(model, variant)
        except PackingBroke as exc:
            trials.append(TrialResult(candidate, "rejected", detail=str(exc)))
            return None
        except Exception as exc:
            detail = f"could not be built: {type(exc).__name__}: {exc}"
            trials.append(TrialResult(candidate, "failed", detail=detail))
            return None
        if built is None or not check:
            return built  # None: does not apply (no layer large enough to pack): no candidate
        if expected is None:
            expected = greedy_tokens(model, prompts, PROBE_TOKENS)
        if greedy_tokens(built, prompts, PROBE_TOKENS) != expected:
            logger.warning(
                "model %s: %s drifts from the float32 reference on the probe prompts (greedy "
                "tokens differ); not served that way",
                name,
                variant.label,
            )
            detail = "greedy output differs from the float32 reference on the probe prompts"
            trials.append(TrialResult(candidate, "rejected", detail=detail))
            return None
        return built

    def measure(candidate: Candidate, subject: PreTrainedModel) -> None:
        try:
            with _threads(candidate.threads):
                one = decode_step_seconds(subject, 1)
                full = decode_step_seconds(subject, batch)
                prefill = prefill_seconds(subject)
        except Exception as exc:
            trials.append(TrialResult(candidate, "failed", detail=f"{type(exc).__name__}: {exc}"))
            return
        trials.append(TrialResult(candidate, "measured", _ms(one), _ms(full), _ms(prefill)))

    # Warm-up outside the time box: a process's first forward pass sets kernels up (~1 s).
    with contextlib.suppress(Exception):
        decode_step_seconds(model, 1, steps=0)
    started = time.monotonic()
    deadline = started + budget_s
    # 1. Every variant (dtype x packing) at the most threads, the reference first: it needs no
    #    agreement check, and it is measured whatever the budget (there is always a choice).
    most = threads[-1]
    #    Then the other dtypes before the reference's (a lower precision gains most), packed
    #    before dense (packed bf16 beat dense bf16 at every shape measured), int8 last: what the
    #    budget leaves out is what least likely wins.
    for variant in sorted(
        variants,
        key=lambda v: (v != reference, v.dtype == reference.dtype, not v.packed, v.quantized),
    ):
        candidate = Candidate(variant, most)
        if spent():
            trials.append(TrialResult(candidate, "skipped", detail=skipped))
            continue
        subject = instance(candidate, check=True)
        if subject is not None:
            measure(candidate, subject)
        del subject  # freed by reference counting (a gc pass costs ~0.3 s)
    # 2. The fastest variant at the other thread counts (the dtype and packing that win rarely
    #    depend on the thread count; timing the whole grid would cost its product).
    leader = _best([t for t in trials if t.status == "measured"])
    if leader is not None:
        subject = None
        for count in reversed(threads[:-1]):
            candidate = Candidate(leader.variant, count)
            if spent():
                trials.append(TrialResult(candidate, "skipped", detail=skipped))
                continue
            if subject is None:
                subject = instance(candidate, check=False)
                if subject is None:
                    break
            measure(candidate, subject)
        del subject
    chosen = _best([t for t in trials if t.status == "measured"]) or Candidate(
        variants[0], threads[-1]
    )
    report = TuningReport(
        chosen=chosen,
        sources=sources,
        device=str(device),
        batch=batch,
        seconds=time.monotonic() - started,
        trials=trials,
        features=features,
    )
    for trial in trials:
        logger.info(
            "model %s: tuning %s: %s%s",
            name,
            trial.candidate.label,
            trial.status,
            f" ({trial.step_ms_1} ms/step at 1, {trial.step_ms_batch} ms at {batch}, prefill of "
            f"{PREFILL_TIMING_TOKENS} tokens {trial.prefill_ms} ms)"
            if trial.status == "measured"
            else f" ({trial.detail})",
        )
    logger.info(
        "model %s: chose %s in %.2f s (%s)%s",
        name,
        chosen.label,
        report.seconds,
        ", ".join(f"{k} {v}" for k, v in sources.items()),
        "" if features is None else f" on {features.model} [{' '.join(features.flags)}]",
    )
    return report
