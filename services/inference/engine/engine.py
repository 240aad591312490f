"""`Engine`: one loaded model behind an async interface that knows nothing of HTTP.

    engine = Engine.load(model_dir)                       # or Engine(model, tokenizer)
    stream = engine.generate("req-1", prompt_ids, SamplingParams(temperature=0, max_tokens=64))
    async for event in stream:                            # TokenEvent(text, token_id, ...)
        ...
    engine.abort("req-1")                                 # from anywhere; the stream ends "abort"
    await engine.close()

`generate` checks the request and queues it at once, so PromptTooLong / QueueFull / EngineClosed
are raised by the call itself, before anything is streamed. It returns a `GenerationStream`, an
async iterator that may also be awaited (`stream = await engine.generate(...)`). A stream that is
closed (`aclose`, `async with`) or garbage-collected before its last event aborts its request.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
import time
from collections.abc import AsyncIterator, Callable, Generator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import torch

from services.inference.engine.arrivals import Arrival, Arrivals
from services.inference.engine.cpu import MIN_PACKED_ELEMENTS, PackingBroke, pack_linear_layers
from services.inference.engine.detokenizer import OutputText, make_decoder
from services.inference.engine.errors import EngineClosed, PromptTooLong
from services.inference.engine.kv import (
    Backend,
    PaddedBackend,
    SerialBackend,
    padded_batching_supported,
)
from services.inference.engine.params import EngineOptions, SamplingParams, TokenEvent
from services.inference.engine.prefix_cache import PrefixCache
from services.inference.engine.prompts import (
    chat_prompt_ids,
    context_length,
    declare_control_tokens,
    text_prompt_ids,
)
from services.inference.engine.quantization import (
    int8_linear_bytes,
    is_quantized,
    quantize_linear_int8,
)
from services.inference.engine.scheduler import Item, Request, Scheduler, Sink
from services.inference.engine.tuning import (
    Candidate,
    TuningReport,
    apply_variant,
    cpu_features,
    plan,
    tune,
    usable_cpus,
)
from shared import heap

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = ["Engine", "GenerationStream", "model_parameter_bytes"]

logger = logging.getLogger("llmnet.inference.engine")

T = TypeVar("T")


def model_parameter_bytes(model: torch.nn.Module) -> int:
    """Bytes held by the model's parameters and buffers (tied weights counted once), and by
    int8 linear layers' packed weights."""
    seen: set[int] = set()
    total = 0
    for tensor in [*model.parameters(), *model.buffers()]:
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        total += tensor.numel() * tensor.element_size()
    return total + int8_linear_bytes(model)


def _on_own_thread(work: Callable[[], T]) -> T:
    """`work()` on a new thread that ends when it returns; the caller waits for it.

    OpenMP (torch's intra-op threads on CPU) gives every thread that runs a parallel region a
    team of worker threads, kept for as long as that thread lives. While more such workers
    exist than CPUs, libgomp stops spinning between regions and puts them to sleep, and each
    of the hundreds of regions in a decoding step pays a wake-up: loading and tuning on a
    long-lived pool thread (`asyncio.to_thread`) left a team behind that made the engine's
    steps about 30% slower, and the tuner's timings (taken with no other team) no longer
    matched what the engine then ran. A thread that ends takes its team with it: the executor's
    one worker is joined when the `with` block shuts it down."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmnet-engine-load") as pool:
        return pool.submit(work).result()


def _as_ids(value: Any) -> set[int]:
    if value is None:
        return set()
    if isinstance(value, int):
        return {value}
    return {int(v) for v in value if v is not None}


def _eos_token_ids(model: PreTrainedModel, tokenizer: Any) -> frozenset[int]:
    ids = _as_ids(getattr(model.generation_config, "eos_token_id", None))
    if not ids:
        ids = _as_ids(getattr(model.config, "eos_token_id", None))
    ids |= _as_ids(getattr(tokenizer, "eos_token_id", None))
    return frozenset(ids)


def _pad_token_id(model: PreTrainedModel, tokenizer: Any, eos: frozenset[int]) -> int:
    for value in (
        getattr(model.generation_config, "pad_token_id", None),
        getattr(tokenizer, "pad_token_id", None),
    ):
        if isinstance(value, int):
            return value
    return min(eos) if eos else 0


class GenerationStream(AsyncIterator[TokenEvent]):
    """The events of one request. Iterate it; await it (returns itself); close it to abort."""

    def __init__(self, engine: Engine, request: Request, queue: asyncio.Queue[Item]) -> None:
        self._engine = engine
        self._request = request
        self.request_id = request.request_id
        self._queue = queue
        self._done = False

    def __aiter__(self) -> GenerationStream:
        return self

    async def __anext__(self) -> TokenEvent:
        if self._done:
            raise StopAsyncIteration
        item = await self._queue.get()
        if isinstance(item, BaseException):
            self._done = True
            raise item
        if item.finish_reason is not None:
            self._done = True
        return item

    def __await__(self) -> Generator[Any, None, GenerationStream]:
        return self._itself().__await__()

    async def _itself(self) -> GenerationStream:
        return self

    @property
    def done(self) -> bool:
        return self._done

    async def aclose(self) -> None:
        """Stop listening; the request is aborted if it was still running."""
        if not self._done:
            self._done = True
            self._engine.abort(self.request_id)

    async def __aenter__(self) -> GenerationStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __del__(self) -> None:
        if not self._done:
            self._done = True
            with contextlib.suppress(Exception):  # at interpreter shutdown
                self._engine._scheduler.discard(self._request)


class Engine:
    """One loaded model: a scheduler thread that runs it, and the async interface to it."""

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        options: EngineOptions | None = None,
        name: str = "model",
        owns_model: bool = False,
        tuning: TuningReport | None = None,
    ) -> None:
        """`owns_model`: the engine may change the model object (see EngineOptions.cpu_onednn).
        `tuning`: how `load` chose this configuration (reported in `stats`).
        Raises `PackingBroke` if packing changed the model and broke it (`load` then reloads)."""
        self.options = options or EngineOptions()
        self.name = name
        self.tuning = tuning
        self.dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
        self._tokenizer = tokenizer
        declare_control_tokens(tokenizer)
        self._device = next(model.parameters()).device
        self._context_length = context_length(model, tokenizer)
        self._eos = _eos_token_ids(model, tokenizer)
        self._decode = make_decoder(tokenizer)
        onednn = self.options.cpu_onednn
        self.cpu_linear = "dense"
        if self.options.cpu_quantization == "on" and owns_model and not is_quantized(model):
            quantize_linear_int8(model)  # pinned without a measurement (tune_seconds 0)
        if self._device.type == "cpu" and (onednn == "on" or (onednn == "auto" and owns_model)):
            batch_hint = min(self.options.max_batch_size, 16)
            min_elements = 0 if onednn == "on" else MIN_PACKED_ELEMENTS
            if pack_linear_layers(model, batch_hint=batch_hint, min_elements=min_elements):
                self.cpu_linear = "onednn"
        if is_quantized(model):
            self.cpu_linear = "int8"
        self.parameter_bytes = model_parameter_bytes(model)
        batching = self.options.batching
        if batching == "auto":
            batching = "padded" if padded_batching_supported(model) else "serial"
        self.batching = batching
        backend: Backend
        if batching == "padded":
            backend = PaddedBackend(
                model,
                headroom=self.options.kv_headroom,
                pad_token_id=_pad_token_id(model, tokenizer, self._eos),
                max_rows=self.options.max_batch_size,
                prefix_cache=PrefixCache(self.options.prefix_cache_bytes),
            )
        else:
            backend = SerialBackend(model)
        self._started = time.monotonic()
        self.cpu_threads: int | None = None
        if self._device.type == "cpu":
            self.cpu_threads = self.options.cpu_threads or max(1, usable_cpus() - 1)
        # Measured threads are measured again as the engine serves, per step (threads.py): the
        # tuned count and one less, which leaves a CPU to the event loop streaming the tokens.
        tuned = tuning is not None and tuning.sources.get("threads") == "tuned"
        choices: tuple[int, ...] = ()
        if tuned and self.cpu_threads and self.cpu_threads > 1:
            choices = (self.cpu_threads - 1, self.cpu_threads)
        self._scheduler = Scheduler(
            backend,
            options=self.options,
            name=name,
            prefill_mode=self.options.prefill,
            threads=self.cpu_threads,
            thread_choices=choices,
        )

    @classmethod
    def load(
        cls,
        model_dir: Path,
        *,
        device: str = "cpu",
        dtype: torch.dtype | None = None,
        options: EngineOptions | None = None,
        name: str | None = None,
    ) -> Engine:
        """Load a model folder with `shared.model_loading.load_causal_lm` (blocking: call it in a
        thread) and start its engine. The work runs on a thread of its own that ends with it
        (see `_on_own_thread`)."""
        return _on_own_thread(
            lambda: cls._load(
                Path(model_dir),
                device=device,
                dtype=dtype,
                options=options or EngineOptions(),
                name=name or Path(model_dir).name,
            )
        )

    @classmethod
    def _load(
        cls,
        model_dir: Path,
        *,
        device: str,
        dtype: torch.dtype | None,
        options: EngineOptions,
        name: str,
    ) -> Engine:
        from shared.model_loading import load_causal_lm

        if options.tune_seconds > 0:
            return cls._load_tuned(
                model_dir, device=device, dtype=dtype, options=options, name=name
            )
        model, tokenizer = load_causal_lm(model_dir, device=device, dtype=dtype)
        try:
            return cls(model, tokenizer, options=options, name=name, owns_model=True)
        except PackingBroke as exc:
            logger.warning("model %s: oneDNN packing failed (%s); loading it again", name, exc)
        del model
        gc.collect()
        options = dataclasses.replace(options, cpu_onednn="off")
        model, tokenizer = load_causal_lm(model_dir, device=device, dtype=dtype)
        return cls(model, tokenizer, options=options, name=name, owns_model=True)

    @classmethod
    def _load_tuned(
        cls,
        model_dir: Path,
        *,
        device: str,
        dtype: torch.dtype | None,
        options: EngineOptions,
        name: str,
    ) -> Engine:
        """`load` that measures the choices not pinned (dtype when `dtype` is None, packing when
        `cpu_onednn` is "auto", threads when `cpu_threads` is None) and keeps the fastest
        configuration that agrees with the float32 reference (see tuning.py)."""
        from shared.model_loading import load_causal_lm

        on_cpu = torch.device(device).type == "cpu"
        features = cpu_features() if on_cpu else None
        dtype_pin = None if dtype is None else str(dtype).removeprefix("torch.")
        packing_pin = {"on": True, "off": False}.get(options.cpu_onednn)
        variants, counts = plan(
            device,
            features=features,
            dtype=dtype_pin,
            threads=options.cpu_threads,
            packing=packing_pin,
            quantization=options.cpu_quantization,
            cuda_bf16=not on_cpu and torch.cuda.is_bf16_supported(),
        )

        def source(pinned: bool) -> str:
            return "pinned" if pinned else "tuned"

        sources = {"dtype": source(dtype_pin is not None)}
        if on_cpu:
            sources["threads"] = source(options.cpu_threads is not None)
            sources["packing"] = source(packing_pin is not None)
            sources["quantization"] = source(options.cpu_quantization != "auto")
        model, tokenizer = load_causal_lm(model_dir, device=device, dtype=dtype or torch.float32)
        if len(variants) == 1 and len(counts) == 1:
            report = TuningReport(
                chosen=Candidate(variants[0], counts[0]),
                sources=sources,
                device=str(device),
                batch=options.tune_batch,
                features=features,
            )
            logger.info("model %s: configuration pinned: %s", name, report.chosen.label)
        else:
            report = tune(
                model,
                tokenizer,
                variants,
                counts,
                sources=sources,
                budget_s=options.tune_seconds,
                batch=options.tune_batch,
                features=features,
                pack_min_elements=0 if packing_pin else MIN_PACKED_ELEMENTS,
                name=name,
            )
        chosen = report.chosen
        apply_variant(model, dataclasses.replace(chosen.variant, packed=False), batch_hint=1)
        onednn: Literal["auto", "on", "off"] = "off"
        if chosen.variant.packed:
            onednn = "on" if packing_pin else "auto"
        options = dataclasses.replace(options, cpu_onednn=onednn, cpu_threads=chosen.threads)
        try:
            return cls(model, tokenizer, options=options, name=name, owns_model=True, tuning=report)
        except PackingBroke as exc:
            logger.warning("model %s: oneDNN packing failed (%s); loading it again", name, exc)
        del model
        gc.collect()
        report.chosen = dataclasses.replace(
            chosen, variant=dataclasses.replace(chosen.variant, packed=False)
        )
        options = dataclasses.replace(options, cpu_onednn="off")
        model, tokenizer = load_causal_lm(
            model_dir, device=device, dtype=getattr(torch, chosen.variant.dtype)
        )
        return cls(model, tokenizer, options=options, name=name, owns_model=True, tuning=report)

    # ---- the interface --------------------------------------------------------------------------

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        return self._tokenizer

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self._tokenizer, "chat_template", None))

    def chat_prompt(self, messages: Sequence[Mapping[str, str]]) -> list[int]:
        """Prompt ids of chat messages through the model's chat template (see `prompts`: text
        in the messages never becomes a control token). Raises InvalidPrompt."""
        return chat_prompt_ids(self._tokenizer, messages)

    def text_prompt(self, text: str) -> list[int]:
        """Prompt ids of a raw prompt, taken as text (special tokens in it are not parsed)."""
        return text_prompt_ids(self._tokenizer, text)

    @property
    def context_length(self) -> int:
        return self._context_length

    @property
    def eos_token_ids(self) -> frozenset[int]:
        return self._eos

    @property
    def device(self) -> str:
        return str(self._device)

    @property
    def closed(self) -> bool:
        return self._scheduler.closed

    def follow(self, arrivals: Arrivals) -> None:
        """Let the scheduler hold its queue while `arrivals` has requests on their way."""
        self._scheduler.follow(arrivals)

    def generate(
        self,
        request_id: str,
        prompt_ids: Sequence[int],
        params: SamplingParams,
        arrival: Arrival | None = None,
    ) -> GenerationStream:
        """Queue a request and return its event stream. Raises PromptTooLong (an empty prompt, or
        prompt + max_tokens beyond the context), QueueFull, DuplicateRequest or EngineClosed.
        `arrival`: the request's mark among the arrivals, done once it is queued.
        Must be called on the event loop that will consume the stream."""
        ids = [int(i) for i in prompt_ids]
        if not ids:
            raise PromptTooLong("The prompt is empty: at least one token is needed.")
        if len(ids) + params.max_tokens > self._context_length:
            raise PromptTooLong(
                f"The prompt has {len(ids)} tokens and asks for {params.max_tokens} more, "
                f"but the model's context is {self._context_length} tokens; shorten the prompt "
                "or lower max_tokens."
            )
        if self._scheduler.closed:
            raise EngineClosed(f"The model {self.name} was unloaded; retry.", retry_after=1)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Item] = asyncio.Queue()
        output = OutputText(
            self._decode,
            ids,
            stop=params.stop,
            eos_token_ids=self._eos,
            ignore_eos=params.ignore_eos,
        )
        request = Request(
            request_id=request_id,
            prompt_ids=ids,
            params=params,
            output=output,
            sink=Sink(loop=loop, put=queue.put_nowait),
        )
        self._scheduler.submit(request)
        if arrival is not None:
            arrival.done()
        return GenerationStream(self, request, queue)

    async def score(self, ids: Sequence[int], window: int) -> tuple[float, int, int]:
        """How likely the model finds `ids`: (sum of negative log-likelihoods, tokens scored,
        windows). The ids are cut into windows of `window` tokens (at most the context); every
        token after a window's first is scored. One window per batch turn, on the engine's own
        weights: serving goes on between windows and no second copy is loaded."""
        size = max(2, min(window, self._context_length))
        total, scored, windows = 0.0, 0, 0
        for start in range(0, len(ids), size):
            chunk = ids[start : start + size]
            if len(chunk) < 2:
                continue
            total += await asyncio.wrap_future(self._scheduler.score(chunk))
            scored += len(chunk) - 1
            windows += 1
        return total, scored, windows

    def abort(self, request_id: str) -> None:
        """End a request (waiting or running) with finish_reason "abort"; a no-op when it already
        ended. Takes effect before the batch's next step. Safe from any thread."""
        self._scheduler.abort(request_id)

    def stats(self) -> dict[str, Any]:
        """Counters and gauges for metrics: running (batch size), waiting (queue depth),
        tokens_generated, prompt_tokens, steps, requests_finished by reason, kv_cache_bytes,
        parameter_bytes."""
        return {
            "model": self.name,
            "device": self.device,
            "batching": self.batching,
            "cpu_linear": self.cpu_linear,
            "cpu_threads": self.cpu_threads,
            "dtype": self.dtype,
            "tuning": None if self.tuning is None else self.tuning.as_dict(),
            "parameter_bytes": self.parameter_bytes,
            "context_length": self._context_length,
            **self._scheduler.stats(),
        }

    async def health(self) -> dict[str, Any]:
        alive = self._scheduler.alive and not self._scheduler.closed
        stats = self._scheduler.stats()
        return {
            "status": "ok" if alive else "closed",
            "model": self.name,
            "device": self.device,
            "uptime_s": round(time.monotonic() - self._started, 3),
            "running": stats["running"],
            "waiting": stats["waiting"],
            "last_error": stats["last_error"],
        }

    async def close(self, *, collect: bool = True) -> None:
        """Stop the engine (running and waiting requests end with "abort") and free the model
        (`collect`: run the garbage collector now, so its memory is back at once; one closing
        many engines collects once, after the last)."""
        if self._scheduler.alive or not self._scheduler.detached:
            await asyncio.to_thread(self.close_sync, collect=collect)

    def close_sync(self, *, collect: bool = True) -> None:
        """`close` for synchronous callers (blocks until the loop stopped)."""
        self._scheduler.close()
        self._release(collect)

    def _release(self, collect: bool = True) -> None:
        """Drop the engine's references to the model (the backend holds the only one)."""
        if self._scheduler.detach():
            if collect:
                heap.release()  # the model's cycles may be in the frozen heap
            if self._device.type == "cuda":
                torch.cuda.empty_cache()
