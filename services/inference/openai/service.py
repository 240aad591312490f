"""Serving a completion: the access check, parameters, quota and per-user slot, the prompt,
then the tokens — from the local engine or a remote provider — and the accounting.

Whatever way a generation ends (finished, the client went away, an error), `account` writes
one ledger row and one `model.usage` event, and frees the caller's slot.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

import anyio

from services.inference import metrics
from services.inference.deps import InferenceContext
from services.inference.engine import Engine, SamplingParams, TokenEvent
from services.inference.openai.schemas import ChatCompletionRequest, CompletionRequest
from services.inference.usage.service import Usage, check_quota, record_usage
from shared.auth.identity import Identity
from shared.errors import BadRequest, Conflict, TooManyRequests, UnprocessableEntity
from shared.models_client import ModelAccess

GenerationRequest = ChatCompletionRequest | CompletionRequest
_SLOT_TTL = 3600  # a crashed process must not hold a user's slot forever


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
    endpoint: str
    id: str
    created: int = field(default_factory=lambda: int(time.time()))
    started: float = field(default_factory=time.perf_counter)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    first_token_at: float | None = None
    finish_reason: str | None = None


def sampling_params(
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


def prompt_ids(engine: Engine, body: GenerationRequest, system_prompt: str | None) -> list[int]:
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


async def acquire_slot(ctx: InferenceContext, caller: Identity) -> str:
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


async def begin(
    ctx: InferenceContext, caller: Identity, body: GenerationRequest, endpoint: str
) -> tuple[Generation, str]:
    """Checks that come before any work; returns the generation and the caller's slot key."""
    model = await ctx.models.access(body.model, caller)
    if model.source != "remote" and model.active_version is None:
        raise ModelNotReady(
            f"{model.ref} has no ready version yet (status: {model.status}); try again once "
            "validation has finished."
        )
    await check_quota(ctx.sessionmaker, caller, ctx.settings.daily_token_quota, model)
    slot = await acquire_slot(ctx, caller)
    prefix = "chatcmpl" if endpoint == "chat.completions" else "cmpl"
    return Generation(caller, model, endpoint, f"{prefix}-{uuid.uuid4().hex}"), slot


async def local_tokens(
    ctx: InferenceContext, generation: Generation, body: GenerationRequest
) -> AsyncGenerator[TokenEvent]:
    model = generation.model
    version = model.active_version
    assert version is not None
    engine = await ctx.registry.get(str(version.id), version.storage_prefix, version.files)
    params = sampling_params(body, model.default_params, ctx)
    ids = prompt_ids(engine, body, model.system_prompt)
    if body.requested_max_tokens() is None and "max_tokens" not in model.default_params:
        # Nobody asked for a length: the default yields to what the context has left.
        room = engine.context_length - len(ids)
        params = dataclasses.replace(params, max_tokens=max(1, min(params.max_tokens, room)))
    # Leaving the block (finished, cancelled, closed) aborts an unfinished request.
    async with engine.generate(generation.id, ids, params) as stream:
        async for event in stream:
            yield event


def observe(generation: Generation, event: TokenEvent, last_token_at: float | None) -> float:
    """Record one event's counts and timings; returns when this token arrived."""
    now = time.perf_counter()
    source = "remote" if generation.model.source == "remote" else "local"
    generation.prompt_tokens = event.prompt_tokens
    if event.completion_tokens > generation.completion_tokens:
        added = event.completion_tokens - generation.completion_tokens
        generation.completion_tokens = event.completion_tokens
        metrics.TOKENS_GENERATED.labels(source).inc(added)
        if generation.first_token_at is None:
            generation.first_token_at = now
            metrics.TIME_TO_FIRST_TOKEN.labels(source).observe(now - generation.started)
        elif last_token_at is not None:
            metrics.INTER_TOKEN_LATENCY.labels(source).observe((now - last_token_at) / added)
    if event.finish_reason is not None:
        generation.finish_reason = event.finish_reason
    return now


async def account(ctx: InferenceContext, generation: Generation, slot: str, status: str) -> None:
    """Ledger row, usage event, slot release: shielded, since it often runs while cancelled."""
    with anyio.CancelScope(shield=True):
        source = "remote" if generation.model.source == "remote" else "local"
        metrics.REQUESTS.labels(source, status).inc()
        try:
            await record_usage(
                ctx.sessionmaker,
                generation.caller,
                generation.model,
                generation.endpoint,
                Usage(
                    prompt_tokens=generation.prompt_tokens,
                    completion_tokens=generation.completion_tokens,
                    latency_ms=(time.perf_counter() - generation.started) * 1000,
                    status=status,
                ),
            )
        finally:
            await ctx.redis.decr(slot)
