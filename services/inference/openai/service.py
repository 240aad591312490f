"""Serving a completion: the access check, parameters, quota and per-user slot, the prompt,
then the tokens — from the local engine or a remote provider — and the answer: one JSON body,
or a stream of chunks (`shared.sse`).

The first token event proves the model loaded and the prompt fits: until it has come, errors
are ordinary 4xx/5xx responses; after it (the status line has gone) an error is an event,
then `[DONE]`. Whatever way a generation ends (finished, the client went away, an error),
`record_usage_of` writes one ledger row and one `model.usage` event, and frees the caller's
slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio
from fastapi import Request, Response

from services.inference import metrics
from services.inference.deps import InferenceContext
from services.inference.engine import Arrival, Engine, SamplingParams, TokenEvent
from services.inference.models import UsageEndpoint, UsageSource, UsageStatus
from services.inference.openai.remote import provider_tokens
from services.inference.openai.schemas import (
    AssistantMessage,
    ChatChunkChoice,
    ChatCompletion,
    ChatCompletionChoice,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatDelta,
    CompletionChoice,
    CompletionRequest,
    CompletionUsage,
    ModelCard,
    ModelList,
    TextCompletion,
)
from services.inference.usage.service import (
    Usage,
    UsageRow,
    usage_row,
    usage_service,
    usage_source,
)
from shared.auth.identity import Identity
from shared.db import session_scope
from shared.errors import (
    BadRequest,
    Conflict,
    LLMNetError,
    TooManyRequests,
    UnprocessableEntity,
    openai_error,
)
from shared.models_client import ModelAccess
from shared.sse import ServerSentEvent, event_stream

GenerationRequest = ChatCompletionRequest | CompletionRequest
Chunk = ChatCompletionChunk | TextCompletion

_SLOT_TTL = 3600  # a crashed process must not hold a user's slot forever
_DONE = ServerSentEvent(raw_data="[DONE]")


class ModelNotReady(Conflict):
    code = "model_not_ready"


class NoChatTemplate(BadRequest):
    code = "no_chat_template"


class TooManyStreams(TooManyRequests):
    code = "too_many_concurrent_requests"


@dataclass
class Generation:
    """One request on its way: who, which model, and what it has produced so far."""

    caller: Identity
    model: ModelAccess
    endpoint: UsageEndpoint
    id: str
    slot: str  # the caller's Redis counter of running generations
    created: int = field(default_factory=lambda: int(time.time()))
    started: float = field(default_factory=time.perf_counter)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    first_token_at: float | None = None
    last_token_at: float | None = None
    finish_reason: str | None = None

    @property
    def source(self) -> UsageSource:
        return usage_source(self.model)

    @property
    def chat(self) -> bool:
        return self.endpoint is UsageEndpoint.CHAT_COMPLETIONS

    def ledger_entry(self, status: UsageStatus) -> tuple[UsageRow, Usage]:
        """Its ledger row, as it stands now."""
        usage = Usage(
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            latency_ms=(time.perf_counter() - self.started) * 1000,
            status=status,
        )
        return usage_row(self.caller, self.model, self.endpoint), usage

    def record_progress(self, event: TokenEvent) -> None:
        """Take one event's counts, and time its tokens (first token, inter-token latency)."""
        now = time.perf_counter()
        source = self.source
        self.prompt_tokens = event.prompt_tokens
        if event.completion_tokens > self.completion_tokens:
            added = event.completion_tokens - self.completion_tokens
            self.completion_tokens = event.completion_tokens
            metrics.TOKENS_GENERATED.labels(source).inc(added)
            if self.first_token_at is None:
                self.first_token_at = now
                metrics.TIME_TO_FIRST_TOKEN.labels(source).observe(now - self.started)
            elif self.last_token_at is not None:
                gap = (now - self.last_token_at) / added
                metrics.INTER_TOKEN_LATENCY.labels(source).observe(gap)
        self.last_token_at = now
        if event.finish_reason is not None:
            self.finish_reason = event.finish_reason

    # ---- the wire shapes ------------------------------------------------------------------------

    def usage(self) -> CompletionUsage:
        return CompletionUsage(
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            total_tokens=self.prompt_tokens + self.completion_tokens,
        )

    def chunk(
        self, *, text: str | None = None, role: bool = False, finish_reason: str | None = None
    ) -> Chunk:
        """One streamed event with a text delta (and the assistant's role, first) or the end."""
        base: dict[str, Any] = {"id": self.id, "created": self.created, "model": self.model.ref}
        if self.chat:
            delta = ChatDelta(role="assistant" if role else None, content=text)
            choice = ChatChunkChoice(delta=delta, finish_reason=finish_reason)
            return ChatCompletionChunk(**base, choices=[choice])
        choices = [CompletionChoice(text=text or "", finish_reason=finish_reason)]
        return TextCompletion(**base, choices=choices)

    def usage_chunk(self) -> Chunk:
        """The last streamed event with `stream_options.include_usage`: no choices, the usage."""
        base: dict[str, Any] = {"id": self.id, "created": self.created, "model": self.model.ref}
        if self.chat:
            return ChatCompletionChunk(**base, choices=[], usage=self.usage())
        return TextCompletion(**base, choices=[], usage=self.usage())

    def completion(self, text: str) -> ChatCompletion | TextCompletion:
        """The whole answer (`stream` false)."""
        base: dict[str, Any] = {
            "id": self.id,
            "created": self.created,
            "model": self.model.ref,
            "usage": self.usage(),
        }
        reason = self.finish_reason or "stop"
        if self.chat:
            message = AssistantMessage(content=text)
            return ChatCompletion(
                **base, choices=[ChatCompletionChoice(message=message, finish_reason=reason)]
            )
        return TextCompletion(**base, choices=[CompletionChoice(text=text, finish_reason=reason)])


def _sampling_params(
    body: GenerationRequest, defaults: dict[str, Any], ctx: InferenceContext
) -> SamplingParams:
    settings = ctx.settings

    def pick(name: str, value: Any, fallback: Any) -> Any:
        return value if value is not None else defaults.get(name, fallback)

    max_tokens = pick("max_tokens", body.requested_max_tokens(), settings.default_max_tokens)
    if max_tokens > settings.max_tokens_limit:
        raise UnprocessableEntity(
            f"max_tokens may be at most {settings.max_tokens_limit}.", code="max_tokens_too_large"
        )
    stops = body.stop_list() or list(defaults.get("stop") or [])
    return SamplingParams(
        temperature=float(pick("temperature", body.temperature, 1.0)),
        top_p=float(pick("top_p", body.top_p, 1.0)),
        top_k=int(pick("top_k", body.top_k, 0)),
        repetition_penalty=float(pick("repetition_penalty", body.repetition_penalty, 1.0)),
        max_tokens=int(max_tokens),
        stop=tuple(stops),
        seed=body.seed,
    )


def _prompt_ids(engine: Engine, body: GenerationRequest, system_prompt: str | None) -> list[int]:
    # Message and prompt text is always text: control-token spellings in it are encoded as
    # characters (engine/prompts.py), so no caller can forge a turn or end the prompt early.
    if isinstance(body, CompletionRequest):
        return engine.text_prompt(body.prompt_text())
    if not engine.has_chat_template:
        raise NoChatTemplate(
            "This model has no chat template, so it cannot take chat messages; use "
            "/v1/completions with a plain prompt."
        )
    messages = [
        {"role": "system" if m.role == "developer" else m.role, "content": m.text()}
        for m in body.messages
    ]
    if system_prompt and messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": system_prompt})
    return engine.chat_prompt(messages)


async def _with_first(
    first: TokenEvent | None, rest: AsyncIterator[TokenEvent]
) -> AsyncIterator[TokenEvent]:
    if first is not None:
        yield first
    async for event in rest:
        yield event


async def _client_gone(request: Request) -> None:
    # The body was read already, so the next message is the client going away.
    while (await request.receive())["type"] != "http.disconnect":
        pass


class OpenAIService:
    async def respond(
        self, ctx: InferenceContext, request: Request, caller: Identity, body: GenerationRequest
    ) -> Response | ChatCompletion | TextCompletion:
        """The answer to /v1/chat/completions or /v1/completions: a stream of chunks when the
        body asks for one, else the whole completion (499 if the client left before it)."""
        endpoint = (
            UsageEndpoint.CHAT_COMPLETIONS
            if isinstance(body, ChatCompletionRequest)
            else UsageEndpoint.COMPLETIONS
        )
        with ctx.registry.arrivals.expecting() as arrival:
            generation = await self.admit(ctx, caller, body, endpoint)
            events = self._tokens(ctx, generation, body, arrival)
            try:
                first = await anext(events)
            except StopAsyncIteration:
                first = None
            except BaseException:
                await events.aclose()
                await self.record_usage_of(ctx, generation, UsageStatus.FAILED)
                raise
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            return event_stream(
                self.stream_chunks(ctx, generation, first, events, include_usage=include_usage)
            )
        completion = await self.collect_completion(ctx, request, generation, first, events)
        return completion if completion is not None else Response(status_code=499)

    async def admit(
        self,
        ctx: InferenceContext,
        caller: Identity,
        body: GenerationRequest,
        endpoint: UsageEndpoint,
    ) -> Generation:
        """The checks that come before any work (access, a ready version, quota, the caller's
        slot); the generation holds the slot from here on."""
        model = await ctx.models.access(body.model, caller)
        if model.source != UsageSource.REMOTE and model.active_version is None:
            raise ModelNotReady(
                f"{model.ref} has no ready version yet (status: {model.status}); try again once "
                "validation has finished."
            )
        async with session_scope(ctx.sessionmaker) as session:
            await usage_service.check_quota(session, caller, ctx.settings.daily_token_quota, model)
        slot = await self.acquire_slot(ctx, caller)
        prefix = "chatcmpl" if endpoint is UsageEndpoint.CHAT_COMPLETIONS else "cmpl"
        return Generation(caller, model, endpoint, f"{prefix}-{uuid.uuid4().hex}", slot)

    async def acquire_slot(self, ctx: InferenceContext, caller: Identity) -> str:
        """Count one more running generation for the caller (429 past the setting); returns
        the counter's key, for `record_usage_of` to release."""
        key = f"llmnet:inference:active:{caller.user_id}"
        async with ctx.redis.pipeline(transaction=False) as pipe:
            pipe.incr(key)
            pipe.expire(key, _SLOT_TTL)
            active, _ = await pipe.execute()
        if active > ctx.settings.max_concurrent_per_user:
            await ctx.redis.decr(key)
            raise TooManyStreams(
                f"You have {ctx.settings.max_concurrent_per_user} generations running, the most "
                "allowed; wait for one to finish.",
                retry_after=1,
            )
        return key

    def _tokens(
        self,
        ctx: InferenceContext,
        generation: Generation,
        body: GenerationRequest,
        arrival: Arrival,
    ) -> AsyncGenerator[TokenEvent]:
        remote = generation.model.remote
        if generation.source is UsageSource.REMOTE and remote is not None:
            arrival.done()  # no engine of ours waits for it
            return provider_tokens(ctx, remote, body)
        return self.local_tokens(ctx, generation, body, arrival)

    async def engine_for(self, ctx: InferenceContext, model: ModelAccess) -> Engine:
        """The engine of the model's active version, loaded if it was not."""
        version = model.active_version
        assert version is not None
        return await ctx.registry.get(str(version.id), version.storage_prefix, version.files)

    async def local_tokens(
        self,
        ctx: InferenceContext,
        generation: Generation,
        body: GenerationRequest,
        arrival: Arrival | None = None,
    ) -> AsyncGenerator[TokenEvent]:
        """The engine's token events for this generation (the model loaded if it was not);
        `arrival`: the request's mark among those on their way to an engine."""
        model = generation.model
        engine = await self.engine_for(ctx, model)
        params = _sampling_params(body, model.default_params, ctx)
        ids = _prompt_ids(engine, body, model.system_prompt)
        if body.requested_max_tokens() is None and "max_tokens" not in model.default_params:
            # Nobody asked for a length: the default yields to what the context has left.
            room = engine.context_length - len(ids)
            params = dataclasses.replace(params, max_tokens=max(1, min(params.max_tokens, room)))
        # Leaving the block (finished, cancelled, closed) aborts an unfinished request.
        async with engine.generate(generation.id, ids, params, arrival) as stream:
            async for event in stream:
                yield event

    async def stream_chunks(
        self,
        ctx: InferenceContext,
        generation: Generation,
        first: TokenEvent | None,
        events: AsyncGenerator[TokenEvent],
        *,
        include_usage: bool,
    ) -> AsyncIterator[ServerSentEvent]:
        """The SSE events of a streamed completion, `[DONE]` last; an error on the way is an
        event too. Owns the cleanup: the engine request and the accounting."""
        status = UsageStatus.FAILED
        try:
            if generation.chat:
                yield ServerSentEvent(data=generation.chunk(role=True, text=""))
            try:
                async for event in _with_first(first, events):
                    generation.record_progress(event)
                    if event.text:
                        yield ServerSentEvent(data=generation.chunk(text=event.text))
                    if event.finish_reason:
                        yield ServerSentEvent(
                            data=generation.chunk(finish_reason=event.finish_reason)
                        )
            except LLMNetError as exc:
                # The status line has gone: the error travels as an event.
                error = openai_error(exc.status_code, exc.code, exc.detail, exc.fields)
                yield ServerSentEvent(data=error)
                yield _DONE
                return
            if include_usage:
                yield ServerSentEvent(data=generation.usage_chunk())
            yield _DONE
            status = UsageStatus.COMPLETED
        except (asyncio.CancelledError, GeneratorExit):
            status = UsageStatus.CANCELLED
            raise
        finally:
            await events.aclose()  # the engine drops an unfinished request before its next step
            await self.record_usage_of(ctx, generation, status)

    async def collect_completion(
        self,
        ctx: InferenceContext,
        request: Request,
        generation: Generation,
        first: TokenEvent | None,
        events: AsyncGenerator[TokenEvent],
    ) -> ChatCompletion | TextCompletion | None:
        """The whole completion, or None when the client went away first (the generation is
        then stopped: nobody would read it)."""
        status = UsageStatus.FAILED

        async def collect() -> str:
            parts: list[str] = []
            async for event in _with_first(first, events):
                generation.record_progress(event)
                parts.append(event.text)
            return "".join(parts)

        collector = asyncio.ensure_future(collect())
        watcher = asyncio.ensure_future(_client_gone(request))
        try:
            await asyncio.wait({collector, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if not collector.done():
                status = UsageStatus.CANCELLED
                collector.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await collector
                return None
            text = collector.result()
            status = UsageStatus.COMPLETED
            return generation.completion(text)
        finally:
            watcher.cancel()
            if not collector.done():
                collector.cancel()
            await events.aclose()
            await self.record_usage_of(ctx, generation, status)

    async def record_usage_of(
        self, ctx: InferenceContext, generation: Generation, status: UsageStatus
    ) -> None:
        """Ledger row, usage event, slot release: shielded, since it often runs while
        cancelled."""
        with anyio.CancelScope(shield=True):
            try:
                await usage_service.record_row(ctx.sessionmaker, *generation.ledger_entry(status))
            finally:
                await self.settle(ctx, generation, status)

    async def settle(
        self, ctx: InferenceContext, generation: Generation, status: UsageStatus
    ) -> None:
        """Count the ended request and free the caller's slot (its ledger row is written
        apart: `record_usage_of`, or with a conversation's answer)."""
        metrics.REQUESTS.labels(generation.source, status).inc()
        await self.release_slot(ctx, generation)

    async def release_slot(self, ctx: InferenceContext, generation: Generation) -> None:
        with anyio.CancelScope(shield=True):
            await ctx.redis.decr(generation.slot)

    async def list_models(self, ctx: InferenceContext, caller: Identity) -> ModelList:
        """The models the caller may use, as /v1/models lists them."""
        models = await ctx.models.usable(caller)
        return ModelList(
            data=[
                ModelCard(id=m.ref, created=int(m.created_at.timestamp()), owned_by=m.owner)
                for m in models
            ]
        )


openai_service = OpenAIService()
