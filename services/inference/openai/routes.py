"""OpenAI-compatible endpoints: /v1/chat/completions, /v1/completions, /v1/models."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from services.inference.deps import InferenceDep
from services.inference.openai.schemas import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    CompletionRequest,
    ModelList,
    TextCompletion,
)
from services.inference.openai.service import openai_service
from shared.auth.identity import CurrentUser
from shared.errors import OpenAIErrorBody
from shared.sse import event_stream_responses

# Errors here take OpenAI's shape (shared/errors.py), so the documents say so.
router = APIRouter(
    prefix="/v1",
    tags=["openai"],
    responses={
        "4XX": {
            "model": OpenAIErrorBody,
            "description": "OpenAI's error shape; `message` says what to fix.",
        }
    },
)

_STREAM = (
    "With `stream`: server-sent events, each `data: <{chunk}>` (an error after the first "
    "event: `data: <OpenAIErrorBody>`), then `data: [DONE]`."
)


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    responses=event_stream_responses(
        ChatCompletionChunk,
        OpenAIErrorBody,
        description=_STREAM.format(chunk="ChatCompletionChunk"),
    ),
    summary="OpenAI-compatible chat completion (SSE with stream)",
)
async def chat_completions(
    body: ChatCompletionRequest, request: Request, caller: CurrentUser, ctx: InferenceDep
) -> Response | ChatCompletion | TextCompletion:
    return await openai_service.respond(ctx, request, caller, body)


@router.post(
    "/completions",
    response_model=TextCompletion,
    responses=event_stream_responses(
        TextCompletion, OpenAIErrorBody, description=_STREAM.format(chunk="TextCompletion")
    ),
    summary="OpenAI-compatible text completion (SSE with stream)",
)
async def completions(
    body: CompletionRequest, request: Request, caller: CurrentUser, ctx: InferenceDep
) -> Response | ChatCompletion | TextCompletion:
    return await openai_service.respond(ctx, request, caller, body)


@router.get("/models", response_model=ModelList, summary="The models you may use")
async def list_models(caller: CurrentUser, ctx: InferenceDep) -> ModelList:
    return await openai_service.list_models(ctx, caller)
