"""OpenAI-compatible endpoints: /v1/chat/completions, /v1/completions, /v1/models."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from services.inference.deps import InferenceContext, InferenceDep
from services.inference.engine import TokenEvent
from services.inference.openai import responses
from services.inference.openai.remote import provider_tokens
from services.inference.openai.schemas import ChatCompletionRequest, CompletionRequest
from services.inference.openai.service import (
    Generation,
    GenerationRequest,
    account,
    begin,
    local_tokens,
    observe,
)
from shared.auth.identity import CurrentUser
from shared.errors import LLMNetError

router = APIRouter(prefix="/v1", tags=["openai"])
_STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _tokens(
    ctx: InferenceContext, generation: Generation, body: GenerationRequest
) -> AsyncGenerator[TokenEvent]:
    if generation.model.source == "remote" and generation.model.remote is not None:
        return provider_tokens(ctx, generation.model.remote, body)
    return local_tokens(ctx, generation, body)


async def _serve(
    ctx: InferenceContext, request: Request, caller: Any, body: GenerationRequest, endpoint: str
) -> Response:
    generation, slot = await begin(ctx, caller, body, endpoint)
    events = _tokens(ctx, generation, body)
    try:
        # The first event proves the model loaded and the prompt fits: until then errors are
        # ordinary 4xx/5xx responses, not events inside a 200 stream.
        first = await anext(events)
    except StopAsyncIteration:
        first = None
    except BaseException:
        await events.aclose()
        await account(ctx, generation, slot, "failed")
        raise
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return StreamingResponse(
            _stream(ctx, generation, slot, first, events, include_usage),
            media_type="text/event-stream",
            headers=_STREAM_HEADERS,
        )
    return await _whole(ctx, request, generation, slot, first, events)


async def _chain(
    first: TokenEvent | None, rest: AsyncIterator[TokenEvent]
) -> AsyncIterator[TokenEvent]:
    if first is not None:
        yield first
    async for event in rest:
        yield event


async def _stream(
    ctx: InferenceContext,
    generation: Generation,
    slot: str,
    first: TokenEvent | None,
    events: AsyncGenerator[TokenEvent],
    include_usage: bool,
) -> AsyncIterator[bytes]:
    status = "failed"
    last: float | None = None
    try:
        if generation.endpoint == "chat.completions":
            yield responses.sse(responses.chunk(generation, role=True, text=""))
        try:
            async for event in _chain(first, events):
                last = observe(generation, event, last)
                if event.text:
                    yield responses.sse(responses.chunk(generation, text=event.text))
                if event.finish_reason:
                    yield responses.sse(
                        responses.chunk(generation, finish_reason=event.finish_reason)
                    )
        except LLMNetError as exc:
            # The status line has gone: the error travels as an event.
            yield responses.sse(responses.error_event(exc.code, exc.detail))
            yield responses.DONE
            return
        if include_usage:
            yield responses.sse(responses.usage_chunk(generation))
        yield responses.DONE
        status = "completed"
    except (asyncio.CancelledError, GeneratorExit):
        status = "cancelled"
        raise
    finally:
        await events.aclose()  # the engine drops an unfinished request before its next step
        await account(ctx, generation, slot, status)


async def _wait_for_disconnect(request: Request) -> None:
    # The body was read already, so the next message is the client going away.
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _whole(
    ctx: InferenceContext,
    request: Request,
    generation: Generation,
    slot: str,
    first: TokenEvent | None,
    events: AsyncGenerator[TokenEvent],
) -> Response:
    status = "failed"

    async def collect() -> str:
        parts: list[str] = []
        last: float | None = None
        async for event in _chain(first, events):
            last = observe(generation, event, last)
            parts.append(event.text)
        return "".join(parts)

    collector = asyncio.ensure_future(collect())
    watcher = asyncio.ensure_future(_wait_for_disconnect(request))
    try:
        await asyncio.wait({collector, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if not collector.done():
            # The client left: stop generating for nobody.
            status = "cancelled"
            collector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await collector
            return Response(status_code=499)
        text = collector.result()
        status = "completed"
        return JSONResponse(responses.complete(generation, text))
    finally:
        watcher.cancel()
        if not collector.done():
            collector.cancel()
        await events.aclose()
        await account(ctx, generation, slot, status)


@router.post("/chat/completions", summary="OpenAI-compatible chat completion (SSE with stream)")
async def chat_completions(
    body: ChatCompletionRequest, request: Request, caller: CurrentUser, ctx: InferenceDep
) -> Response:
    return await _serve(ctx, request, caller, body, "chat.completions")


@router.post("/completions", summary="OpenAI-compatible text completion (SSE with stream)")
async def completions(
    body: CompletionRequest, request: Request, caller: CurrentUser, ctx: InferenceDep
) -> Response:
    return await _serve(ctx, request, caller, body, "completions")


@router.get("/models", summary="The models you may use")
async def list_models(caller: CurrentUser, ctx: InferenceDep) -> dict[str, Any]:
    models = await ctx.models.usable(caller)
    return {
        "object": "list",
        "data": [
            {
                "id": m.ref,
                "object": "model",
                "created": int(m.created_at.timestamp()),
                "owned_by": m.owner,
            }
            for m in models
        ],
    }
