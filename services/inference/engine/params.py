"""What a request asks of the engine (`SamplingParams`), what it streams back (`TokenEvent`), and
the engine's own settings (`EngineOptions`). Plain dataclasses: the HTTP layer needs no torch."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from services.inference.engine.errors import InvalidSamplingParams

__all__ = ["EngineOptions", "FinishReason", "SamplingParams", "TokenEvent"]

FinishReason = Literal["stop", "length", "abort"]

#: Largest seed a torch.Generator accepts.
_MAX_SEED = 2**64 - 1


@dataclass(frozen=True)
class SamplingParams:
    """How one request samples. `temperature == 0` is greedy decoding (as
    `model.generate(do_sample=False)`); `top_k == 0` and `top_p == 1.0` disable those filters.
    `stop` strings end the output (the stop string itself is never returned); the model's EOS token
    ends it too unless `ignore_eos`. `seed` makes sampling reproducible."""

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    max_tokens: int = 256
    stop: tuple[str, ...] = ()
    seed: int | None = None
    repetition_penalty: float = 1.0
    ignore_eos: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))
        elif not isinstance(self.stop, tuple):
            object.__setattr__(self, "stop", tuple(self.stop))
        if not math.isfinite(self.temperature) or self.temperature < 0:
            raise InvalidSamplingParams("temperature must be a finite number >= 0")
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 0:
            raise InvalidSamplingParams("top_k must be an integer >= 0 (0 disables it)")
        if not math.isfinite(self.top_p) or not 0.0 < self.top_p <= 1.0:
            raise InvalidSamplingParams("top_p must be in (0, 1]")
        if (
            isinstance(self.max_tokens, bool)
            or not isinstance(self.max_tokens, int)
            or self.max_tokens < 1
        ):
            raise InvalidSamplingParams("max_tokens must be an integer >= 1")
        if not all(isinstance(s, str) and s for s in self.stop):
            raise InvalidSamplingParams("stop sequences must be non-empty strings")
        if self.seed is not None and (
            isinstance(self.seed, bool)
            or not isinstance(self.seed, int)
            or not 0 <= self.seed <= _MAX_SEED
        ):
            raise InvalidSamplingParams(f"seed must be an integer in [0, {_MAX_SEED}]")
        if not math.isfinite(self.repetition_penalty) or self.repetition_penalty <= 0:
            raise InvalidSamplingParams("repetition_penalty must be a finite number > 0")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


@dataclass(frozen=True)
class TokenEvent:
    """One step of a request's stream. `text` is the newly decoded text (may be "" while a
    multi-byte character or a possible stop sequence is held back). `finish_reason` is None while
    the request runs and set on its last event."""

    text: str
    token_id: int | None
    finish_reason: FinishReason | None
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class EngineOptions:
    """Settings of one engine (one loaded model).

    max_batch_size: requests decoded together in one batch.
    max_waiting: requests queued beyond what the batch takes at its next turn; one more raises
        QueueFull (0: no queue, only free batch slots).
    max_prefill_tokens: prompt tokens admitted into one prefill pass (at least one request is
        always admitted), so a burst of long prompts cannot stall running streams for long.
    prefill: "batched" runs the newly admitted prompts as one left-padded batch, "separate" runs
        each alone; "auto" batches prompts of similar length and splits very uneven ones.
    batching: "padded" keeps all running requests in one left-padded KV cache (the fast path);
        "serial" keeps one cache per request and steps them one by one (for models whose cache is
        not plain attention, e.g. linear-attention or shared-KV layers); "auto" picks.
    kv_headroom: decode steps the KV buffers are grown by at a time.
    queue_retry_after_s: the smallest Retry-After a QueueFull asks for.
    cpu_onednn: pack the linear layers' weights for oneDNN on CPU (float32 and bfloat16),
        1.5-2x faster per step on SmolLM2-135M (see engine/cpu.py). "auto" packs float32 layers
        of 512 x 512 weights and more (bfloat16 ones of any size), in models the engine loaded
        itself (`Engine.load`, the registry), never in a model object it was handed; "on" packs
        every linear layer of any model (changed in place); "off" never packs.
    cpu_quantization: int8 linear weights on CPU (float32 models; see quantization.py). "off"
        never; "on" always, in models the engine loaded itself; "auto" makes int8 one more
        candidate of the load-time measurement, kept only if it agrees and is fastest.
    cpu_threads: intra-op threads the engine's thread uses on CPU (torch.set_num_threads, called
        from that thread when its loop starts; see tuning.py for what is process-wide). None:
        measured at load when `tune_seconds` > 0, else one less than the CPUs this process may
        use, at least 1.
    tune_seconds: time box of the measurement `Engine.load` makes to choose the dtype, oneDNN
        packing ("auto") and thread count (None) of a model (see tuning.py); 0 turns it off and
        keeps the fixed choices above.
    tune_batch: the larger batch size whose decode step the tuning times (besides batch 1).
    prefill_chunk_tokens: a prompt longer than this that arrives while others decode is
        prefilled in chunks of at most this many tokens, one between decoding steps, each sized
        so its pass takes 80% of a decoding step (both measured as the loop runs), so the running
        streams keep their pace instead of stalling for the whole prompt (one such prompt at a
        time; 0: always whole prompts).
    prefix_cache_bytes: memory for the keys/values of recent prompts (padded batching only), so
        a prompt that starts like one of them (a conversation's next turn) prefills only the
        rest (see prefix_cache.py); 0: none.
    admission_hold_s: the longest the queue is held, while more requests are on their way to
        the engine (see arrivals.py), so they share one prefill pass; each hold lasts at most
        as long as that pass is measured to take. 0: never held.
    """

    max_batch_size: int = 32
    max_waiting: int = 256
    max_prefill_tokens: int = 4096
    prefill: Literal["auto", "batched", "separate"] = "auto"
    batching: Literal["auto", "padded", "serial"] = "auto"
    kv_headroom: int = 64
    queue_retry_after_s: int = 1
    cpu_onednn: Literal["auto", "on", "off"] = "auto"
    cpu_quantization: Literal["auto", "on", "off"] = "off"
    cpu_threads: int | None = None
    tune_seconds: float = 0.0
    tune_batch: int = 8
    prefill_chunk_tokens: int = 512
    prefix_cache_bytes: int = 256 * 1024 * 1024
    admission_hold_s: float = 0.3

    def __post_init__(self) -> None:
        if self.max_batch_size < 1:
            raise ValueError("max_batch_size must be >= 1")
        if self.max_waiting < 0:
            raise ValueError("max_waiting must be >= 0")
        if self.max_prefill_tokens < 1:
            raise ValueError("max_prefill_tokens must be >= 1")
        if self.prefill not in ("auto", "batched", "separate"):
            raise ValueError("prefill must be 'auto', 'batched' or 'separate'")
        if self.batching not in ("auto", "padded", "serial"):
            raise ValueError("batching must be 'auto', 'padded' or 'serial'")
        if self.cpu_onednn not in ("auto", "on", "off"):
            raise ValueError("cpu_onednn must be 'auto', 'on' or 'off'")
        if self.cpu_threads is not None and self.cpu_threads < 1:
            raise ValueError("cpu_threads must be >= 1")
        if self.tune_seconds < 0:
            raise ValueError("tune_seconds must be >= 0")
        if self.tune_batch < 1:
            raise ValueError("tune_batch must be >= 1")
        if self.kv_headroom < 1:
            raise ValueError("kv_headroom must be >= 1")
        if self.admission_hold_s < 0:
            raise ValueError("admission_hold_s must be >= 0")
        if self.prefix_cache_bytes < 0:
            raise ValueError("prefix_cache_bytes must be >= 0")
