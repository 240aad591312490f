"""Continuous batching: one thread per loaded model owns the model and runs the batch loop.

Each turn of the loop:
1. applies aborts (an aborted request leaves the batch before the next forward pass),
2. admits waiting requests while the batch has room (and the prefill token budget allows), runs
   their prefill (left-padded batches of similar lengths), samples their first token and merges
   their KV cache into the running batch,
3. runs one decoding step for every running request, samples each row with its own parameters,
   detokenizes, checks stop conditions, and drops finished rows from the batch at once,
4. scores one queued sequence, if any (`score`: a held-out text's log-likelihood, one window
   per turn, so serving goes on between windows).

The event loop never runs the model. Requests are queued under a lock; results travel to each
request's asyncio.Queue through `loop.call_soon_threadsafe` (one call per loop and turn), and
the engine waits, at most `DELIVERY_WAIT_S`, for the loop to have taken them before it goes on.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from services.inference.engine.arrivals import Arrivals
from services.inference.engine.detokenizer import OutputText
from services.inference.engine.errors import (
    DuplicateRequest,
    EngineClosed,
    GenerationFailed,
    QueueFull,
)
from services.inference.engine.kv import Backend, DetachedBackend
from services.inference.engine.params import (
    EngineOptions,
    FinishReason,
    SamplingParams,
    TokenEvent,
)
from services.inference.engine.sampling import sample
from services.inference.engine.threads import ThreadChooser

logger = logging.getLogger("llmnet.inference.engine")

__all__ = ["Request", "Scheduler", "Sink"]

# A chunk of a long prompt is sized so that its forward pass takes about this share of a
# decoding step: a running stream then waits for its own step plus the chunk's pass, within
# twice its pace with room for jitter. Smaller chunks stretch the long prompt's own prefill.
CHUNK_SHARE_OF_STEP = 0.8
# The smallest chunk of a long prompt, however fast decoding steps are.
_MIN_CHUNK_TOKENS = 16

#: What a request's queue receives: events, or an exception that ends the stream.
Item = TokenEvent | BaseException


@dataclass(eq=False)
class Sink:
    """Where a request's events go: an asyncio queue on its event loop."""

    loop: Any  # asyncio.AbstractEventLoop
    put: Callable[[Item], None]


@dataclass(eq=False)
class Request:
    request_id: str
    prompt_ids: list[int]
    params: SamplingParams
    output: OutputText
    sink: Sink
    generator: torch.Generator | None = None
    presence: torch.Tensor | None = None
    completion_tokens: int = 0
    generated: list[int] = field(default_factory=list)
    last_token: int = -1
    finished: bool = False
    submitted_at: float = field(default_factory=time.monotonic)

    @property
    def prompt_tokens(self) -> int:
        return len(self.prompt_ids)


# After handing a turn's events to an event loop, the engine waits (at most this long) until
# that loop has woken the streams they are for and let them write, before its next forward pass.
# The loop's work then runs between passes instead of preempting one of the pass's OpenMP
# threads, which stalls the other at the next barrier: through the gateway on 2 CPUs, two-thread
# steps of 16 rows took 65 against 75 ms, of 32 rows 81 against 129 ms (16 streams: 230-249
# against 212-242 tok/s; 32: 370-380 against 298-334).
DELIVERY_WAIT_S = 0.005


def _deliver(items: list[tuple[Sink, Item]], delivered: threading.Event) -> None:
    for sink, item in items:
        sink.put(item)
    # Runs after the streams these items woke have taken their turn (FIFO ready queue).
    items[0][0].loop.call_soon(delivered.set)


class Scheduler:
    """The batch loop of one model. `submit`/`abort`/`stats` may be called from any thread."""

    def __init__(
        self,
        backend: Backend,
        *,
        options: EngineOptions,
        name: str,
        prefill_mode: Literal["batched", "separate", "auto"],
        threads: int | None = None,
        thread_choices: Sequence[int] = (),
    ) -> None:
        """`threads`: the intra-op threads of this engine's thread (None: left as it is);
        `thread_choices`: counts each decoding step may run with instead, chosen by measuring
        the steps (threads.py); prefill passes run with `threads`."""
        self._backend = backend
        self._options = options
        self._name = name
        self._prefill_mode = prefill_mode
        self._threads = threads
        self._current_threads = threads
        # The last decoding step's rows, thread count and start, until the next step ends its
        # period (None after a prefill or an idle wait, which are not part of it).
        self._period: tuple[int, int, float] | None = None
        self._chooser = (
            ThreadChooser(thread_choices, threads)
            if threads is not None and thread_choices
            else None
        )
        self._cond = threading.Condition()
        self._waiting: deque[Request] = deque()
        self._live: dict[str, Request] = {}  # waiting or running, by id
        self._aborted: set[str] = set()
        self._discarded: deque[Request] = deque()  # appended without the lock
        self._running: list[Request] = []  # row i of the batch
        self._admitting = 0  # popped from the queue, not yet in `_running`
        # A long prompt prefilled a chunk per turn while the batch decodes (one at a time).
        self._chunking: Request | None = None
        self._partial: object | None = None
        self._last_chunk: tuple[int, float] | None = None  # its tokens and its pass's seconds
        # Measured as the loop runs (moving averages): a decoding step, and a prompt token of a
        # prefill; they size the chunks of a long prompt (see `_chunk_tokens`).
        self._step_s = 0.0
        self._prefill_token_s = 0.0
        self._closing = False
        self._arrivals: Arrivals | None = None  # see `follow`
        self._outbox: list[tuple[Sink, Item]] = []
        self._scoring: deque[tuple[list[int], Future[float]]] = deque()
        # counters (read without the lock: plain ints are fine for metrics)
        self.steps = 0
        self.prefills = 0
        self.prefill_chunks = 0
        self.tokens_generated = 0
        self.prompt_tokens = 0
        self.requests_admitted = 0
        self.finished: dict[str, int] = {"stop": 0, "length": 0, "abort": 0, "error": 0}
        self.last_error: str | None = None
        self._mean_request_s = 0.0
        self._thread = threading.Thread(target=self._run, name=f"llmnet-engine-{name}", daemon=True)
        self._thread.start()

    # ---- any thread -----------------------------------------------------------------------------

    def submit(self, request: Request) -> None:
        with self._cond:
            if self._closing:
                raise EngineClosed(f"The model {self._name} was unloaded; retry.", retry_after=1)
            if request.request_id in self._live:
                raise DuplicateRequest(f"Request {request.request_id!r} is already running.")
            # Requests that fit the batch at the next turn are not "waiting".
            free = self._options.max_batch_size - self._occupied() - self._admitting
            if len(self._waiting) - max(0, free) >= self._options.max_waiting:
                raise QueueFull(
                    f"The model {self._name} has {len(self._waiting)} requests waiting; retry "
                    "later.",
                    retry_after=self._retry_after(),
                )
            self._live[request.request_id] = request
            self._waiting.append(request)
            self._cond.notify()

    def score(self, ids: Sequence[int]) -> Future[float]:
        """The negative log-likelihood sum of `ids[1:]` (see kv.sequence_nll), computed on the
        batch thread at its next turn."""
        future: Future[float] = Future()
        with self._cond:
            if self._closing:
                raise EngineClosed(f"The model {self._name} was unloaded; retry.", retry_after=1)
            self._scoring.append(([int(i) for i in ids], future))
            self._cond.notify()
        return future

    def follow(self, arrivals: Arrivals) -> None:
        """Hold the queue briefly while `arrivals` has requests on their way (see `_hold_s`)."""
        self._arrivals = arrivals
        arrivals.listen(self._wake)

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify()

    def _occupied(self) -> int:
        """Batch rows taken: the running requests and the one being prefilled in chunks."""
        return len(self._running) + (self._chunking is not None)

    def _retry_after(self) -> int:
        """Roughly how long until the queue has moved by one batch."""
        estimate = self._mean_request_s * (len(self._waiting) / self._options.max_batch_size)
        return max(self._options.queue_retry_after_s, math.ceil(estimate))

    def abort(self, request_id: str) -> None:
        with self._cond:
            request = self._live.get(request_id)
            if request is not None:
                self._abort_locked(request)
                self._cond.notify()

    def discard(self, request: Request) -> None:
        """Abort `request` without taking a lock (for finalizers, which may run on any thread at
        any time): the loop handles it at its next turn. A finished request is left alone."""
        self._discarded.append(request)

    def _abort_locked(self, request: Request) -> None:
        if request in self._waiting:
            self._waiting.remove(request)
            del self._live[request.request_id]
            self.finished["abort"] += 1
            request.finished = True
            self._send([(request.sink, self._event(request, "", None, "abort"))])
        else:
            self._aborted.add(request.request_id)

    def close(self, timeout: float | None = None) -> None:
        """Stop the loop (running and waiting requests end with "abort"); blocks until it did."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def detach(self) -> bool:
        """After `close`: drop the backend (and with it the model). False if already done."""
        if self._thread.is_alive() or isinstance(self._backend, DetachedBackend):
            return False
        self._backend = DetachedBackend()
        return True

    @property
    def detached(self) -> bool:
        return isinstance(self._backend, DetachedBackend)

    @property
    def closed(self) -> bool:
        return self._closing

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stats(self) -> dict[str, Any]:
        return {
            "running": len(self._running),
            "waiting": len(self._waiting),
            "max_batch_size": self._options.max_batch_size,
            "max_waiting": self._options.max_waiting,
            "steps": self.steps,
            "prefills": self.prefills,
            "prefill_chunks": self.prefill_chunks,
            "chunking": self._chunking is not None,
            "tokens_generated": self.tokens_generated,
            "prompt_tokens": self.prompt_tokens,
            "requests_admitted": self.requests_admitted,
            "requests_finished": dict(self.finished),
            "kv_cache_bytes": self._backend.kv_bytes(),
            "threads_by_rows": None if self._chooser is None else self._chooser.chosen(),
            **self._backend.cache_stats(),
            "last_error": self.last_error,
        }

    # ---- delivery -------------------------------------------------------------------------------

    @staticmethod
    def _send(items: list[tuple[Sink, Item]]) -> None:
        by_loop: dict[int, tuple[Any, list[tuple[Sink, Item]]]] = {}
        for sink, item in items:
            by_loop.setdefault(id(sink.loop), (sink.loop, []))[1].append((sink, item))
        handed: list[threading.Event] = []
        for loop, batch in by_loop.values():
            delivered = threading.Event()
            # A closed loop raises RuntimeError: nobody is listening any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_deliver, batch, delivered)
                handed.append(delivered)
        deadline = time.perf_counter() + DELIVERY_WAIT_S
        for delivered in handed:
            delivered.wait(max(0.0, deadline - time.perf_counter()))

    def _flush(self) -> None:
        if self._outbox:
            items, self._outbox = self._outbox, []
            self._send(items)

    @staticmethod
    def _event(
        request: Request, text: str, token: int | None, finish: FinishReason | None
    ) -> TokenEvent:
        return TokenEvent(
            text=text,
            token_id=token,
            finish_reason=finish,
            prompt_tokens=request.prompt_tokens,
            completion_tokens=request.completion_tokens,
        )

    def _finish(self, request: Request, reason: str) -> None:
        request.finished = True
        self.finished[reason] = self.finished.get(reason, 0) + 1
        elapsed = time.monotonic() - request.submitted_at
        self._mean_request_s = 0.9 * self._mean_request_s + 0.1 * elapsed
        with self._cond:
            if self._live.get(request.request_id) is request:
                del self._live[request.request_id]

    # ---- the loop -------------------------------------------------------------------------------

    def _run(self) -> None:
        # On this thread: OpenMP keeps the count per thread, so this engine's forward passes use
        # the count chosen for it (measured at load, see tuning.py) whatever other threads set.
        if self._threads is not None:
            torch.set_num_threads(self._threads)
        with torch.inference_mode():
            while True:
                with self._cond:
                    while not (self._closing or self._running or self._chunking or self._scoring):
                        hold = self._hold_s()
                        if self._waiting and not hold:
                            break
                        self._period = None  # idle: the next step starts a new period
                        self._cond.wait(hold or None)
                    if self._closing:
                        break
                try:
                    self._apply_aborts()
                    admitted = self._admit()
                    if admitted:
                        self._period = None
                        self._use_threads(self._threads)
                        self._prefill(admitted)
                        self._flush()
                        self._apply_aborts()
                    if self._chunking is not None:
                        self._period = None
                        self._use_threads(self._threads)
                        self._prefill_chunk(self._chunking)
                        self._flush()
                    if self._running:
                        self._decode()
                except Exception as exc:
                    self._fail(exc)
                finally:
                    self._flush()
                self._score_next()
            self._shutdown()

    def _score_next(self) -> None:
        with self._cond:
            if not self._scoring:
                return
            ids, future = self._scoring.popleft()
        self._period = None  # a scoring pass is not part of a decoding step's turn
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(self._backend.score(ids))
        except Exception as exc:  # the caller's failure, not the batch's
            future.set_exception(exc)

    def _shutdown(self) -> None:
        if self._arrivals is not None:
            self._arrivals.unlisten(self._wake)
        with self._cond:
            waiting = list(self._waiting)
            self._waiting.clear()
            scoring = list(self._scoring)
            self._scoring.clear()
        for _, future in scoring:
            if future.set_running_or_notify_cancel():
                future.set_exception(
                    EngineClosed(f"The model {self._name} was unloaded; retry.", retry_after=1)
                )
        chunking = [self._chunking] if self._chunking is not None else []
        self._chunking = self._partial = None
        for request in [*self._running, *chunking, *waiting]:
            if not request.finished:
                self._outbox.append((request.sink, self._event(request, "", None, "abort")))
                self._finish(request, "abort")
        self._running = []
        self._backend.clear()
        self._flush()

    def _fail(self, exc: Exception) -> None:
        """The model raised: end every running request with an error, keep serving."""
        logger.exception("engine %s: generation failed", self._name, exc_info=exc)
        self.last_error = f"{type(exc).__name__}: {exc}"
        error = GenerationFailed(f"Generation failed: {type(exc).__name__}.")
        chunking = [self._chunking] if self._chunking is not None else []
        self._chunking = self._partial = None
        for request in [*self._running, *chunking]:
            if not request.finished:
                self._outbox.append((request.sink, error))
                self._finish(request, "error")
        self._running = []
        self._backend.clear()

    def _apply_aborts(self) -> None:
        with self._cond:
            while self._discarded:
                request = self._discarded.popleft()
                if self._live.get(request.request_id) is request:
                    self._abort_locked(request)
            if not self._aborted:
                return
            aborted, self._aborted = self._aborted, set()
        chunking = self._chunking
        if chunking is not None and chunking.request_id in aborted and not chunking.finished:
            self._chunking = self._partial = None
            self._outbox.append((chunking.sink, self._event(chunking, "", None, "abort")))
            self._finish(chunking, "abort")
        dropped = []
        for row, request in enumerate(self._running):
            if request.request_id in aborted and not request.finished:
                self._outbox.append((request.sink, self._event(request, "", None, "abort")))
                self._finish(request, "abort")
                dropped.append(row)
        if dropped:
            self._drop(dropped)

    def _hold_s(self) -> float:
        """Seconds the waiting requests are still held for requests on their way (0: admit
        them now). A pass for the waiting ones now would make every request that arrives during
        it wait for its end; holding them at most as long as that pass would take (measured)
        costs them at most that, and lets the latecomers share the pass. Called with the lock."""
        limit = self._options.admission_hold_s
        arrivals = self._arrivals
        if not (limit and arrivals and arrivals.pending and self._waiting):
            return 0.0
        if len(self._waiting) >= self._options.max_batch_size - self._occupied():
            return 0.0  # nobody else fits the batch
        fresh = sum(self._fresh_tokens(r) for r in self._waiting)
        pass_s = min(limit, self._step_s + fresh * self._prefill_token_s)
        return max(0.0, self._waiting[0].submitted_at + pass_s - time.monotonic())

    def _admit(self) -> list[Request]:
        with self._cond:
            if self._hold_s():
                return []  # the batch decodes meanwhile
            free = self._options.max_batch_size - self._occupied()
            budget = self._options.max_prefill_tokens
            admitted: list[Request] = []
            while self._waiting and len(admitted) < free:
                if self._chunked(self._waiting[0]):
                    if self._chunking is not None:
                        break  # one at a time, in order
                    self._chunking = self._waiting.popleft()
                    free -= 1
                    continue
                size = self._fresh_tokens(self._waiting[0])
                if admitted and size > budget:
                    break
                admitted.append(self._waiting.popleft())
                budget -= size
            self._admitting = len(admitted)
        return admitted

    def _chunk_tokens(self) -> int:
        """Prompt tokens for the next chunk, so that its pass takes CHUNK_SHARE_OF_STEP of a
        decoding step (measured), at most the setting, at least a floor. The first chunk is
        sized from the measured cost of a prompt token; each later one from the last chunk's
        pass, scaled (by at most 2x): a pass costs a fixed part plus a part per token, and later
        chunks attend to more of the prompt, so following the last pass tracks both."""
        target = CHUNK_SHARE_OF_STEP * self._step_s
        if target <= 0:
            return self._options.prefill_chunk_tokens
        if self._last_chunk is not None:
            tokens, seconds = self._last_chunk
            scaled = tokens * target / max(seconds, 1e-6)
            return self._bounded_chunk(int(min(2 * tokens, max(tokens / 2, scaled))))
        if self._prefill_token_s <= 0:
            return self._options.prefill_chunk_tokens
        return self._bounded_chunk(int(target / self._prefill_token_s))

    def _bounded_chunk(self, tokens: int) -> int:
        most = self._options.prefill_chunk_tokens
        return max(min(_MIN_CHUNK_TOKENS, most), min(most, tokens))

    def _chunked(self, request: Request) -> bool:
        """Whether `request` is prefilled in chunks: a prompt with more new (not cached) tokens
        than the setting, while others decode. Shorter ones are prefilled whole, batched with
        the other arrivals (a chunk pays a forward pass's fixed cost, and only one prompt is
        chunked at a time)."""
        most = self._options.prefill_chunk_tokens
        return (
            self._backend.chunked_prefill
            and most > 0
            and bool(self._running)
            and request.prompt_tokens > most
            and self._fresh_tokens(request) > most
        )

    def _measured(self, average: float, sample: float) -> float:
        return sample if average <= 0 else 0.8 * average + 0.2 * sample

    def _measure_prefill(self, tokens: int, seconds: float) -> None:
        """The cost of one more prompt token: a forward pass has a fixed cost (about a small
        decoding step, on small models most of it) that chunking pays once per chunk anyway."""
        marginal = max(seconds - self._step_s, 0.1 * seconds) / tokens
        self._prefill_token_s = self._measured(self._prefill_token_s, marginal)

    def _prefill_chunk(self, request: Request) -> None:
        """The next chunk of the long prompt; after the last, its first token, and it joins."""
        if self._partial is None:
            self._partial = self._backend.start_prefill(request.prompt_ids)
            self._last_chunk = None
        # Sized anew each time: later chunks attend to more of the prompt, cost more per token.
        count = self._chunk_tokens()
        started = time.perf_counter()
        done = self._backend.prefill_chunk(self._partial, count)
        seconds = time.perf_counter() - started
        self._measure_prefill(count, seconds)
        self._last_chunk = (count, seconds)
        self.prefill_chunks += 1
        if done is None:
            return
        chunk, logits = done
        self._chunking = self._partial = None
        self.prefills += 1
        self.requests_admitted += 1
        self.prompt_tokens += request.prompt_tokens
        self._prepare([request], logits.shape[-1])
        token = sample(logits, [request])[0]
        del logits
        keep = [] if self._accept(request, token) else [0]
        if keep:
            self._backend.merge([chunk], [keep])
            self._running.append(request)

    def _groups(self, requests: list[Request]) -> list[list[Request]]:
        """Split the admitted requests into prefill batches. Each prompt is prefilled from where
        its cached prefix ends (the backend copies the prefix into its row), so a batch pays
        for the new tokens: "auto" sorts by them and cuts where padding would exceed a quarter
        of them."""
        if self._prefill_mode == "separate" or len(requests) == 1:
            return [[request] for request in requests]
        if self._prefill_mode == "batched":
            return [requests]
        fresh = {id(r): self._fresh_tokens(r) for r in requests}
        ordered = sorted(requests, key=lambda r: fresh[id(r)])
        groups: list[list[Request]] = [[ordered[0]]]
        real = fresh[id(ordered[0])]
        for request in ordered[1:]:
            group, size = groups[-1], fresh[id(request)]
            if size * (len(group) + 1) <= 1.25 * (real + size):
                group.append(request)
                real += size
            else:
                groups.append([request])
                real = size
        return groups

    def _fresh_tokens(self, request: Request) -> int:
        """The prompt tokens a prefill of `request` has to run (those after its cached prefix)."""
        return request.prompt_tokens - self._backend.cached_prefix(request.prompt_ids)

    def _prefill(self, admitted: list[Request]) -> None:
        groups = self._groups(admitted)
        chunks: list[object] = []
        keep: list[list[int]] = []
        try:
            for number, group in enumerate(groups):
                if number:
                    self._flush()  # the first tokens so far need not wait for this group
                fresh = sum(self._fresh_tokens(r) for r in group)
                started = time.perf_counter()
                chunk, logits = self._backend.prefill([r.prompt_ids for r in group])
                self._measure_prefill(fresh, time.perf_counter() - started)
                prompt_tokens = sum(r.prompt_tokens for r in group)
                self.prefills += 1
                self.requests_admitted += len(group)
                self.prompt_tokens += prompt_tokens
                self._prepare(group, logits.shape[-1])
                tokens = sample(logits, group)
                del logits
                chunks.append(chunk)
                keep.append(
                    [
                        row
                        for row, (request, token) in enumerate(zip(group, tokens, strict=True))
                        if not self._accept(request, token)
                    ]
                )
            appended = self._backend.merge(chunks, keep)
        except Exception:
            # These requests are not in the batch: end them with the running ones.
            self._running.extend(r for r in admitted if not r.finished)
            self._admitting = 0
            raise
        self._running.extend(groups[number][row] for number, row in appended)
        self._admitting = 0

    def _prepare(self, requests: Sequence[Request], vocab: int) -> None:
        for request in requests:
            params = request.params
            if request.generator is None and not params.greedy and params.top_k != 1:
                generator = torch.Generator()
                if params.seed is None:
                    generator.seed()
                else:
                    generator.manual_seed(params.seed)
                request.generator = generator
            if request.presence is None and params.repetition_penalty != 1.0:
                presence = torch.zeros(vocab, dtype=torch.bool)
                ids = [i for i in request.prompt_ids if 0 <= i < vocab]
                if ids:
                    presence[torch.tensor(ids, dtype=torch.long)] = True
                request.presence = presence

    def _accept(self, request: Request, token: int) -> bool:
        """Record a sampled token and queue its event; True when the request finished."""
        request.completion_tokens += 1
        request.last_token = token
        request.generated.append(token)
        self.tokens_generated += 1
        if request.presence is not None and 0 <= token < request.presence.shape[0]:
            request.presence[token] = True
        text, stopped = request.output.add(token)
        finish: FinishReason | None = None
        if stopped:
            finish = "stop"
        elif request.completion_tokens >= request.params.max_tokens:
            rest, stopped = request.output.finish()
            text += rest
            finish = "stop" if stopped else "length"
        self._outbox.append((request.sink, self._event(request, text, token, finish)))
        if finish is not None:
            self._finish(request, finish)
            return True
        return False

    def _use_threads(self, count: int | None) -> None:
        if count is not None and count != self._current_threads:
            torch.set_num_threads(count)
            self._current_threads = count

    def _decode(self) -> None:
        running = self._running
        rows = len(running)
        started = time.perf_counter()
        if self._chooser is not None:
            # The whole turn of the loop since the last step (delivery included, where the
            # event loop competes for the CPUs and the GIL), when it was a decoding turn only.
            if self._period is not None:
                last_rows, last_threads, last_started = self._period
                self._chooser.record(last_rows, last_threads, started - last_started)
            self._use_threads(self._chooser.pick(rows))
            self._period = (rows, self._current_threads or 1, started)
        logits = self._backend.decode([r.last_token for r in running])
        self._step_s = self._measured(self._step_s, time.perf_counter() - started)
        self.steps += 1
        tokens = sample(logits, running)
        del logits
        finished = [
            row
            for row, (request, token) in enumerate(zip(running, tokens, strict=True))
            if self._accept(request, token)
        ]
        if finished:
            for row in finished:
                # Its cache holds the prompt and every sampled token but the last.
                request = running[row]
                self._backend.remember_row(row, [*request.prompt_ids, *request.generated[:-1]])
            self._drop(finished)

    def _drop(self, rows: list[int]) -> None:
        """Take finished rows out of the batch (the backend may reorder the others)."""
        order = self._backend.remove(rows)
        self._running = [self._running[row] for row in order]
